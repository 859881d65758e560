package webhook

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/meshguard/meshguard/test/e2e/framework"
)

// startTimeoutServer serves an echo handler on 127.0.0.1 with timeouts t and
// waits (bounded) until its started check passes.
func startTimeoutServer(t *testing.T, t0 Timeouts, clientCA string) (addr string, certs *framework.Certs) {
	t.Helper()
	certs, err := framework.WriteServingCerts(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	port, err := framework.FreeLoopbackPort()
	if err != nil {
		t.Fatal(err)
	}
	srv := newTimeoutServer(crwebhook.Options{Host: "127.0.0.1", Port: port, CertDir: certs.Dir, CertName: framework.CertFile,
		KeyName: framework.KeyFile, ClientCAName: clientCA,
		TLSOpts: []func(*tls.Config){func(c *tls.Config) { c.MinVersion = tls.VersionTLS12; c.NextProtos = []string{"http/1.1"} }}}, t0)
	srv.Register(ValidatePath, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.Copy(w, r.Body) }))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Start: %v", err)
		}
	})
	check := srv.StartedChecker()
	deadline := time.Now().Add(10 * time.Second)
	for check(nil) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("the server did not start within 10s: %v", check(nil))
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Sprintf("127.0.0.1:%d", port), certs
}

// TestTimeoutServerClosesSlowConnections: the server built for `meshguard
// serve` answers over TLS with the certificate from CertDir, and closes a
// connection whose header does not arrive within ReadHeader and one that
// sits idle past Idle.
func TestTimeoutServerClosesSlowConnections(t *testing.T) {
	addr, certs := startTimeoutServer(t, Timeouts{ReadHeader: 200 * time.Millisecond, Read: 300 * time.Millisecond, Write: time.Second, Idle: 300 * time.Millisecond}, "")
	cfg := &tls.Config{RootCAs: certs.Pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 5 * time.Second}
	resp, err := c.Post("https://"+addr+ValidatePath, "application/json", strings.NewReader(`{"echo":1}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != `{"echo":1}` {
		t.Fatalf("echo: %d %q", resp.StatusCode, body)
	}
	for name, send := range map[string]string{
		"a header that never ends":              "POST /validate HTTP/1.1\r\nHost: x\r\n",
		"a body that never ends":                "POST /validate HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{",
		"an idle connection after its response": "POST /validate HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
	} {
		t.Run(name, func(t *testing.T) {
			conn, err := tls.Dial("tcp", addr, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.WriteString(conn, send); err != nil {
				t.Fatal(err)
			}
			_, err = io.Copy(io.Discard, conn)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("the server kept the connection open for 10s")
			}
		})
	}
}

// TestTimeoutServerHonoursClientCAName: with ClientCAName (controller-runtime's
// option, kept by the server) a client without a certificate is refused.
func TestTimeoutServerHonoursClientCAName(t *testing.T) {
	addr, certs := startTimeoutServer(t, DefaultTimeouts(), framework.CAFile)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: certs.Pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}}, Timeout: 5 * time.Second}
	if resp, err := c.Post("https://"+addr+ValidatePath, "application/json", strings.NewReader(`{}`)); err == nil {
		resp.Body.Close()
		t.Fatalf("a client without a certificate got HTTP %d", resp.StatusCode)
	}
}
