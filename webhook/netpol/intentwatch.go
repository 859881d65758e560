package netpol

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/graph"
	"github.com/meshguard/meshguard/rules"
)

// IntentKinds are the kinds the intent is derived from: the graph's (for
// AuthorizationPolicies, workloads and the edges enforcing would cut) and
// the routes'.
func IntentKinds() []rules.KindInfo {
	out := graph.Kinds()
	seen := map[schema.GroupKind]bool{}
	for _, k := range out {
		seen[k.GroupKind()] = true
	}
	for _, gk := range []schema.GroupKind{
		{Kind: "Namespace"}, {Kind: "Service"}, {Kind: "Pod"},
		{Group: "apps", Kind: "Deployment"}, {Group: "apps", Kind: "StatefulSet"}, {Group: "apps", Kind: "DaemonSet"},
		{Group: "networking.istio.io", Kind: "Gateway"}, {Group: "networking.istio.io", Kind: "VirtualService"},
		{Group: "gateway.networking.k8s.io", Kind: "Gateway"}, {Group: "gateway.networking.k8s.io", Kind: "HTTPRoute"},
		{Group: "gateway.networking.k8s.io", Kind: "ReferenceGrant"},
	} {
		if k, ok := rules.LookupKind(gk); ok && !seen[gk] {
			out = append(out, k)
		}
	}
	return out
}

// Intent timing defaults.
const (
	// DefaultIntentDebounce coalesces a burst of changes into one derivation.
	DefaultIntentDebounce = 2 * time.Second
	// DefaultIntentResync re-asks discovery (CRDs installed later) and
	// derives again.
	DefaultIntentResync = 5 * time.Minute
	// DefaultIntentMinInterval is the least time between two derivations.
	DefaultIntentMinInterval = 10 * time.Second
	// DefaultIntentMaxWorkloads bounds the graph a derivation computes
	// (BENCHMARKS.md: 2,000 workloads cost about 2 s and 0.5 GB allocated).
	DefaultIntentMaxWorkloads = 2000
)

// intentState is the last derived intent. Until the first derivation
// succeeds it is not ready and the controller neither creates nor removes
// derived policies: a restart never cuts an edge it had kept open.
type intentState struct {
	mu    sync.Mutex
	ready bool
	cur   *Intent
	err   error
}

func (s *intentState) get() (*Intent, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur, s.ready
}

// intentWatcher derives the intent on the leader: it watches the kinds the
// intent reads (those the API server serves, asked again every resync),
// derives once their caches have synced, then again after every burst of
// changes, and enqueues the namespaces whose derived policies or cut edges
// changed.
type intentWatcher struct {
	c        *Controller
	cache    cache.Cache
	disc     audit.Discovery
	scheme   *runtime.Scheme
	engine   *rules.Engine
	debounce time.Duration
	resync   time.Duration
	out      chan event.GenericEvent

	trigger chan struct{}
	handled map[schema.GroupKind]bool
	synced  []toolscache.InformerSynced
	served  []audit.ServedKind
}

func (w *intentWatcher) NeedLeaderElection() bool { return true }

func (w *intentWatcher) kick() {
	select {
	case w.trigger <- struct{}{}:
	default:
	}
}

// Start derives until ctx ends.
func (w *intentWatcher) Start(ctx context.Context) error {
	log := w.c.log.WithName("intent")
	retry := time.Second
	for {
		if err := w.discover(ctx); err != nil {
			log.Error(err, "discovery failed; retrying", "in", retry.String())
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(retry):
			}
			retry = min(2*retry, w.resync)
			continue
		}
		break
	}
	resync := time.NewTicker(w.resync)
	defer resync.Stop()
	w.kick()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-resync.C:
			if err := w.discover(ctx); err != nil {
				log.Error(err, "discovery failed; deriving from the kinds known so far")
			}
			w.kick()
			continue
		case <-w.trigger:
		}
		// Coalesce the burst.
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(w.debounce):
		}
		select {
		case <-w.trigger:
		default:
		}
		if !w.waitSynced(ctx) {
			return nil
		}
		started := time.Now()
		err := w.derive(ctx)
		if err != nil {
			w.c.metrics.IntentErrors.Inc()
			w.c.intent.mu.Lock()
			w.c.intent.err = err
			w.c.intent.mu.Unlock()
			log.Error(err, "cannot derive the NetworkPolicies from the mesh's intent; the last derived set stays")
		}
		// At most one derivation per IntentMinInterval: changes meanwhile
		// are coalesced into the next.
		if rest := w.c.cfg.IntentMinInterval - time.Since(started); rest > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(rest):
			}
		}
	}
}

