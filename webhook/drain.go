package webhook

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/log"
)

// drainer is the replica's lame-duck period. A Deployment's rolling update
// removes the old pod from the Service's endpoints and sends it SIGTERM at
// about the same time, but the API server keeps the keep-alive connections it
// already has to that pod. A server that closes them at once races the API
// server's next request on each (an EOF, a failed admission). While draining,
// the server keeps answering, says Connection: close on every response (the
// client then opens its next connection to a replica that is not leaving),
// and /readyz fails; after the delay the graceful shutdown begins.
type drainer struct {
	delay    time.Duration
	draining atomic.Bool
}

// wrap marks responses for connection close while draining.
func (d *drainer) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d.draining.Load() {
			w.Header().Set("Connection", "close")
		}
		next.ServeHTTP(w, r)
	})
}

// start begins draining and returns after the delay.
func (d *drainer) start(logger logr.Logger) {
	if d == nil || d.delay <= 0 {
		return
	}
	d.draining.Store(true)
	logger.Info("stopping: draining connections before shutdown", "delay", d.delay.String())
	time.Sleep(d.delay)
}

// check is the readiness check: not ready while draining.
func (d *drainer) check(*http.Request) error {
	if d.draining.Load() {
		return errors.New("draining before shutdown")
	}
	return nil
}

func ctrllogFrom(ctx context.Context) logr.Logger { return log.FromContext(ctx) }
