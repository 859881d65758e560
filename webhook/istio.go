package webhook

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// istioSecurityGroupVersion is the Istio API whose PeerAuthentications and
// AuthorizationPolicies the context caches.
const istioSecurityGroupVersion = "security.istio.io/v1"

// istioKinds names what one istioAPI follows: an Istio group version and the
// kinds it must serve before their informers start.
type istioKinds struct {
	// groupVersion is asked of discovery.
	groupVersion string
	// kinds must all be served (their storage version is groupVersion).
	kinds []string
	// api names the API in logs and errors ("Istio security API").
	api string
	// caches names the caches ("Istio policy caches").
	caches string
	// context names what the rules then read ("PeerAuthentications and
	// AuthorizationPolicies").
	context string
}

var (
	// istioSecurity: PeerAuthentications and AuthorizationPolicies.
	istioSecurity = istioKinds{groupVersion: istioSecurityGroupVersion, kinds: []string{"PeerAuthentication", "AuthorizationPolicy"},
		api: "Istio security API", caches: "Istio policy caches", context: "PeerAuthentications and AuthorizationPolicies"}
	// istioNetworking: ServiceEntries, whose endpoints can make a host an
	// alias of an in-mesh Service, and the DestinationRules a new alias is
	// judged against (MESH0010, MESH0011).
	istioNetworking = istioKinds{groupVersion: "networking.istio.io/v1", kinds: []string{"ServiceEntry", "DestinationRule"},
		api: "Istio networking API", caches: "ServiceEntry and DestinationRule caches", context: "ServiceEntries and DestinationRules"}
)

// DefaultIstioDiscoveryInterval is how often the API server's discovery is
// asked whether the Istio security API is served.
const DefaultIstioDiscoveryInterval = 30 * time.Second

// istioState is what meshguard knows about the Istio security API.
type istioState int

const (
	// istioUnknown: discovery has not answered yet (it is retried). Reads
	// of Istio policies are errors; readiness is false.
	istioUnknown istioState = iota
	// istioAbsent: the API is not served; there are no Istio policies.
	istioAbsent
	// istioSyncing: the API is served and the informers are started but have
	// not synced. Reads are errors; readiness is false.
	istioSyncing
	// istioSynced: the informers have synced; reads come from them.
	istioSynced
)

func (s istioState) String() string {
	switch s {
	case istioAbsent:
		return "not served"
	case istioSyncing:
		return "syncing"
	case istioSynced:
		return "synced"
	}
	return "unknown"
}

// istioInformers starts, waits for and stops the informers of the Istio
// policy kinds.
type istioInformers interface {
	// start starts the informers without waiting for them to sync.
	start(ctx context.Context) error
	// waitSynced blocks until every informer has synced (true) or ctx is done (false).
	waitSynced(ctx context.Context) bool
	// stop stops and removes the informers.
	stop(ctx context.Context) error
}

// istioAPI follows whether the Istio security API is served, asking
// discovery every interval, and keeps the Istio informers in step: started
// when the CRDs appear (the context reads them once synced), removed when
// they go. A discovery error is retried with backoff and never taken for
// "not installed": until discovery has answered once, the Istio context is
// unknown and readiness is false; after that the last answer stands. It is a
// manager runnable that runs on every replica.
type istioAPI struct {
	probe     func(context.Context) (bool, error)
	informers istioInformers
	interval  time.Duration
	// kinds is what this API follows; the zero value means istioSecurity.
	kinds istioKinds
	// retry is the first delay after a discovery error; it doubles up to interval.
	retry   time.Duration
	errs    *contextErrors
	log     logr.Logger
	changed func(istioState)

	mu    sync.Mutex
	state istioState
	// published is state, readable without a.mu (settled).
	published atomic.Int32
	lastErr   error              // the last discovery error while unknown
	stopSync  context.CancelFunc // stops waiting for the current informers' sync
	generated int                // bumped on every start and stop, so a stale sync is ignored
}

var (
	_ manager.Runnable               = (*istioAPI)(nil)
	_ manager.LeaderElectionRunnable = (*istioAPI)(nil)
)

func newIstioAPI(probe func(context.Context) (bool, error), inf istioInformers, interval time.Duration, errs *contextErrors, log logr.Logger, changed func(istioState)) *istioAPI {
	if interval <= 0 {
		interval = DefaultIstioDiscoveryInterval
	}
	if changed == nil {
		changed = func(istioState) {}
	}
	return &istioAPI{probe: probe, informers: inf, interval: interval, retry: min(time.Second, interval), errs: errs, log: log, changed: changed}
}

