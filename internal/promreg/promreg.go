// Package promreg registers Prometheus collectors so that a second server in
// the same process (as the tests start) counts into the same series.
package promreg

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Reuse registers c on r, or returns the collector already registered there
// under the same descriptor.
func Reuse[C prometheus.Collector](r prometheus.Registerer, c C) (C, error) {
	err := r.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, err
}

// Into registers *c on r as Reuse does and stores the collector to use in
// *c, so a metrics struct registers each field in one line:
//
//	return errors.Join(promreg.Into(r, &m.Requests), promreg.Into(r, &m.Duration))
func Into[C prometheus.Collector](r prometheus.Registerer, c *C) error {
	got, err := Reuse(r, *c)
	*c = got
	return err
}
