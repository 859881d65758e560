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
