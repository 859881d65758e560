package posture

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/reports"
	"github.com/meshguard/meshguard/rules"
)

// Defaults of Options.
const (
	DefaultInterval = 10 * time.Minute
	DefaultDebounce = 2 * time.Second
	DefaultWorkers  = 2
)

// Options configure the background audit. Zero values take the defaults.
type Options struct {
	// Format is the report API written. Default reports.FormatOpenReports.
	Format reports.Format
	// Interval is the full resync: every scope is judged again and its stored
	// report re-read (and repaired if someone changed it). Default 10m.
	Interval time.Duration
	// Debounce is how long a scope waits after a change before it is judged,
	// so a burst of changes is judged once. Default 2s.
	Debounce time.Duration
	// MaxResults caps the results of one report. Default reports.DefaultMaxResults.
	MaxResults int
	// Workers judge scopes in parallel. Default 2.
	Workers int
	// CutEdges, when set, gives a namespace's edges the default-deny
	// controller's policies cut (ok false until it has derived them); they
	// go into the compliance view. Call Requeue when they change.
	CutEdges func(namespace string) ([]string, int, bool) `json:"-"`
}

// Validate rejects unusable options, naming the flag.
func (o *Options) Validate() error {
	if o.Format == "" {
		o.Format = reports.FormatOpenReports
	}
	if _, err := reports.ParseFormat(string(o.Format)); err != nil {
		return fmt.Errorf("--report-format: %w", err)
	}
	if o.Interval < 0 {
		return fmt.Errorf("--background-audit-interval: %s is negative", o.Interval)
	}
	if o.Interval > 0 && o.Interval < 10*time.Second {
		return fmt.Errorf("--background-audit-interval: %s is below 10s", o.Interval)
	}
	if o.Debounce < 0 || o.MaxResults < 0 || o.Workers < 0 {
		return errors.New("background audit: debounce, max results and workers must not be negative")
	}
	return nil
}

func (o Options) withDefaults() Options {
	if o.Format == "" {
		o.Format = reports.FormatOpenReports
	}
	if o.Interval == 0 {
		o.Interval = DefaultInterval
	}
	if o.Debounce == 0 {
		o.Debounce = DefaultDebounce
	}
	if o.MaxResults == 0 {
		o.MaxResults = reports.DefaultMaxResults
	}
	if o.Workers == 0 {
		o.Workers = DefaultWorkers
	}
	return o
}

// ContextView returns the rules.Context of one judgment and a function that
// returns the first read of it that failed (nil when every read succeeded).
// The webhook's cache context provides it.
type ContextView func() (rules.Context, func() error)

// Controller is the background audit, a leader-elected manager runnable.
type Controller struct {
	opts  Options
	ev    rules.Evaluator
	kinds []rules.KindInfo
	view  ContextView
	ready func() error
	m     *Metrics
	log   logr.Logger

	cache  cache.Cache
	scheme *runtime.Scheme
	reader client.Reader // the API server, for stored reports
	writer client.Client
	disc   audit.Discovery

	queue workqueue.TypedRateLimitingInterface[string]
	index *depIndex

	mu        sync.Mutex
	handled   map[schema.GroupKind]bool
	served    []audit.ServedKind
	reportsOK bool
	warned    bool                // the missing report API was logged
	memo      map[string][32]byte // scope -> content (timestamps aside) known to be stored
	// prefetched holds the stored reports a full resync listed at once (one
	// paginated LIST instead of a GET per scope), by scope; prefetchFor are
	// the resync's scopes not judged yet, for which prefetched is the truth
	// (absent: no report). Each scope uses it once.
	prefetched  map[string]*unstructured.Unstructured
	prefetchFor map[string]bool
	counts      map[string]map[string]int
	resync      *resyncRun
	// lastResync and lastResyncTook describe the last full resync.
	lastResync     time.Time
	lastResyncTook time.Duration
}

// resyncRun is a full resync in progress.
type resyncRun struct {
	started time.Time
	pending map[string]struct{}
}

var (
	_ manager.Runnable               = (*Controller)(nil)
	_ manager.LeaderElectionRunnable = (*Controller)(nil)
)

