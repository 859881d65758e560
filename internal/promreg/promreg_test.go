package promreg

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestReuseReturnsTheRegisteredCollector(t *testing.T) {
	r := prometheus.NewRegistry()
	opts := prometheus.CounterOpts{Name: "meshguard_test_total", Help: "test"}
	first, err := Reuse(r, prometheus.NewCounter(opts))
	if err != nil {
		t.Fatal(err)
	}
	second, err := Reuse(r, prometheus.NewCounter(opts))
	if err != nil {
		t.Fatal(err)
	}
	second.Inc()
	if first != second {
		t.Fatal("a second registration must return the first collector")
	}
	if _, err := Reuse(r, prometheus.NewGauge(prometheus.GaugeOpts{Name: "meshguard_test_total", Help: "other"})); err == nil {
		t.Fatal("a conflicting collector must be an error")
	}
}

func TestIntoStoresTheRegisteredCollector(t *testing.T) {
	r := prometheus.NewRegistry()
	opts := prometheus.CounterOpts{Name: "meshguard_into_total", Help: "test"}
	first, second := prometheus.NewCounter(opts), prometheus.NewCounter(opts)
	if err := Into(r, &first); err != nil {
		t.Fatal(err)
	}
	kept := second
	if err := Into(r, &second); err != nil {
		t.Fatal(err)
	}
	if second != first || second == kept {
		t.Fatal("Into must replace a second collector with the registered one")
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "meshguard_into_total", Help: "other"})
	if err := Into(r, &g); err == nil {
		t.Fatal("a conflicting collector must be an error")
	}
}
