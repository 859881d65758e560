package certs

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metric names of the serving certificate.
const (
	// MetricExpiry is the serving certificate's NotAfter, in seconds since the epoch.
	MetricExpiry = "meshguard_certificate_expiry_timestamp_seconds"
	// MetricValid is 1 while the serving certificate is valid now, 0 when it
	// has expired, is not valid yet or cannot be read.
	MetricValid = "meshguard_certificate_valid"
)

// certCollector exports the certificate in the directory, read at every
// scrape (a small file; nothing is cached, so the value is never stale).
type certCollector struct {
	files  atomic.Pointer[Files]
	now    func() time.Time
	expiry *prometheus.Desc
	valid  *prometheus.Desc
}

func newCertCollector(f Files) *certCollector {
	c := &certCollector{
		now:    time.Now,
		expiry: prometheus.NewDesc(MetricExpiry, "Expiry (NotAfter) of the serving certificate in --cert-dir, in seconds since the epoch; absent while it cannot be read.", nil, nil),
		valid:  prometheus.NewDesc(MetricValid, "1 while the serving certificate in --cert-dir is valid now; 0 when it has expired, is not valid yet, or cannot be read.", nil, nil),
	}
	f = f.withDefaults()
	c.files.Store(&f)
	return c
}

func (c *certCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.expiry
	ch <- c.valid
}

func (c *certCollector) Collect(ch chan<- prometheus.Metric) {
	f := *c.files.Load()
	leaf, err := readLeaf(f)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(c.valid, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.expiry, prometheus.GaugeValue, float64(leaf.NotAfter.Unix()))
	v := 0.0
	if validAt(f, leaf, c.now()) == nil {
		v = 1
	}
	ch <- prometheus.MustNewConstMetric(c.valid, prometheus.GaugeValue, v)
}

// RegisterMetrics registers the serving certificate's metrics (MetricExpiry,
// MetricValid) for the files on r. When they are already registered there (a
// second server in the same process, as the e2e tests start), the registered
// collector reports the new files from then on.
func RegisterMetrics(r prometheus.Registerer, f Files) error {
	c := newCertCollector(f)
	err := r.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(*certCollector); ok {
			existing.files.Store(c.files.Load())
			return nil
		}
	}
	return err
}

// readLeaf reads the first certificate of the certificate file.
func readLeaf(f Files) (*x509.Certificate, error) {
	data, err := os.ReadFile(f.certPath())
	if err != nil {
		return nil, err
	}
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s holds no PEM certificate", f.certPath())
	}
	leaf, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", f.certPath(), err)
	}
	return leaf, nil
}

// validAt reports why a certificate is not valid at now: expired or not
// valid yet.
func validAt(f Files, leaf *x509.Certificate, now time.Time) error {
	if now.After(leaf.NotAfter) {
		return fmt.Errorf("%s expired at %s", f.certPath(), leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(leaf.NotBefore) {
		return fmt.Errorf("%s is not valid before %s", f.certPath(), leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	return nil
}