// New builds the background audit over the catalog's kinds. view gives each
// judgment its context (the webhook's caches), ready says whether those caches
// can be read yet.
func New(opts Options, ev rules.Evaluator, kinds []rules.KindInfo, view ContextView, ready func() error, m *Metrics, log logr.Logger) *Controller {
	if m == nil {
		m = NewMetrics()
	}
	return &Controller{
		opts: opts.withDefaults(), ev: ev, kinds: kinds, view: view, ready: ready, m: m, log: log,
		index:   newDepIndex(),
		handled: map[schema.GroupKind]bool{},
		memo:    map[string][32]byte{},
		counts:  map[string]map[string]int{},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "meshguard-posture"}),
	}
}

// SetupWithManager adds the controller to mgr: it reads the manager's cache
// (informers shared with the webhook) and writes reports with its client.
func (c *Controller) SetupWithManager(mgr manager.Manager) error {
	disc, err := discovery.NewDiscoveryClientForConfig(mgr.GetConfig())
	if err != nil {
		return fmt.Errorf("background audit: discovery: %w", err)
	}
	c.cache, c.scheme, c.reader, c.writer, c.disc = mgr.GetCache(), mgr.GetScheme(), mgr.GetAPIReader(), mgr.GetClient(), disc
	return mgr.Add(c)
}

// NeedLeaderElection is true: one replica writes the reports.
func (*Controller) NeedLeaderElection() bool { return true }

// Start runs the background audit until ctx is done.
func (c *Controller) Start(ctx context.Context) error {
	defer c.queue.ShutDown()
	go func() { <-ctx.Done(); c.queue.ShutDown() }()
	c.log.Info("background audit: waiting for the context caches", "format", c.opts.Format, "interval", c.opts.Interval.String())
	if err := wait.PollUntilContextCancel(ctx, 500*time.Millisecond, true, func(context.Context) (bool, error) {
		return c.ready() == nil, nil
	}); err != nil {
		return nil
	}
	// The report API and the covered kinds, until the report API is served.
	retry := min(30*time.Second, c.opts.Interval)
	for {
		if err := c.discover(ctx); err != nil {
			c.log.Error(err, "background audit: discovery failed; retrying", "in", retry.String())
		} else if c.reportsServed() {
			break
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(retry):
		}
	}
	if !c.cache.WaitForCacheSync(ctx) {
		return nil
	}
	var wg sync.WaitGroup
	for i := 0; i < c.opts.Workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c.next(ctx) {
			}
		}()
	}
	c.fullResync(ctx)
	t := time.NewTicker(c.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			c.queue.ShutDown()
			wg.Wait()
			return nil
		case <-t.C:
			if err := c.discover(ctx); err != nil {
				c.log.Error(err, "background audit: discovery failed; judging the kinds known so far")
			}
			if c.cache.WaitForCacheSync(ctx) {
				c.fullResync(ctx)
			}
		}
	}
}

func (c *Controller) reportsServed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reportsOK
}

// discover asks which covered kinds and whether the report kinds are served,
// and starts watching the kinds not watched yet.
func (c *Controller) discover(ctx context.Context) error {
	nsGVR, clGVR := c.opts.Format.Resources()
	res, err := c.disc.ServerResourcesForGroupVersionWithContext(ctx, nsGVR.GroupVersion().String())
	served := false
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return fmt.Errorf("discover %s: %w", nsGVR.GroupVersion(), err)
	default:
		found := 0
		for _, r := range res.APIResources {
			if r.Name == nsGVR.Resource || r.Name == clGVR.Resource {
				found++
			}
		}
		served = found == 2
	}
	c.mu.Lock()
	warn := !served && !c.warned
	c.warned = !served
	c.reportsOK = served
	c.mu.Unlock()
	if served {
		c.m.ReportsAPI.Set(1)
	} else {
		c.m.ReportsAPI.Set(0)
		if warn {
			c.log.Error(nil, "background audit: the report API is not served, nothing is written until its CRDs are installed (chart value backgroundAudit.installCRDs)",
				"resources", nsGVR.GroupResource().String()+", "+clGVR.GroupResource().String())
		}
	}
	kinds, unavailable, err := audit.ResolveKinds(ctx, c.disc, c.kinds)
	if err != nil {
		return err
	}
	ctxOnly, _, err := audit.ResolveKinds(ctx, c.disc, audit.ContextOnlyKinds())
	if err != nil {
		return err
	}
	for _, k := range append(append([]audit.ServedKind(nil), kinds...), ctxOnly...) {
		gk := k.Info.GroupKind()
		c.mu.Lock()
		done := c.handled[gk]
		c.mu.Unlock()
		if done {
			continue
		}
		inf, err := c.cache.GetInformer(ctx, c.prototype(k), cache.BlockUntilSynced(false))
		if err != nil {
			return fmt.Errorf("watch %s: %w", k.GVR().GroupResource(), err)
		}
		if _, err := inf.AddEventHandler(c.handler(gk)); err != nil {
			return fmt.Errorf("watch %s: %w", k.GVR().GroupResource(), err)
		}
		c.mu.Lock()
		c.handled[gk] = true
		c.mu.Unlock()
	}
	c.mu.Lock()
	c.served = kinds
	c.mu.Unlock()
	if len(unavailable) > 0 {
		var names []string
		for _, u := range unavailable {
			names = append(names, u.String())
		}
		c.log.V(1).Info("background audit: kinds not served", "kinds", strings.Join(names, ", "))
	}
	return nil
}

