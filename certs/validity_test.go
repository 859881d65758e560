package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// writeTestPair writes a self-signed tls.crt and tls.key valid from
// notBefore to notAfter into dir and returns the certificate.
func writeTestPair(t *testing.T, dir string, notBefore, notAfter time.Time) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "meshguard test"},
		DNSNames:     []string{"localhost"},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestEveryModeRefusesReadinessOnACertificateOutsideItsValidity(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name                string
		notBefore, notAfter time.Time
		want                string // "" for ready
	}{
		{"a certificate valid now is ready", now.Add(-time.Hour), now.Add(time.Hour), ""},
		{"an expired certificate is not ready", now.Add(-2 * time.Hour), now.Add(-time.Hour), "expired at"},
		{"a certificate not valid yet is not ready", now.Add(time.Hour), now.Add(2 * time.Hour), "is not valid before"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeTestPair(t, dir, tc.notBefore, tc.notAfter)
			f := Files{Dir: dir}.withDefaults()
			// The three modes once serving: files, and the self-signed and
			// cert-manager sources after their certificate was served.
			ss := newSelfSigned(&Options{Namespace: "guard", SecretName: "s"}, f)
			ss.markReady("test")
			cm := newCertManager(&Options{Namespace: "guard", CertificateName: "c"}, f)
			cm.markReady("test")
			for name, src := range map[string]Source{"files": newFileSource(f), "self-signed": ss, "cert-manager": cm} {
				err := src.Check(nil)
				switch {
				case tc.want == "" && err != nil:
					t.Errorf("%s: %v", name, err)
				case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
					t.Errorf("%s: want an error saying %q, got %v", name, tc.want, err)
				}
			}
			// cert-manager mode does not turn ready on such files either.
			if tc.want != "" {
				if _, err := loadPair(f, now); err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("loadPair: want %q, got %v", tc.want, err)
				}
			}
		})
	}
	t.Run("a missing certificate is not ready in files mode", func(t *testing.T) {
		if err := newFileSource(Files{Dir: t.TempDir()}.withDefaults()).Check(nil); err == nil || !strings.Contains(err.Error(), "no such file") {
			t.Fatalf("want the missing file named, got %v", err)
		}
	})
}

func TestCertificateMetrics(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	leaf := writeTestPair(t, dir, now.Add(-time.Hour), now.Add(time.Hour))
	r := prometheus.NewRegistry()
	if err := RegisterMetrics(r, Files{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	// expect gathers the registry: the expiry (-1 for absent) and validity.
	expect := func(expiry int64, valid float64) {
		t.Helper()
		mfs, err := r.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]float64{}
		for _, mf := range mfs {
			got[mf.GetName()] = mf.GetMetric()[0].GetGauge().GetValue()
		}
		if e, ok := got[MetricExpiry]; (expiry < 0 && ok) || (expiry >= 0 && (!ok || e != float64(expiry))) {
			t.Errorf("%s: want %d (-1: absent), got %v (present %v)", MetricExpiry, expiry, e, ok)
		}
		if v, ok := got[MetricValid]; !ok || v != valid {
			t.Errorf("%s: want %v, got %v (present %v)", MetricValid, valid, v, ok)
		}
	}
	expect(leaf.NotAfter.Unix(), 1)

	// Read at every scrape: a replaced, expired certificate shows at once.
	expired := writeTestPair(t, dir, now.Add(-2*time.Hour), now.Add(-time.Hour))
	expect(expired.NotAfter.Unix(), 0)

	// A second registration (a second server in the process) takes over.
	other := t.TempDir()
	notYet := writeTestPair(t, other, now.Add(time.Hour), now.Add(2*time.Hour))
	if err := RegisterMetrics(r, Files{Dir: other}); err != nil {
		t.Fatal(err)
	}
	expect(notYet.NotAfter.Unix(), 0)

	// Unreadable: no expiry, not valid.
	if err := os.Remove(filepath.Join(other, "tls.crt")); err != nil {
		t.Fatal(err)
	}
	expect(-1, 0)
}