// waitSynced waits for the informers of the intent kinds.
func (w *intentWatcher) waitSynced(ctx context.Context) bool {
	return toolscache.WaitForCacheSync(ctx.Done(), w.synced...)
}

// discover starts watching the served intent kinds not watched yet.
func (w *intentWatcher) discover(ctx context.Context) error {
	kinds, _, err := audit.ResolveKinds(ctx, w.disc, IntentKinds())
	if err != nil {
		return err
	}
	for _, k := range kinds {
		gk := k.Info.GroupKind()
		if w.handled[gk] {
			continue
		}
		inf, err := w.cache.GetInformer(ctx, w.prototype(k), cache.BlockUntilSynced(false))
		if err != nil {
			return fmt.Errorf("watch %s: %w", k.GVR().GroupResource(), err)
		}
		isPod := gk == schema.GroupKind{Kind: "Pod"}
		isNetpol := gk == schema.GroupKind{Group: "networking.k8s.io", Kind: "NetworkPolicy"}
		// meshguard's own policies are left out of the derivation (it reads
		// what the mesh allows without them): their writes change nothing.
		own := func(obj any) bool {
			if t, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			a, err := meta.Accessor(obj)
			return err == nil && isNetpol && a.GetLabels()[LabelManaged] == "true" && a.GetLabels()[LabelQuarantine] == ""
		}
		if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc: func(o any) {
				if !own(o) {
					w.kick()
				}
			},
			UpdateFunc: func(o, n any) {
				oa, err1 := meta.Accessor(o)
				na, err2 := meta.Accessor(n)
				if err1 == nil && err2 == nil {
					if oa.GetResourceVersion() == na.GetResourceVersion() {
						return // an informer resync
					}
					// A pod's spec hardly changes; its status does all the
					// time and the graph reads none of it.
					if isPod && maps.Equal(oa.GetLabels(), na.GetLabels()) && maps.Equal(oa.GetAnnotations(), na.GetAnnotations()) {
						return
					}
				}
				if own(o) && own(n) {
					return
				}
				w.kick()
			},
			DeleteFunc: func(o any) {
				if !own(o) {
					w.kick()
				}
			},
		}); err != nil {
			return fmt.Errorf("watch %s: %w", k.GVR().GroupResource(), err)
		}
		w.handled[gk] = true
		w.synced = append(w.synced, inf.HasSynced)
	}
	w.served = kinds
	return nil
}

func (w *intentWatcher) prototype(k audit.ServedKind) client.Object {
	gvk := k.GVR().GroupVersion().WithKind(k.Info.Kind)
	if obj, err := w.scheme.New(gvk); err == nil {
		if co, ok := obj.(client.Object); ok {
			return co
		}
	}
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvk)
	return u
}

func (w *intentWatcher) listPrototype(k audit.ServedKind) client.ObjectList {
	gvk := k.GVR().GroupVersion().WithKind(k.Info.Kind + "List")
	if obj, err := w.scheme.New(gvk); err == nil {
		if l, ok := obj.(client.ObjectList); ok {
			return l
		}
	}
	l := &unstructured.UnstructuredList{}
	l.SetGroupVersionKind(gvk)
	return l
}