// prototype is the object the cache watches a kind as: the typed object when
// the scheme knows the kind (sharing the webhook's typed informers for
// Namespaces, Pods and Services), unstructured otherwise (Istio's kinds,
// sharing the webhook's PeerAuthentication and AuthorizationPolicy informers).
func (c *Controller) prototype(k audit.ServedKind) client.Object {
	gvk := k.GVR().GroupVersion().WithKind(k.Info.Kind)
	if obj, err := c.scheme.New(gvk); err == nil {
		if co, ok := obj.(client.Object); ok {
			return co
		}
	}
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvk)
	return u
}

func (c *Controller) listPrototype(k audit.ServedKind) client.ObjectList {
	gvk := k.GVR().GroupVersion().WithKind(k.Info.Kind + "List")
	if obj, err := c.scheme.New(gvk); err == nil {
		if l, ok := obj.(client.ObjectList); ok {
			return l
		}
	}
	l := &unstructured.UnstructuredList{}
	l.SetGroupVersionKind(gvk)
	return l
}

// contextDeps maps a kind to the context it is part of.
var contextDeps = map[schema.GroupKind]string{
	{Kind: "Pod"}:     depPods,
	{Kind: "Service"}: depServices,
	{Group: "security.istio.io", Kind: "PeerAuthentication"}:  depPeerAuthn,
	{Group: "security.istio.io", Kind: "AuthorizationPolicy"}: depAuthzPolicy,
	{Group: "networking.k8s.io", Kind: "NetworkPolicy"}:       depNetworkPolicy,
}

var webhookKinds = map[schema.GroupKind]bool{
	{Group: "admissionregistration.k8s.io", Kind: "MutatingWebhookConfiguration"}:   true,
	{Group: "admissionregistration.k8s.io", Kind: "ValidatingWebhookConfiguration"}: true,
}

// handler enqueues the scope of a changed object and the scopes that read
// it as context.
func (c *Controller) handler(gk schema.GroupKind) toolscache.ResourceEventHandler {
	changed := func(obj any) {
		if t, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
			obj = t.Obj
		}
		o, err := meta.Accessor(obj)
		if err != nil {
			return
		}
		c.changed(gk, o.GetNamespace(), o.GetName())
	}
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc: changed,
		UpdateFunc: func(oldObj, newObj any) {
			o, err1 := meta.Accessor(oldObj)
			n, err2 := meta.Accessor(newObj)
			if err1 == nil && err2 == nil && o.GetResourceVersion() == n.GetResourceVersion() {
				return // an informer resync: nothing changed
			}
			if webhookKinds[gk] && !webhookChangeMatters(oldObj, newObj) {
				return // a caBundle rotation, not context
			}
			changed(newObj)
		},
		DeleteFunc: changed,
	}
}

