package certs

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// Files are the certificate files the webhook server serves (through
// controller-runtime's certwatcher).
type Files struct {
	// Dir is the certificate directory (--cert-dir). Required.
	Dir string
	// CertName and KeyName are the file names in Dir, and in self-signed mode
	// also the keys in the Secret. Default tls.crt and tls.key.
	CertName, KeyName string
}

// CAName is the file name (and Secret key) of the CA certificate.
const CAName = "ca.crt"

func (f Files) withDefaults() Files {
	if f.CertName == "" {
		f.CertName = "tls.crt"
	}
	if f.KeyName == "" {
		f.KeyName = "tls.key"
	}
	return f
}

func (f Files) certPath() string { return filepath.Join(f.Dir, f.CertName) }
func (f Files) keyPath() string  { return filepath.Join(f.Dir, f.KeyName) }

// Source provides the serving certificate of the webhook server.
type Source interface {
	// Setup adds what the source runs (rotation, status checks) to the
	// manager. Called once, before the manager starts.
	Setup(mgr manager.Manager, log logr.Logger) error
	// Ready is closed once a certificate is in the certificate directory and
	// may be served. It is never closed for a certificate that is not there.
	Ready() <-chan struct{}
	// Check is the /readyz check: nil once the certificate is served, the
	// reason otherwise.
	Check(*http.Request) error
}

// New returns the Source for the options' mode; nil options mean files mode.
func New(o *Options, f Files) (Source, error) {
	if f.Dir == "" {
		return nil, errors.New("certificate directory: required (meshguard serves TLS only)")
	}
	f = f.withDefaults()
	if o == nil {
		return newFileSource(f), nil
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	switch o.Mode {
	case ModeFiles:
		return newFileSource(f), nil
	case ModeSelfSigned:
		return newSelfSigned(o, f), nil
	case ModeCertManager:
		return newCertManager(o, f), nil
	}
	return nil, fmt.Errorf("--cert-mode: %q is not one of %s", o.Mode, modeList())
}

// ServeWhenReady returns a runnable that starts the webhook server (or any
// runnable) only once the source is Ready, so nothing is served without the
// certificate. Add it to the manager instead of the webhook server itself
// (do not call the manager's GetWebhookServer, which adds the server
// ungated). It runs on every replica.
func ServeWhenReady(srv manager.Runnable, src Source) manager.Runnable {
	return &gated{srv: srv, ready: src.Ready()}
}

type gated struct {
	srv   manager.Runnable
	ready <-chan struct{}
}

func (g *gated) Start(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case <-g.ready:
	}
	return g.srv.Start(ctx)
}

func (*gated) NeedLeaderElection() bool { return false }

var (
	_ manager.Runnable               = (*gated)(nil)
	_ manager.LeaderElectionRunnable = (*gated)(nil)
)

// readiness is the shared state of a source: a reason while not ready, a
// channel closed once ready. Reasons are logged when they change.
type readiness struct {
	mu     sync.Mutex
	reason string
	ready  chan struct{}
	closed bool
	log    logr.Logger
}

func newReadiness(initial string) *readiness {
	return &readiness{reason: initial, ready: make(chan struct{}), log: logr.Discard()}
}

// notReady records why the certificate is not served (yet).
func (r *readiness) notReady(reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.reason == reason {
		return
	}
	r.reason = reason
	r.log.Info("serving certificate not ready", "reason", reason)
}

// markReady closes Ready (once).
func (r *readiness) markReady(msg string, kv ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	r.closed = true
	r.reason = ""
	close(r.ready)
	r.log.Info(msg, kv...)
}

func (r *readiness) Ready() <-chan struct{} { return r.ready }

func (r *readiness) Check(*http.Request) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	return errors.New(r.reason)
}

// fileSource serves the directory as it is: the webhook server fails to start
// when the files are missing, as before certificate modes existed. It never
// holds the server, but /readyz fails while the certificate file has expired
// or is not valid yet (whoever writes the files must replace it; certwatcher
// then serves the new one without a restart).
type fileSource struct {
	*readiness
	files Files
}

func newFileSource(f Files) *fileSource {
	s := &fileSource{readiness: newReadiness(""), files: f}
	s.closed = true
	close(s.ready)
	return s
}

func (s *fileSource) Setup(manager.Manager, logr.Logger) error { return nil }

// Check reports a certificate file that cannot be read, has expired or is
// not valid yet.
func (s *fileSource) Check(req *http.Request) error {
	if err := s.readiness.Check(req); err != nil {
		return err
	}
	return servedCertValid(s.files, time.Now())
}

// runnable adapts a function to a manager runnable that runs on every replica.
type runnable func(context.Context) error

func (f runnable) Start(ctx context.Context) error { return f(ctx) }
func (runnable) NeedLeaderElection() bool          { return false }