// NeedLeaderElection is false: every replica serves and needs the context.
func (*istioAPI) NeedLeaderElection() bool { return false }

// Start asks discovery until ctx is done.
func (a *istioAPI) Start(ctx context.Context) error {
	backoff := a.retry
	for {
		served, err := a.probe(ctx)
		next := a.interval
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			a.discoveryFailed(err)
			next, backoff = backoff, min(2*backoff, a.interval)
		} else {
			backoff = a.retry
			a.observe(ctx, served)
		}
		t := time.NewTimer(next)
		select {
		case <-ctx.Done():
			t.Stop()
			a.mu.Lock()
			if a.stopSync != nil {
				a.stopSync()
			}
			a.mu.Unlock()
			return nil
		case <-t.C:
		}
	}
}

func (a *istioAPI) discoveryFailed(err error) {
	a.errs.record("discovery", fmt.Errorf("discover %s: %w", a.what().groupVersion, err))
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.state == istioUnknown {
		a.lastErr = err
	}
}

// observe acts on a discovery answer. Only Start calls it, so the state
// changes it makes do not race; informers are started and stopped without
// holding a.mu, so reads never wait on the API calls that involves.
func (a *istioAPI) observe(ctx context.Context, served bool) {
	a.mu.Lock()
	state := a.state
	a.mu.Unlock()
	switch {
	case served && (state == istioUnknown || state == istioAbsent):
		if err := a.informers.start(ctx); err != nil {
			// Retried at the next discovery; until then reads say why.
			a.errs.record("discovery", fmt.Errorf("start the %s informers: %w", a.what().api, err))
			a.mu.Lock()
			if a.state == istioUnknown {
				a.lastErr = err
			}
			a.mu.Unlock()
			return
		}
		syncCtx, cancel := context.WithCancel(ctx)
		a.mu.Lock()
		a.generated++
		gen := a.generated
		a.stopSync = cancel
		a.set(istioSyncing)
		a.mu.Unlock()
		a.log.Info(a.what().api + " served: starting the " + a.what().caches + "; not ready until they sync")
		go func() {
			if !a.informers.waitSynced(syncCtx) {
				return
			}
			a.mu.Lock()
			defer a.mu.Unlock()
			if a.generated == gen && a.state == istioSyncing {
				a.set(istioSynced)
				a.log.Info(a.what().caches + " synced: " + a.what().context + " are read")
			}
		}()
	case !served && (state == istioSyncing || state == istioSynced):
		a.mu.Lock()
		if a.stopSync != nil {
			a.stopSync()
			a.stopSync = nil
		}
		a.generated++
		a.set(istioAbsent)
		a.mu.Unlock()
		if err := a.informers.stop(ctx); err != nil {
			a.errs.record("discovery", fmt.Errorf("stop the %s informers: %w", a.what().api, err))
		}
		a.log.Info(a.what().api + " no longer served: the " + a.what().context + " context is empty")
	case !served && state == istioUnknown:
		a.mu.Lock()
		a.set(istioAbsent)
		a.mu.Unlock()
		a.log.Info(a.what().api+" not served: the "+a.what().context+" context is empty until its CRDs are installed", "checkedEvery", a.interval.String())
	}
}

// set changes the state; a.mu is held.
func (a *istioAPI) set(s istioState) {
	a.state = s
	a.published.Store(int32(s))
	a.lastErr = nil
	a.changed(s)
}

// readable says whether the Istio policies are read from the caches (true),
// are known not to exist (false), or cannot be read now (an error).
func (a *istioAPI) readable() (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch a.state {
	case istioSynced:
		return true, nil
	case istioAbsent:
		return false, nil
	case istioSyncing:
		return false, fmt.Errorf("the %s have not synced yet", a.what().caches)
	}
	if a.lastErr != nil {
		return false, fmt.Errorf("whether the %s is served is not known yet: %w", a.what().api, a.lastErr)
	}
	return false, fmt.Errorf("whether the %s is served is not known yet", a.what().api)
}

// what is what the API follows.
func (a *istioAPI) what() istioKinds {
	if a.kinds.groupVersion == "" {
		return istioSecurity
	}
	return a.kinds
}

// check is the Istio part of the context readiness check.
func (a *istioAPI) check() error {
	_, err := a.readable()
	return err
}