// changed enqueues, debounced, what a change of an object makes stale.
func (c *Controller) changed(gk schema.GroupKind, namespace, name string) {
	switch {
	case webhookKinds[gk]:
		c.enqueueReaders(dep{kind: depWebhooks})
		return
	case gk == schema.GroupKind{Kind: "Namespace"}:
		c.enqueue(name)
		c.enqueueReaders(dep{kind: depNamespace, namespace: name})
		return
	}
	c.enqueue(namespace) // "" is the cluster scope
	if d, ok := contextDeps[gk]; ok {
		c.enqueueReaders(dep{kind: d, namespace: namespace})
	}
}

// SetCutEdges sets Options.CutEdges. Call before the manager starts.
func (c *Controller) SetCutEdges(f func(string) ([]string, int, bool)) { c.opts.CutEdges = f }

// Requeue judges a namespace again (debounced): something it reads outside
// the rules' context changed (the cut edges).
func (c *Controller) Requeue(namespace string) { c.enqueue(namespace) }

func (c *Controller) enqueue(scope string) {
	c.queue.AddAfter(scope, c.opts.Debounce)
}

func (c *Controller) enqueueReaders(d dep) {
	for _, s := range c.index.readersOf(d) {
		c.enqueue(s)
	}
}

// fullResync enqueues every scope; their stored reports are re-read.
func (c *Controller) fullResync(ctx context.Context) {
	scopes := []string{""}
	var nsl corev1.NamespaceList
	if err := c.cache.List(ctx, &nsl, client.UnsafeDisableDeepCopy); err != nil {
		c.log.Error(err, "background audit: list namespaces for the full resync")
		return
	}
	for i := range nsl.Items {
		scopes = append(scopes, nsl.Items[i].Name)
	}
	run := &resyncRun{started: time.Now(), pending: make(map[string]struct{}, len(scopes))}
	for _, s := range scopes {
		run.pending[s] = struct{}{}
	}
	stored, err := c.listStored(ctx)
	if err != nil {
		c.log.Error(err, "background audit: list the stored reports; reading them one by one")
	}
	c.mu.Lock()
	c.resync = run
	for _, s := range scopes {
		delete(c.memo, s) // re-read the stored report
	}
	c.prefetched, c.prefetchFor = stored, nil
	if err == nil {
		c.prefetchFor = make(map[string]bool, len(scopes))
		for _, s := range scopes {
			c.prefetchFor[s] = true
		}
	}
	c.mu.Unlock()
	for _, s := range scopes {
		c.queue.Add(s)
	}
	c.m.QueueDepth.Set(float64(c.queue.Len()))
	c.log.V(1).Info("background audit: full resync", "scopes", len(scopes))
}

// listStored lists the stored reports of the format (namespaced and the
// cluster report), paged, by scope.
func (c *Controller) listStored(ctx context.Context) (map[string]*unstructured.Unstructured, error) {
	out := map[string]*unstructured.Unstructured{}
	for _, namespaced := range []bool{true, false} {
		l := &unstructured.UnstructuredList{}
		l.SetGroupVersionKind(c.opts.Format.GVK(namespaced).GroupVersion().WithKind(c.opts.Format.GVK(namespaced).Kind + "List"))
		cont := ""
		for {
			if err := c.reader.List(ctx, l, client.MatchingLabels{reports.LabelManagedBy: reports.ManagedBy}, client.Limit(500), client.Continue(cont)); err != nil {
				return nil, err
			}
			for i := range l.Items {
				if l.Items[i].GetName() == reports.Name {
					out[l.Items[i].GetNamespace()] = l.Items[i].DeepCopy()
				}
			}
			if cont = l.GetContinue(); cont == "" {
				break
			}
		}
	}
	return out, nil
}

// storedReport returns the stored report of a scope: the full resync's
// prefetched one (used once), else read from the API server.
func (c *Controller) storedReport(ctx context.Context, scope string, gvk schema.GroupVersionKind) (*unstructured.Unstructured, error) {
	c.mu.Lock()
	listed := c.prefetchFor[scope]
	u, ok := c.prefetched[scope]
	delete(c.prefetchFor, scope)
	delete(c.prefetched, scope)
	c.mu.Unlock()
	switch {
	case listed && ok:
		return u, nil
	case listed:
		return nil, apierrors.NewNotFound(schema.GroupResource{Group: gvk.Group, Resource: gvk.Kind}, reports.Name)
	}
	stored := &unstructured.Unstructured{}
	stored.SetGroupVersionKind(gvk)
	if err := c.reader.Get(ctx, client.ObjectKey{Namespace: scope, Name: reports.Name}, stored); err != nil {
		return nil, err
	}
	return stored, nil
}

