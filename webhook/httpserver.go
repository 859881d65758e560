package webhook

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	stdlog "log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
)

// Timeouts are the webhook HTTP server's connection timeouts. The API server
// calls a webhook with a deadline of the configuration's timeoutSeconds (1 to
// 30 s; meshguard's default is 5) and writes the request's header and body at
// once, so a connection that has not delivered them in a few seconds is not
// the API server's and is closed.
type Timeouts struct {
	// ReadHeader bounds the TLS handshake and reading a request's header.
	// Default 5s.
	ReadHeader time.Duration
	// Read bounds reading a whole request, header and body, from its first
	// byte. Default 10s.
	Read time.Duration
	// Write bounds the time from the end of the request's header to the end
	// of the response: the decision and writing it. At least the largest
	// timeoutSeconds (30 s): the API server gives up then anyway. Default 30s.
	Write time.Duration
	// Idle bounds how long a keep-alive connection waits for its next
	// request. Default 30s.
	Idle time.Duration
}

// DefaultTimeouts returns the defaults.
func DefaultTimeouts() Timeouts {
	return Timeouts{ReadHeader: 5 * time.Second, Read: 10 * time.Second, Write: 30 * time.Second, Idle: 30 * time.Second}
}

// Validate rejects timeouts that are not positive or contradict each other,
// naming the flag.
func (t Timeouts) Validate() error {
	for _, f := range []struct {
		flag string
		d    time.Duration
	}{{"--read-header-timeout", t.ReadHeader}, {"--read-timeout", t.Read}, {"--write-timeout", t.Write}, {"--idle-timeout", t.Idle}} {
		if f.d <= 0 {
			return fmt.Errorf("%s: %s is not positive (no timeout would let slow clients hold connections forever)", f.flag, f.d)
		}
	}
	if t.ReadHeader > t.Read {
		return fmt.Errorf("--read-header-timeout: %s is longer than --read-timeout %s", t.ReadHeader, t.Read)
	}
	return nil
}

// maxHeaderBytes bounds a request's header. The API server sends a few
// hundred bytes (a bearer token adds a few kilobytes); net/http's default of
// 1 MiB per connection would let slow connections hold a lot of memory.
const maxHeaderBytes = 64 << 10

// timeoutServer is controller-runtime's webhook server with the connection
// timeouts set. controller-runtime v0.25 builds its http.Server inside
// DefaultServer.Start with only a 32 s header timeout and a 90 s idle timeout,
// and its Options reach neither those nor the listener; a handler can set a
// request's read and write deadlines (http.ResponseController) but not the
// header, handshake or idle timeouts. So Register and WebhookMux stay
// controller-runtime's (the mux with its request metrics), and Start serves
// that mux as DefaultServer.Start does (TLS options, certwatcher on
// CertDir unless a TLS option sets GetCertificate, ClientCAName, shutdown with
// the manager) on an http.Server with Timeouts.
type timeoutServer struct {
	inner    *crwebhook.DefaultServer
	timeouts Timeouts

	mu      sync.Mutex
	started bool
}

var _ crwebhook.Server = (*timeoutServer)(nil)

// NewWebhookServer returns the webhook server `meshguard serve` runs:
// controller-runtime's, for o, with the connection timeouts t.
func NewWebhookServer(o crwebhook.Options, t Timeouts) crwebhook.Server {
	return newTimeoutServer(o, t)
}

// newTimeoutServer returns a webhook server for o with the timeouts t.
func newTimeoutServer(o crwebhook.Options, t Timeouts) *timeoutServer {
	return &timeoutServer{inner: crwebhook.NewServer(o).(*crwebhook.DefaultServer), timeouts: t}
}

// NeedLeaderElection is false: every replica serves.
func (*timeoutServer) NeedLeaderElection() bool { return false }

// Register adds a handler on path, instrumented by controller-runtime.
func (s *timeoutServer) Register(path string, hook http.Handler) { s.inner.Register(path, hook) }

// WebhookMux is the mux of the registered handlers.
func (s *timeoutServer) WebhookMux() *http.ServeMux { return s.inner.WebhookMux() }

