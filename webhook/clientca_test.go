package webhook

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
)

// testCA is a throwaway CA that signs server and client certificates.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

var serial int64

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue signs a leaf certificate for server or client use.
func (ca *testCA) issue(t *testing.T, cn string, usage x509.ExtKeyUsage) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
	}
	if usage == x509.ExtKeyUsageServerAuth {
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// serveWith starts an HTTPS server on 127.0.0.1 whose TLS configuration is
// built the way the webhook server's is: the options run first, the
// certificate is set afterwards (controller-runtime sets GetCertificate last).
func serveWith(t *testing.T, serverCert tls.Certificate, opts ...func(*tls.Config)) string {
	t.Helper()
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	for _, o := range opts {
		o(cfg)
	}
	cfg.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &serverCert, nil }
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "answered") }),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close(); wg.Wait() })
	return "https://" + ln.Addr().String()
}

// call POSTs to the server presenting client (nil: no certificate) over a
// new connection, trusting roots.
func call(url string, roots *x509.CertPool, client *tls.Certificate) error {
	cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if client != nil {
		// Sent even when the server does not list its issuer among the CAs
		// it accepts (Go's client would otherwise send no certificate).
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return client, nil }
	}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}
	resp, err := hc.Post(url+ValidatePath, "application/json", strings.NewReader("{}"))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if string(body) != "answered" {
		return errors.New("unexpected answer: " + string(body))
	}
	return nil
}

func TestClientCA(t *testing.T) {
	serverCA, trusted, other := newTestCA(t, "serving CA"), newTestCA(t, "API server client CA"), newTestCA(t, "another CA")
	serverCert := serverCA.issue(t, "meshguard", x509.ExtKeyUsageServerAuth)
	roots := x509.NewCertPool()
	roots.AddCert(serverCA.cert)
	apiServer := trusted.issue(t, "kube-apiserver", x509.ExtKeyUsageClientAuth)
	stranger := other.issue(t, "a pod", x509.ExtKeyUsageClientAuth)
	// A certificate for server use only is no client certificate.
	serverOnly := trusted.issue(t, "server only", x509.ExtKeyUsageServerAuth)

	dir := t.TempDir()
	file := filepath.Join(dir, "ca.crt")
	write := func(data []byte) {
		t.Helper()
		// Replaced atomically, as the kubelet updates a mounted ConfigMap.
		tmp := filepath.Join(dir, "ca.tmp")
		if err := os.WriteFile(tmp, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, file); err != nil {
			t.Fatal(err)
		}
	}
	write(trusted.pem)
	ca, err := newClientCA(file, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	ca.now = func() time.Time { return now }
	url := serveWith(t, serverCert, ca.configure)

	t.Run("a call without a client certificate is refused", func(t *testing.T) {
		if err := call(url, roots, nil); err == nil {
			t.Fatal("answered without a client certificate")
		}
	})
	t.Run("a client certificate from another CA is refused", func(t *testing.T) {
		if err := call(url, roots, &stranger); err == nil {
			t.Fatal("answered a certificate the client CA did not sign")
		}
	})
	t.Run("a certificate without client auth usage is refused", func(t *testing.T) {
		if err := call(url, roots, &serverOnly); err == nil {
			t.Fatal("answered a certificate without the client auth usage")
		}
	})
	t.Run("a client certificate signed by the client CA is answered", func(t *testing.T) {
		if err := call(url, roots, &apiServer); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a rotated CA file takes effect after the reload interval", func(t *testing.T) {
		write(other.pem)
		if err := call(url, roots, &apiServer); err != nil {
			t.Fatalf("the file was read again before the interval passed: %v", err)
		}
		now = now.Add(ClientCAReloadInterval)
		if err := call(url, roots, &stranger); err != nil {
			t.Fatalf("the new CA's client is refused after the reload: %v", err)
		}
		if err := call(url, roots, &apiServer); err == nil {
			t.Fatal("the removed CA's client is still answered")
		}
	})
	t.Run("a CA file that no longer holds a certificate keeps the last CAs", func(t *testing.T) {
		write([]byte("not a certificate"))
		now = now.Add(ClientCAReloadInterval)
		if err := call(url, roots, &stranger); err != nil {
			t.Fatalf("the last good CA stopped working: %v", err)
		}
		if err := call(url, roots, nil); err == nil {
			t.Fatal("answered without a client certificate after a bad reload")
		}
		if err := os.Remove(file); err != nil {
			t.Fatal(err)
		}
		now = now.Add(ClientCAReloadInterval)
		if err := call(url, roots, &stranger); err != nil {
			t.Fatalf("the last good CA stopped working once the file was gone: %v", err)
		}
	})
	t.Run("the configuration requires and verifies client certificates", func(t *testing.T) {
		cfg := &tls.Config{}
		ca.configure(cfg)
		got, err := cfg.GetConfigForClient(&tls.ClientHelloInfo{})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []*tls.Config{cfg, got} {
			if c.ClientAuth != tls.RequireAndVerifyClientCert || c.ClientCAs == nil || !c.SessionTicketsDisabled {
				t.Errorf("client auth %v, CAs %v, session tickets disabled %v", c.ClientAuth, c.ClientCAs != nil, c.SessionTicketsDisabled)
			}
		}
	})
}

func TestClientCAFileErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.crt")
	if err := os.WriteFile(empty, []byte("-----BEGIN NOTHING-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, path := range map[string]string{"a missing file": filepath.Join(dir, "missing.crt"), "a file without a certificate": empty} {
		t.Run(name+" is an error at start, naming the flag", func(t *testing.T) {
			_, err := newClientCA(path, logr.Discard())
			if err == nil || !strings.Contains(err.Error(), "--client-ca-file") {
				t.Fatalf("error %v, want one naming --client-ca-file", err)
			}
		})
	}
}