// next judges one scope; false once the queue is shut down.
func (c *Controller) next(ctx context.Context) bool {
	scope, shutdown := c.queue.Get()
	if shutdown {
		return false
	}
	defer c.queue.Done(scope)
	err := c.judge(ctx, scope)
	if err != nil {
		c.log.Error(err, "background audit: judge scope; retrying with backoff", "scope", scopeName(scope))
		c.queue.AddRateLimited(scope)
	} else {
		c.queue.Forget(scope)
		c.resyncDone(scope)
	}
	c.m.QueueDepth.Set(float64(c.queue.Len()))
	return true
}

func (c *Controller) resyncDone(scope string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.resync == nil {
		return
	}
	delete(c.resync.pending, scope)
	if len(c.resync.pending) == 0 {
		d := time.Since(c.resync.started)
		c.lastResync, c.lastResyncTook = time.Now(), d
		c.m.LastResync.SetToCurrentTime()
		c.m.ResyncDuration.Set(d.Seconds())
		c.log.Info("background audit: full resync done", "duration", d.String())
		c.resync = nil
	}
}

func scopeName(scope string) string {
	if scope == "" {
		return "(cluster)"
	}
	return scope
}

// errContext is a judgment whose context could not be read.
type errContext struct{ err error }

func (e errContext) Error() string { return "context: " + e.err.Error() }
func (e errContext) Unwrap() error { return e.err }

// judge evaluates every covered object of a scope and writes its report when
// it changed.
func (c *Controller) judge(ctx context.Context, scope string) error {
	objs, skip, err := c.objectsOf(ctx, scope)
	if err != nil {
		c.m.Judgments.WithLabelValues("context_error").Inc()
		return err
	}
	if skip {
		// The namespace is gone or going: its report goes with it.
		c.index.keepOnly(scope, nil)
		c.mu.Lock()
		delete(c.memo, scope)
		delete(c.counts, scope)
		c.mu.Unlock()
		c.publishCounts()
		c.m.forgetNamespace(scope)
		c.m.Judgments.WithLabelValues("skipped").Inc()
		return nil
	}
	view, firstErr := c.view()
	rec := newRecorder(view, scope, c.index)
	rec.netpols = func(ns string) ([]string, bool) { return c.managedNetpols(ctx, ns) }
	now := metav1.Timestamp{Seconds: time.Now().Unix()}
	var findings []rules.Finding
	type evalError struct {
		subject reports.Subject
		msg     string
	}
	var evalErrs []evalError
	for _, obj := range objs {
		fs, err := c.ev.Evaluate(ctx, &rules.Request{Object: obj, PostInjection: true, Context: rec})
		if err != nil {
			if firstErr() != nil {
				break
			}
			c.m.EvaluationErrors.Inc()
			ref := rules.ObjectRefOf(obj, "")
			c.log.Error(err, "background audit: an object could not be evaluated; it is an error result in its report", "scope", scopeName(scope), "kind", ref.Kind, "name", ref.Name)
			evalErrs = append(evalErrs, evalError{reports.Subject{APIVersion: ref.APIVersion, Kind: ref.Kind, Namespace: ref.Namespace, Name: ref.Name}, err.Error()})
			continue
		}
		findings = append(findings, fs...)
	}
	var comp *reports.Compliance
	if scope != "" {
		comp = c.compliance(rec, scope, objs)
	}
	if err := firstErr(); err != nil {
		c.m.Judgments.WithLabelValues("context_error").Inc()
		return errContext{err}
	}
	c.index.keepOnly(scope, rec.read())
	rep := reports.Build(scope, findings, now, c.opts.MaxResults)
	for _, e := range evalErrs {
		rep.AddError(e.subject, e.msg, now)
	}
	rep.Compliance = comp
	result, err := c.write(ctx, rep)
	if err != nil {
		c.m.Judgments.WithLabelValues("write_error").Inc()
		return err
	}
	c.m.Judgments.WithLabelValues(result).Inc()
	bySev := map[string]int{}
	for _, f := range findings {
		bySev[f.Severity.String()]++
	}
	c.mu.Lock()
	c.counts[scope] = bySev
	c.mu.Unlock()
	c.publishCounts()
	if scope != "" {
		c.m.publishNamespace(scope, comp, bySev)
	}
	return nil
}