// derive reads every intent object from the cache, derives, publishes, and
// enqueues the namespaces whose outcome changed.
func (w *intentWatcher) derive(ctx context.Context) error {
	var objs []rules.Object
	for _, k := range w.served {
		l := w.listPrototype(k)
		if err := w.cache.List(ctx, l); err != nil {
			return fmt.Errorf("list %s from the cache: %w", k.GVR().GroupResource(), err)
		}
		items, err := meta.ExtractList(l)
		if err != nil {
			return err
		}
		for _, it := range items {
			co, ok := it.(client.Object)
			if !ok {
				continue
			}
			var m map[string]any
			if u, ok := co.(*unstructured.Unstructured); ok {
				m = u.DeepCopy().Object
			} else if m, err = runtime.DefaultUnstructuredConverter.ToUnstructured(co); err != nil {
				return fmt.Errorf("decode %s %s/%s: %w", k.Info.Kind, co.GetNamespace(), co.GetName(), err)
			}
			m["apiVersion"] = k.GVR().GroupVersion().String()
			m["kind"] = k.Info.Kind
			objs = append(objs, rules.JSONNumbers(m).(map[string]any))
		}
	}
	start := time.Now()
	in, err := w.c.cfg.Intent(objs, IntentOptions{Engine: w.engine, Live: true, MeshMode: w.c.meshMode, FromAuthz: w.c.cfg.FromAuthzEnabled(),
		MaxWorkloads: w.c.cfg.IntentMaxWorkloads, NoRestored: true})
	w.c.metrics.IntentDuration.Observe(time.Since(start).Seconds())
	if err != nil {
		return err
	}
	policies, cut := len(in.Policies), 0
	for _, e := range in.Cut {
		cut += len(e)
	}
	w.c.log.V(1).Info("derived the mesh's intent", "objects", len(objs), "policies", policies, "cutEdges", cut, "took", time.Since(start).String())
	prev, _ := w.c.intent.get()
	w.c.intent.mu.Lock()
	w.c.intent.cur, w.c.intent.ready, w.c.intent.err = in, true, nil
	w.c.intent.mu.Unlock()
	changed := changedNamespaces(prev, in)
	if prev == nil {
		// The first derivation: every namespace may hold derived policies
		// left from an earlier run that must now go.
		var list corev1.NamespaceList
		if err := w.cache.List(ctx, &list); err != nil {
			return fmt.Errorf("list namespaces from the cache: %w", err)
		}
		for _, ns := range list.Items {
			changed = append(changed, ns.Name)
		}
		slices.Sort(changed)
		changed = slices.Compact(changed)
	}
	if w.c.onIntent != nil && len(changed) > 0 {
		w.c.onIntent(changed)
	}
	for _, ns := range changed {
		select {
		case w.out <- event.GenericEvent{Object: &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}}:
		case <-ctx.Done():
			return nil
		}
	}
	return nil
}

// changedNamespaces are the namespaces whose derived policies or cut edges
// differ between two intents (every namespace of the new one when there was
// none).
func changedNamespaces(prev, cur *Intent) []string {
	sig := func(in *Intent) map[string]string {
		out := map[string]string{}
		if in == nil {
			return out
		}
		for _, np := range in.Policies {
			spec, _ := json.Marshal(np.Spec)
			out[np.Namespace] += np.Name + "|" + np.Annotations[AnnotationIntent] + "|" + string(spec) + ";"
		}
		for ns, edges := range in.Cut {
			out[ns] += "cut:" + strings.Join(edges, ",")
		}
		return out
	}
	a, b := sig(prev), sig(cur)
	var out []string
	for ns, s := range b {
		if a[ns] != s {
			out = append(out, ns)
		}
	}
	for ns := range a {
		if _, ok := b[ns]; !ok {
			out = append(out, ns)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// newDiscovery returns the discovery client of the manager's config.
func newDiscovery(mgr manager.Manager) (audit.Discovery, error) {
	return discovery.NewDiscoveryClientForConfig(mgr.GetConfig())
}