// Start serves until ctx is done.
func (s *timeoutServer) Start(ctx context.Context) error {
	log := logf.FromContext(ctx).WithName("webhook-server")
	o := s.inner.Options
	mux := s.inner.WebhookMux()
	if mux == nil {
		return errors.New("webhook server: no webhook registered")
	}
	port := o.Port
	if port == 0 {
		port = crwebhook.DefaultPort
	}
	cfg := &tls.Config{NextProtos: []string{"h2"}}
	for _, op := range o.TLSOpts {
		op(cfg)
	}
	if cfg.GetCertificate == nil {
		cw, err := certwatcher.New(filepath.Join(o.CertDir, o.CertName), filepath.Join(o.CertDir, o.KeyName))
		if err != nil {
			return fmt.Errorf("webhook server: %w", err)
		}
		cfg.GetCertificate = cw.GetCertificate
		go func() {
			if err := cw.Start(ctx); err != nil {
				log.Error(err, "certificate watcher")
			}
		}()
	}
	if o.ClientCAName != "" {
		pem, err := os.ReadFile(filepath.Join(o.CertDir, o.ClientCAName))
		if err != nil {
			return fmt.Errorf("webhook server: read client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("webhook server: client CA %s holds no PEM certificate", o.ClientCAName)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	ln, err := tls.Listen("tcp", net.JoinHostPort(o.Host, strconv.Itoa(port)), cfg)
	if err != nil {
		return fmt.Errorf("webhook server: %w", err)
	}
	srv := &http.Server{
		Handler:           mux,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		MaxHeaderBytes:    maxHeaderBytes,
		ReadHeaderTimeout: s.timeouts.ReadHeader,
		ReadTimeout:       s.timeouts.Read,
		WriteTimeout:      s.timeouts.Write,
		IdleTimeout:       s.timeouts.Idle,
		// net/http logs every failed TLS handshake and timed-out
		// connection; a flood would fill the logs with plain-text lines.
		// They go to the JSON log at debug level (--log-level debug).
		ErrorLog: stdlog.New(debugWriter{log.V(1)}, "", 0),
	}
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		<-ctx.Done()
		// As controller-runtime: up to a minute for in-flight requests (the
		// manager's graceful shutdown timeout bounds the whole).
		sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			log.Error(err, "shut down the webhook server")
		}
	}()
	log.Info("serving webhook server", "host", o.Host, "port", port, "readHeaderTimeout", s.timeouts.ReadHeader.String(),
		"readTimeout", s.timeouts.Read.String(), "writeTimeout", s.timeouts.Write.String(), "idleTimeout", s.timeouts.Idle.String())
	s.mu.Lock()
	s.started = true
	s.mu.Unlock()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	<-closed
	return nil
}

// StartedChecker is ready once the server serves TLS: as controller-runtime's,
// it completes a TLS handshake with the port. The handshake only proves that
// the port answers; the checker sends nothing over it, so it does not verify
// the certificate (which is the certificate readiness check's job).
func (s *timeoutServer) StartedChecker() healthz.Checker {
	cfg := &tls.Config{InsecureSkipVerify: true} //nolint:gosec // reachability probe only; no data is sent
	return func(*http.Request) error {
		s.mu.Lock()
		started := s.started
		s.mu.Unlock()
		if !started {
			return errors.New("webhook server has not been started yet")
		}
		o := s.inner.Options
		port := o.Port
		if port == 0 {
			port = crwebhook.DefaultPort
		}
		d := &net.Dialer{Timeout: 10 * time.Second}
		conn, err := tls.DialWithDialer(d, "tcp", net.JoinHostPort(o.Host, strconv.Itoa(port)), cfg)
		if err != nil {
			return fmt.Errorf("webhook server is not reachable: %w", err)
		}
		return conn.Close()
	}
}

// debugWriter writes net/http's error log lines to a logr logger.
type debugWriter struct{ log logr.Logger }

func (w debugWriter) Write(p []byte) (int, error) {
	if w.log.Enabled() {
		w.log.Info("http server", "error", strings.TrimSpace(string(p)))
	}
	return len(p), nil
}