// compliance is a namespace's compliance view, read through the recorder so
// that a change of what it depends on (a mesh-wide PeerAuthentication, an
// AuthorizationPolicy, a managed NetworkPolicy) re-judges the namespace.
// Nil when the evaluator cannot resolve it.
func (c *Controller) compliance(ctx rules.Context, scope string, objs []rules.Object) *reports.Compliance {
	ev, ok := c.ev.(audit.ClusterEvaluator)
	if !ok {
		return nil
	}
	comp := &reports.Compliance{MeshMode: rules.ModeUnknown}
	if ns, ok := ctx.Namespace(scope); ok {
		comp.MeshMode = ev.NamespaceMeshMode(ns)
		np := ev.NamespaceNetpol(ctx, ns)
		comp.NetworkPolicies = reports.NetpolCompliance{Profile: np.Profile, Status: np.Status, Missing: np.Missing}
		if c.opts.CutEdges != nil {
			if cut, total, ok := c.opts.CutEdges(scope); ok && total > 0 {
				comp.NetworkPolicies.CutEdges, comp.NetworkPolicies.CutEdgesTotal = cut, total
			}
		}
	}
	comp.MTLS = ev.NamespaceMTLS(ctx, scope)
	comp.Authz = ev.NamespaceAuthz(ctx, scope)
	for _, obj := range objs {
		mode, workload := ev.WorkloadMeshMode(ctx, obj, "", true)
		if !workload {
			continue
		}
		comp.Workloads++
		if mode == rules.ModeSidecar || mode == rules.ModeAmbient {
			comp.Meshed++
		}
		if q := quarantineOf(obj); q != "" {
			ref := rules.ObjectRefOf(obj, "")
			comp.Quarantined = append(comp.Quarantined, ref.Kind+"/"+ref.Name)
		}
	}
	sort.Strings(comp.Quarantined)
	return comp
}

// LabelQuarantined marks a quarantined workload and its pods.
const LabelQuarantined = "meshguard.io/quarantined"

// quarantineOf returns the quarantine label of a workload ("" when none).
func quarantineOf(obj rules.Object) string {
	md, _ := obj["metadata"].(map[string]any)
	labels, _ := md["labels"].(map[string]any)
	v, _ := labels[LabelQuarantined].(string)
	return v
}

// managedNetpols lists the names of a namespace's NetworkPolicies labelled
// meshguard.io/managed=true from the background audit's cache; unknown when
// NetworkPolicies are not watched or cannot be read.
func (c *Controller) managedNetpols(ctx context.Context, namespace string) ([]string, bool) {
	c.mu.Lock()
	kinds := c.served
	c.mu.Unlock()
	for _, k := range kinds {
		if k.Info.Group != "networking.k8s.io" || k.Info.Kind != "NetworkPolicy" {
			continue
		}
		l := c.listPrototype(k)
		if err := c.cache.List(ctx, l, client.InNamespace(namespace), client.MatchingLabels{"meshguard.io/managed": "true"}); err != nil {
			return nil, false
		}
		items, err := meta.ExtractList(l)
		if err != nil {
			return nil, false
		}
		names := make([]string, 0, len(items))
		for _, it := range items {
			if o, ok := it.(client.Object); ok {
				names = append(names, o.GetName())
			}
		}
		sort.Strings(names)
		return names, true
	}
	return nil, false
}

func (c *Controller) publishCounts() {
	c.mu.Lock()
	total := map[string]int{}
	for _, m := range c.counts {
		for s, n := range m {
			total[s] += n
		}
	}
	c.mu.Unlock()
	for _, s := range rules.Severities() {
		c.m.Results.WithLabelValues(s.String()).Set(float64(total[s.String()]))
	}
}

