package webhook

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/meshguard/meshguard/rules"
)

// Context errors.
//
// A rule that needs context (the namespace's labels, the mesh-wide
// PeerAuthentication, the AuthorizationPolicies of a namespace, the injector's
// revisions, the webhook backends) and cannot read it must not be evaluated
// as if the context were empty: an empty PeerAuthentication list reads as
// "PERMISSIVE", an empty AuthorizationPolicy list as "no policy requires a
// token", no injector revisions as "every revision is known". So a failed read
// is recorded on the request (requestContext), and the validator answers the
// request with an error (HTTP 503 in the AdmissionResponse status, decision
// "error") naming what could not be read, instead of deciding on a guess. The
// read is counted in meshguard_context_errors_total{kind} and logged, at most
// once per kind every contextErrorLogEvery, with how many were not logged.
//
// "Not found" is not an error: a namespace that does not exist yet (it is
// being created in the same request) or a Service a webhook names that does
// not exist are facts the rules handle. Reads never call the API server: they
// go to informer caches, and a cache that has not synced is reported as an
// error rather than waited for.

// contextErrorLogEvery bounds how often a failing kind is logged.
const contextErrorLogEvery = 10 * time.Second

// contextErrors counts and logs failed context reads.
type contextErrors struct {
	counter *prometheus.CounterVec
	log     logr.Logger
	every   time.Duration
	now     func() time.Time

	mu         sync.Mutex
	lastLogged map[string]time.Time
	suppressed map[string]int
}

func newContextErrors(counter *prometheus.CounterVec, log logr.Logger) *contextErrors {
	return &contextErrors{
		counter:    counter,
		log:        log,
		every:      contextErrorLogEvery,
		now:        time.Now,
		lastLogged: map[string]time.Time{},
		suppressed: map[string]int{},
	}
}

// record counts a failed read of a kind and logs it unless the kind was
// logged within the last e.every. A nil receiver records nothing.
func (e *contextErrors) record(kind string, err error) {
	if e == nil || err == nil {
		return
	}
	e.counter.WithLabelValues(kind).Inc()
	e.mu.Lock()
	now := e.now()
	if last, ok := e.lastLogged[kind]; ok && now.Sub(last) < e.every {
		e.suppressed[kind]++
		e.mu.Unlock()
		return
	}
	n := e.suppressed[kind]
	e.lastLogged[kind], e.suppressed[kind] = now, 0
	e.mu.Unlock()
	e.log.Error(err, "context read failed: requests whose rules need it are answered with an error", "kind", kind, "notLogged", n)
}

// watchErrorHandler counts and logs the informers' list and watch failures
// (a cache that cannot list keeps its old content or never syncs), then
// hands them to client-go's default handler. A watch that closed or expired
// normally is not an error.
func (e *contextErrors) watchErrorHandler(ctx context.Context, r *toolscache.Reflector, err error) {
	toolscache.DefaultWatchErrorHandler(ctx, r, err)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
		return
	}
	e.record(reflectorKind(r.TypeDescription()), fmt.Errorf("list or watch: %w", err))
}

// reflectorKind turns a reflector's type description ("*v1.Namespace",
// "security.istio.io/v1, Kind=PeerAuthentication") into a kind.
func reflectorKind(desc string) string {
	if _, kind, ok := strings.Cut(desc, "Kind="); ok {
		return kind
	}
	if i := strings.LastIndexByte(desc, '.'); i >= 0 {
		return desc[i+1:]
	}
	return strings.TrimPrefix(desc, "*")
}

// contextReadError is a context read that failed: what could not be read,
// and why.
type contextReadError struct {
	kind string
	err  error
}

func (e *contextReadError) Error() string {
	return fmt.Sprintf("read %s from the cache: %v", e.kind, e.err)
}

func (e *contextReadError) Unwrap() error { return e.err }

// requestScoped is implemented by contexts whose reads can fail: forRequest
// returns a view for one request and a function that returns the first read
// error of that view.
type requestScoped interface {
	forRequest() (rules.Context, func() error)
}

// requestContext returns the context one request is evaluated with and
// the function that reports its first failed read (nil when every read the
// rules made succeeded).
func requestContext(c rules.Context) (rules.Context, func() error) {
	if s, ok := c.(requestScoped); ok {
		return s.forRequest()
	}
	return c, func() error { return nil }
}

// requestView is the cacheContext of one request: the same reads, with the
// first failure kept for the validator.
type requestView struct {
	c   *cacheContext
	mu  sync.Mutex
	err error

	// The injector configurations are read once per request: a workload's
	// rules ask for its revisions and its Istio release separately.
	injOnce    sync.Once
	injConfigs []rules.Object
	injErr     error
}

// injectorConfigs lists the MutatingWebhookConfigurations at most once per
// request; a failed read is recorded each time it is used.
func (v *requestView) injectorConfigs() ([]rules.Object, error) {
	v.injOnce.Do(func() { v.injConfigs, v.injErr = v.c.injectorConfigs() })
	return v.injConfigs, v.injErr
}

var (
	_ rules.Context           = (*requestView)(nil)
	_ rules.NamespacePods     = (*requestView)(nil)
	_ rules.ServiceEntries    = (*requestView)(nil)
	_ rules.DestinationRules  = (*requestView)(nil)
	_ rules.WebhookBackends   = (*requestView)(nil)
	_ rules.InjectorRevisions = (*requestView)(nil)
	_ rules.InjectorVersions  = (*requestView)(nil)
	_ rules.IstiodDeployments = (*requestView)(nil)
)

func (c *cacheContext) forRequest() (rules.Context, func() error) {
	v := &requestView{c: c}
	return v, v.firstError
}

func (v *requestView) fail(err error) {
	if err == nil {
		return
	}
	v.mu.Lock()
	if v.err == nil {
		v.err = err
	}
	v.mu.Unlock()
}

func (v *requestView) firstError() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.err
}

func (v *requestView) Namespace(name string) (rules.Namespace, bool) {
	ns, ok, err := v.c.namespace(name)
	v.fail(err)
	return ns, ok
}

func (v *requestView) PeerAuthentications(namespace string) []rules.Object {
	l, err := v.c.listIstio(gvkPeerAuthentication, namespace)
	v.fail(err)
	return l
}

func (v *requestView) AuthorizationPolicies(namespace string) []rules.Object {
	l, err := v.c.listIstio(gvkAuthorizationPolicy, namespace)
	v.fail(err)
	return l
}

func (v *requestView) Pods(namespace string) ([]rules.Object, bool) {
	l, ok, err := v.c.pods(namespace)
	v.fail(err)
	return l, ok
}

func (v *requestView) ServiceEntries() []rules.Object {
	l, err := v.c.listIstio(gvkServiceEntry, "")
	v.fail(err)
	return l
}

func (v *requestView) DestinationRules() []rules.Object {
	l, err := v.c.listIstio(gvkDestinationRule, "")
	v.fail(err)
	return l
}

func (v *requestView) WebhookBackends(namespace string) []rules.WebhookBackend {
	l, err := v.c.webhookBackends(namespace)
	v.fail(err)
	return l
}

func (v *requestView) InjectorVersions() map[string]string {
	configs, err := v.injectorConfigs()
	v.fail(err)
	return rules.VersionsFromWebhooks(configs)
}

func (v *requestView) IstiodDeployments() []rules.Object {
	return v.c.istiods.objects()
}

func (v *requestView) InjectorRevisions() ([]string, bool) {
	configs, err := v.injectorConfigs()
	if err != nil {
		v.fail(err)
		return nil, false
	}
	return rules.RevisionsFromWebhooks(configs)
}
