package framework

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// File names WriteServingCerts writes, the names `meshguard serve --cert-dir`
// reads by default.
const (
	CertFile = "tls.crt"
	KeyFile  = "tls.key"
	CAFile   = "ca.crt"
)

// CertValidity is how long the throwaway certificates are valid: long enough
// for a test run or a demo, short enough that a leaked key is soon worthless.
const CertValidity = 6 * time.Hour

// Certs is a throwaway CA and a serving certificate it signed for 127.0.0.1,
// ::1 and localhost.
type Certs struct {
	// Dir holds tls.crt, tls.key and ca.crt (a --cert-dir for meshguard serve).
	Dir string
	// CAPEM is the CA certificate, the caBundle of the webhook configurations.
	CAPEM []byte
	// CertPEM and KeyPEM are the serving certificate and its private key.
	CertPEM, KeyPEM []byte
	// Pool trusts the CA, for clients that talk to the server directly.
	Pool *x509.CertPool
}

// WriteServingCerts creates a fresh ECDSA P-256 CA and a serving certificate
// for the loopback addresses, valid for CertValidity, and writes them into dir
// (tls.crt, tls.key with mode 0600, ca.crt). There is no insecure fallback:
// any failure is an error.
func WriteServingCerts(dir string) (*Certs, error) {
	now := time.Now()
	return WriteServingCertsValidity(dir, now.Add(-time.Minute), now.Add(CertValidity))
}

// WriteServingCertsValidity is WriteServingCerts with the validity of both
// certificates given: tests of expired and not yet valid certificates.
func WriteServingCertsValidity(dir string, notBefore, notAfter time.Time) (*Certs, error) {
	if dir == "" {
		return nil, errors.New("certs: a directory is required")
	}

	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("certs: generate CA key: %w", err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          mustSerial(),
		Subject:               pkix.Name{CommonName: "meshguard e2e CA", Organization: []string{"meshguard test"}},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("certs: sign CA: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("certs: parse CA: %w", err)
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("certs: generate serving key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: mustSerial(),
		Subject:      pkix.Name{CommonName: "127.0.0.1", Organization: []string{"meshguard test"}},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("certs: sign serving certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("certs: encode serving key: %w", err)
	}
	c := &Certs{
		Dir:     dir,
		CAPEM:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		Pool:    x509.NewCertPool(),
	}
	c.Pool.AddCert(caCert)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{{CAFile, c.CAPEM, 0o644}, {CertFile, c.CertPEM, 0o644}, {KeyFile, c.KeyPEM, 0o600}} {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return nil, fmt.Errorf("certs: write %s: %w", f.name, err)
		}
	}
	return c, nil
}

func mustSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		// crypto/rand does not fail on supported platforms.
		panic(fmt.Sprintf("certs: serial number: %v", err))
	}
	return n.Add(n, big.NewInt(1))
}