// objectsOf reads a scope's covered objects from the cache, as the rules
// take them. skip is true for a namespace that is gone or terminating.
func (c *Controller) objectsOf(ctx context.Context, scope string) (objs []rules.Object, skip bool, err error) {
	c.mu.Lock()
	kinds := c.served
	c.mu.Unlock()
	for _, k := range kinds {
		isNS := k.Info.Group == "" && k.Info.Kind == "Namespace"
		switch {
		case isNS && scope != "":
			obj := c.prototype(k)
			if err := c.cache.Get(ctx, client.ObjectKey{Name: scope}, obj); err != nil {
				if apierrors.IsNotFound(err) {
					return nil, true, nil
				}
				return nil, false, fmt.Errorf("read namespace %s from the cache: %w", scope, err)
			}
			if obj.GetDeletionTimestamp() != nil {
				return nil, true, nil
			}
			o, err := c.decode(k, obj)
			if err != nil {
				return nil, false, err
			}
			objs = append(objs, o)
		case isNS:
		case k.Info.Namespaced == (scope != ""):
			l := c.listPrototype(k)
			opts := []client.ListOption{}
			if scope != "" {
				opts = append(opts, client.InNamespace(scope))
			}
			if err := c.cache.List(ctx, l, opts...); err != nil {
				return nil, false, fmt.Errorf("list %s from the cache: %w", k.GVR().GroupResource(), err)
			}
			items, err := meta.ExtractList(l)
			if err != nil {
				return nil, false, err
			}
			for _, it := range items {
				co, ok := it.(client.Object)
				if !ok {
					continue
				}
				o, err := c.decode(k, co)
				if err != nil {
					return nil, false, err
				}
				if audit.JudgedViaOwner(k.Info.GroupKind(), o) {
					continue
				}
				objs = append(objs, o)
			}
		}
	}
	return objs, false, nil
}

// decode turns a cached object into what the rules read: a fresh map with
// apiVersion and kind, JSON numbers, no managed fields. The cached object is
// not modified.
func (c *Controller) decode(k audit.ServedKind, obj client.Object) (rules.Object, error) {
	var m map[string]any
	if u, ok := obj.(*unstructured.Unstructured); ok {
		m = u.DeepCopy().Object
	} else {
		var err error
		if m, err = runtime.DefaultUnstructuredConverter.ToUnstructured(obj); err != nil {
			return nil, fmt.Errorf("decode %s %s/%s: %w", k.Info.Kind, obj.GetNamespace(), obj.GetName(), err)
		}
	}
	m["apiVersion"] = k.GVR().GroupVersion().String()
	m["kind"] = k.Info.Kind
	if md, ok := m["metadata"].(map[string]any); ok {
		delete(md, "managedFields")
	}
	return rules.JSONNumbers(m).(map[string]any), nil
}

// write makes the stored report equal to rep, writing only when its content
// differs: "written" or "unchanged".
func (c *Controller) write(ctx context.Context, rep reports.Report) (string, error) {
	scope := rep.Namespace
	sum := contentSum(rep)
	c.mu.Lock()
	known, ok := c.memo[scope]
	c.mu.Unlock()
	if ok && known == sum {
		return "unchanged", nil
	}
	desired, err := rep.Object(c.opts.Format)
	if err != nil {
		return "", err
	}
	kind := desired.GetKind()
	stored, err := c.storedReport(ctx, scope, desired.GroupVersionKind())
	switch {
	case apierrors.IsNotFound(err):
		if err := c.writer.Create(ctx, desired); err != nil {
			c.m.Writes.WithLabelValues(kind, "create", "error").Inc()
			return "", fmt.Errorf("create %s %s: %w", kind, scopeName(scope), err)
		}
		c.m.Writes.WithLabelValues(kind, "create", "ok").Inc()
	case err != nil:
		return "", fmt.Errorf("read %s %s: %w", kind, scopeName(scope), err)
	default:
		old, err := reports.Parse(stored)
		if err != nil {
			return "", err
		}
		rep.KeepTimestamps(old)
		if desired, err = rep.Object(c.opts.Format); err != nil {
			return "", err
		}
		if reports.SameContent(desired, stored) {
			c.mu.Lock()
			c.memo[scope] = sum
			c.mu.Unlock()
			return "unchanged", nil
		}
		updated := stored.DeepCopy()
		reports.CopyContent(desired, updated)
		if err := c.writer.Update(ctx, updated); err != nil {
			c.m.Writes.WithLabelValues(kind, "update", "error").Inc()
			return "", fmt.Errorf("update %s %s: %w", kind, scopeName(scope), err)
		}
		c.m.Writes.WithLabelValues(kind, "update", "ok").Inc()
	}
	c.mu.Lock()
	c.memo[scope] = sum
	c.mu.Unlock()
	return "written", nil
}

