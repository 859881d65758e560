package webhook

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/go-logr/logr"
)

// ClientCAReloadInterval is how often, at most, the --client-ca-file is read
// again to see whether it changed. The check runs during a TLS handshake (no
// goroutine to stop), so a rotated CA takes effect for the first connection
// after the interval.
const ClientCAReloadInterval = 10 * time.Second

// clientCA makes the webhook server require a client certificate signed by
// the CAs of a PEM file (tls.RequireAndVerifyClientCert), the certificate the
// API server presents when its AdmissionConfiguration gives it webhook client
// credentials. The file is read again when it changes (a mounted ConfigMap or
// Secret is replaced atomically by the kubelet). There is no insecure
// fallback: a file that cannot be read at start is an error, and a changed
// file that holds no certificate keeps the last good CAs in force (logged).
type clientCA struct {
	path     string
	interval time.Duration
	now      func() time.Time
	log      logr.Logger

	mu      sync.Mutex
	raw     []byte         // the file's content the pool was built from
	pool    *x509.CertPool // the CAs in force
	checked time.Time      // when the file was last read
	base    *tls.Config    // the server's own configuration
	cfg     *tls.Config    // base with the pool in force, handed to each handshake
}

// newClientCA reads the CA file; it must hold at least one certificate.
func newClientCA(path string, log logr.Logger) (*clientCA, error) {
	c := &clientCA{path: path, interval: ClientCAReloadInterval, now: time.Now, log: log}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--client-ca-file: %w", err)
	}
	pool, err := parseCAs(raw)
	if err != nil {
		return nil, fmt.Errorf("--client-ca-file: %s: %w", path, err)
	}
	c.raw, c.pool, c.checked = raw, pool, c.now()
	return c, nil
}

func parseCAs(raw []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(raw) {
		return nil, errors.New("no PEM certificate found")
	}
	return pool, nil
}

// configure is a TLS option of the webhook server: it requires and verifies
// client certificates against the current CAs. The server's configuration is
// completed after its options run (controller-runtime sets GetCertificate
// last), so the per-handshake configuration is cloned from it lazily.
func (c *clientCA) configure(cfg *tls.Config) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cfg.ClientAuth = tls.RequireAndVerifyClientCert
	cfg.ClientCAs = c.pool
	// A resumed session skips the certificate check, so a CA removed from
	// the file would still admit its clients until their tickets expire.
	cfg.SessionTicketsDisabled = true
	cfg.GetConfigForClient = c.configForClient
	c.base = cfg
	c.cfg = nil
}

// configForClient returns the configuration for one handshake, reading the
// file again when the interval has passed.
func (c *clientCA) configForClient(*tls.ClientHelloInfo) (*tls.Config, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := c.now(); now.Sub(c.checked) >= c.interval {
		c.checked = now
		c.reload()
	}
	if c.cfg == nil {
		cfg := c.base.Clone()
		cfg.GetConfigForClient = nil
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		cfg.ClientCAs = c.pool
		cfg.SessionTicketsDisabled = true
		c.cfg = cfg
	}
	return c.cfg, nil
}

// reload reads the file and, when it changed and holds certificates, puts
// its CAs in force. Called with mu held.
func (c *clientCA) reload() {
	raw, err := os.ReadFile(c.path)
	if err != nil {
		c.log.Error(err, "client CA file unreadable; the last CAs read stay in force", "path", c.path)
		return
	}
	if bytes.Equal(raw, c.raw) {
		return
	}
	pool, err := parseCAs(raw)
	if err != nil {
		c.log.Error(err, "client CA file changed but holds no certificate; the last CAs read stay in force", "path", c.path)
		return
	}
	c.raw, c.pool, c.cfg = raw, pool, nil
	c.log.Info("client CA file reloaded", "path", c.path)
}
