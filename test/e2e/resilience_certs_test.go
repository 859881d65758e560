package e2e_test

import (
	"crypto/x509"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshguard/meshguard/test/e2e/framework"
)

// TestResilienceCertificateFilesMode serves, in files mode, an expired
// certificate, then a valid one, then one that is not valid yet, replacing
// the files under the running server. /readyz must fail on the expired and
// the not yet valid one (with the reason at /readyz/certificate), and
// meshguard_certificate_expiry_timestamp_seconds must always show the
// expiry of the certificate in the directory.
func TestResilienceCertificateFilesMode(t *testing.T) {
	env := framework.Shared(t)
	dir := filepath.Join(t.TempDir(), "certs")
	now := time.Now()
	expired, err := framework.WriteServingCertsValidity(dir, now.Add(-2*time.Hour), now.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	r := startResilient(t, env.Config, dir, expired.Pool, 0)

	// expect waits until the certificate check fails (or passes) and the
	// metrics show the certificate's expiry and validity.
	expect := func(c *framework.Certs, reason string) {
		t.Helper()
		notAfter := leafOf(t, c.CertPEM).NotAfter
		if reason == "" {
			r.waitHealth(t, "/readyz", http.StatusOK, "")
		} else {
			r.waitHealth(t, "/readyz/certificate", http.StatusInternalServerError, reason)
			if p := r.get("/readyz"); p.code != http.StatusInternalServerError || !strings.Contains(p.body, "[-]certificate failed") {
				t.Errorf("/readyz must fail on the certificate: %s", p)
			}
		}
		r.waitMetric(t, "meshguard_certificate_expiry_timestamp_seconds", nil, "the certificate's NotAfter", func(v float64) bool { return v == float64(notAfter.Unix()) })
		valid := map[bool]float64{true: 1, false: 0}[reason == ""]
		if v := scrapeMetric(t, r.metricsPort, "meshguard_certificate_valid", nil); v != valid {
			t.Errorf("meshguard_certificate_valid = %v, want %v", v, valid)
		}
	}

	expect(expired, "expired at "+leafOf(t, expired.CertPEM).NotAfter.UTC().Format(time.RFC3339))
	// What every caller met: the served certificate does not verify.
	if _, err := handshake(r.port, expired.Pool, "127.0.0.1"); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("the expired certificate should fail verification: %v", err)
	}

	// A valid certificate is written: ready, served without a restart.
	valid, err := framework.WriteServingCerts(dir)
	if err != nil {
		t.Fatal(err)
	}
	expect(valid, "")
	var served *x509.Certificate
	if !poll(30*time.Second, 50*time.Millisecond, func() bool {
		served, err = handshake(r.port, valid.Pool, "127.0.0.1")
		return err == nil
	}) {
		t.Fatalf("the valid certificate was not served within 30s: %v", err)
	}
	if !served.Equal(leafOf(t, valid.CertPEM)) {
		t.Errorf("the server does not serve the new certificate")
	}

	// A certificate that is not valid yet (a clock ahead of the node's, a
	// misissued renewal): not ready.
	future, err := framework.WriteServingCertsValidity(dir, now.Add(time.Hour), now.Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	expect(future, "is not valid before")
}