// contentSum identifies a report's content apart from its timestamps.
func contentSum(rep reports.Report) [32]byte {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%d\x00%d\x00%d\x00", rep.Namespace, rep.Findings, rep.MaxResults, rep.Errors)
	if rep.Compliance != nil {
		b, _ := json.Marshal(rep.Compliance)
		h.Write(b)
	}
	h.Write([]byte{0})
	for _, r := range rep.Results {
		fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00%s/%s/%s/%s\x00%s\x00%s\x00%s\x01", r.Policy, r.Rule, r.Severity, r.Message,
			r.Subject.APIVersion, r.Subject.Kind, r.Subject.Namespace, r.Subject.Name, r.Properties[reports.PropertyTitle], r.Properties[reports.PropertyDetails], r.Outcome)
	}
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

// webhookChangeMatters says whether a webhook configuration changed in what
// the rules read: its labels (istio.io/rev, istio.io/tag) or the Services its
// webhooks call. A caBundle rotation does not matter.
func webhookChangeMatters(oldObj, newObj any) bool {
	return webhookContext(oldObj) != webhookContext(newObj)
}

func webhookContext(obj any) string {
	var b strings.Builder
	write := func(labels map[string]string, refs []*admissionregistrationv1.ServiceReference) {
		for _, k := range []string{"istio.io/rev", "istio.io/tag"} {
			fmt.Fprintf(&b, "%s=%s;", k, labels[k])
		}
		for _, r := range refs {
			if r == nil {
				b.WriteString("url;")
				continue
			}
			port := int32(443)
			if r.Port != nil {
				port = *r.Port
			}
			fmt.Fprintf(&b, "%s/%s:%d;", r.Namespace, r.Name, port)
		}
	}
	switch o := obj.(type) {
	case *admissionregistrationv1.MutatingWebhookConfiguration:
		refs := make([]*admissionregistrationv1.ServiceReference, 0, len(o.Webhooks))
		for i := range o.Webhooks {
			refs = append(refs, o.Webhooks[i].ClientConfig.Service)
		}
		write(o.Labels, refs)
	case *admissionregistrationv1.ValidatingWebhookConfiguration:
		refs := make([]*admissionregistrationv1.ServiceReference, 0, len(o.Webhooks))
		for i := range o.Webhooks {
			refs = append(refs, o.Webhooks[i].ClientConfig.Service)
		}
		write(o.Labels, refs)
	default:
		return fmt.Sprintf("%p", obj) // unknown shape: always a change
	}
	return b.String()
}

// LastFullResync returns when the last full resync finished (zero before the
// first) and how long it took.
func (c *Controller) LastFullResync() (time.Time, time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastResync, c.lastResyncTook
}

// BackgroundKinds are the catalog kinds the background audit judges: every
// kind the rules cover but Bindings (subresource requests, never stored),
// Endpoints and EndpointSlices (written by the endpoint controllers at a high
// rate, and judged at admission, where hand-written ones are caught) and
// ConfigMaps (only istiod's few are judged, at admission and by `audit
// --cluster`; watching every ConfigMap of a cluster would hold them all in
// memory).
func BackgroundKinds(kinds []rules.KindInfo) []rules.KindInfo {
	out := make([]rules.KindInfo, 0, len(kinds))
	for _, k := range kinds {
		switch {
		case k.Group == "" && (k.Kind == "Binding" || k.Kind == "Endpoints" || k.Kind == "ConfigMap"),
			k.Group == "discovery.k8s.io" && k.Kind == "EndpointSlice":
			continue
		}
		out = append(out, k)
	}
	return out
}