// discoverIstio returns the discovery probe of the Istio security API:
// whether security.istio.io/v1 serves both PeerAuthentication and
// AuthorizationPolicy.
func discoverIstio(cfg *rest.Config) (func(context.Context) (bool, error), error) {
	return discoverIstioKinds(cfg, istioSecurity)
}

// discoverIstioKinds returns the discovery probe: whether the group version
// serves every kind. A group version that is not served (404) is "not
// served"; any other failure is an error.
func discoverIstioKinds(cfg *rest.Config, k istioKinds) (func(context.Context) (bool, error), error) {
	cfg = rest.CopyConfig(cfg)
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	return func(context.Context) (bool, error) {
		res, err := dc.ServerResourcesForGroupVersion(k.groupVersion)
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		found := map[string]bool{}
		for _, r := range res.APIResources {
			// Subresources (peerauthentications/status) carry their parent's kind.
			if !strings.Contains(r.Name, "/") && slices.Contains(k.kinds, r.Kind) {
				found[r.Kind] = true
			}
		}
		return len(found) == len(k.kinds), nil
	}, nil
}

// cacheInformers are the Istio informers in the manager's cache.
type cacheInformers struct {
	cache cache.Cache
	// kinds are the kinds to inform on; the zero value means istioSecurity.
	kinds istioKinds
	mu    sync.Mutex
	infs  []cache.Informer
}

func (c *cacheInformers) objects() []client.Object {
	k := c.kinds
	if k.groupVersion == "" {
		k = istioSecurity
	}
	gv, _ := schema.ParseGroupVersion(k.groupVersion)
	var objs []client.Object
	for _, kind := range k.kinds {
		item := &unstructured.Unstructured{}
		item.SetGroupVersionKind(gv.WithKind(kind))
		objs = append(objs, item)
	}
	return objs
}

func (c *cacheInformers) start(ctx context.Context) error {
	var infs []cache.Informer
	for _, obj := range c.objects() {
		inf, err := c.cache.GetInformer(ctx, obj, cache.BlockUntilSynced(false))
		if err != nil {
			return fmt.Errorf("%s: %w", obj.GetObjectKind().GroupVersionKind().Kind, err)
		}
		infs = append(infs, inf)
	}
	c.mu.Lock()
	c.infs = infs
	c.mu.Unlock()
	return nil
}

func (c *cacheInformers) waitSynced(ctx context.Context) bool {
	c.mu.Lock()
	var synced []toolscache.InformerSynced
	for _, inf := range c.infs {
		synced = append(synced, inf.HasSynced)
	}
	c.mu.Unlock()
	return toolscache.WaitForCacheSync(ctx.Done(), synced...)
}

func (c *cacheInformers) stop(ctx context.Context) error {
	var errs []error
	for _, obj := range c.objects() {
		errs = append(errs, c.cache.RemoveInformer(ctx, obj))
	}
	c.mu.Lock()
	c.infs = nil
	c.mu.Unlock()
	return errors.Join(errs...)
}

// readyCheck is the context-caches readiness check: the caches of the
// built-in kinds have synced, and the Istio security API is known to be not
// served or its caches have synced.
func (c *cacheContext) readyCheck(*http.Request) error {
	if !c.synced.Load() {
		return errors.New("context caches have not synced")
	}
	if c.istio != nil {
		if err := c.istio.check(); err != nil {
			return err
		}
	}
	if c.istioNet != nil {
		return c.istioNet.check()
	}
	return nil
}

// syncedGauge is the value of meshguard_cache_synced for the security API's
// state s: the built-in caches have synced, and each Istio API is known not
// to be served or has its caches synced.
func (c *cacheContext) syncedGauge(s istioState) float64 {
	if c.synced.Load() && (s == istioAbsent || s == istioSynced) && c.istioNet.settled() {
		return 1
	}
	return 0
}

// settled is true when the API is known not to be served or its caches have
// synced (and for a nil API, which is not followed). It takes no lock, so a
// state-change callback may call it.
func (a *istioAPI) settled() bool {
	if a == nil {
		return true
	}
	s := istioState(a.published.Load())
	return s == istioAbsent || s == istioSynced
}

// current is the state now.
func (a *istioAPI) current() istioState {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.state
}

// servedGauge is the value of meshguard_istio_security_api_served.
func (s istioState) servedGauge() float64 {
	if s == istioSynced {
		return 1
	}
	return 0
}
