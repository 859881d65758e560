package netpol

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/meshguard/meshguard/rules"
)

// Event reasons on the namespace.
const (
	ReasonCreated  = "NetworkPoliciesCreated"
	ReasonRepaired = "NetworkPoliciesRepaired"
	ReasonRemoved  = "NetworkPoliciesRemoved"
	ReasonPreview  = "NetworkPoliciesPreview"
	ReasonFailed   = "NetworkPoliciesFailed"
	// ReasonCutEdges: enforce mode cuts edges the mesh allows.
	ReasonCutEdges = "NetworkPoliciesCutEdges"
)

// FieldManager is the field manager of every write.
const FieldManager = "meshguard-netpol"

// ControllerName names the controller (logs, metrics of controller-runtime).
const ControllerName = "meshguard-netpol"

// Controller reconciles every namespace's managed NetworkPolicy set.
type Controller struct {
	cfg      *Config
	meshMode func(*corev1.Namespace) string
	metrics  *Metrics
	log      logr.Logger

	client   client.Client // cached reads, live writes
	reader   client.Reader // the cache, for the pod gate
	live     client.Reader // the API server, to adopt objects the cache cannot see
	recorder events.EventRecorder

	synced atomic.Bool
	// fatal is set when the controller cannot work at all (no permission).
	fatal atomic.Pointer[string]

	// engine, when set, makes the controller derive policies from the
	// mesh's intent (routes, AuthorizationPolicies) and report cut edges.
	engine   *rules.Engine
	intent   intentState
	onIntent func([]string)

	mu       sync.Mutex
	profiles map[string]Profile // namespace -> profile with policies
	previews map[string]string  // namespace -> last preview summary (one Event per change)
	cuts     map[string]string  // namespace -> last cut-edge warning (one Event per change)
}

// OnIntentChange registers f, called with the namespaces whose derived
// policies or cut edges changed after each derivation. Call before the
// manager starts.
func (c *Controller) OnIntentChange(f func(namespaces []string)) { c.onIntent = f }

// DeriveIntent makes the controller also manage the policies derived from
// the mesh's intent (gateway-to-service, and with --netpol-from-authz the
// AuthorizationPolicy-derived ones) and report the edges its policies cut.
// The engine gives the allowed-traffic graph the mesh's semantics. Call
// before SetupWithManager.
func (c *Controller) DeriveIntent(engine *rules.Engine) { c.engine = engine }

// CutEdges returns the edges the managed set cuts in a namespace (in
// preview mode: would cut; at most MaxListedEdges), how many there are,
// and whether they are known (the intent has been derived).
func (c *Controller) CutEdges(namespace string) ([]string, int, bool) {
	in, ok := c.intent.get()
	if !ok || in.Skipped != "" {
		return nil, 0, false
	}
	return append([]string(nil), in.Cut[namespace]...), in.CutCount[namespace], true
}

// New returns a controller. meshMode returns a namespace's data plane
// (sidecar, ambient, none) from its labels; nil uses the enrollment labels
// with Istio's precedence (MeshMode). metrics may be nil.
func New(cfg *Config, meshMode func(*corev1.Namespace) string, m *Metrics) *Controller {
	if meshMode == nil {
		meshMode = MeshMode
	}
	if m == nil {
		m = NewMetrics()
	}
	return &Controller{cfg: cfg, meshMode: meshMode, metrics: m, profiles: map[string]Profile{}, previews: map[string]string{}, cuts: map[string]string{}}
}

// MeshMode is a namespace's data plane from its enrollment labels:
// istio-injection beats istio.io/rev, any istio-injection value but enabled
// disables injection, sidecar beats ambient.
func MeshMode(ns *corev1.Namespace) string {
	l := ns.Labels
	ambient := l[labelDataplaneMode] == dataplaneModeAmbient
	if v, ok := l[labelInjection]; ok {
		switch {
		case v == injectionEnabledValue:
			return "sidecar"
		case ambient:
			return "ambient"
		}
		return "none"
	}
	if l[labelRev] != "" {
		return "sidecar"
	}
	if ambient {
		return "ambient"
	}
	return "none"
}

// SetupWithManager registers the controller (leader-elected when the manager
// is) and a runnable on every replica that starts the informers the pod gate
// reads. The manager's cache should hold only managed NetworkPolicies
// (CacheByObject).
func (c *Controller) SetupWithManager(mgr manager.Manager, log logr.Logger) error {
	if err := c.cfg.Validate(); err != nil {
		return err
	}
	c.log = log.WithName("netpol")
	c.client = mgr.GetClient()
	c.reader = mgr.GetCache()
	c.live = mgr.GetAPIReader()
	c.recorder = mgr.GetEventRecorder(ControllerName)
	if err := mgr.Add(&informers{c: c, mgr: mgr}); err != nil {
		return err
	}
	skip := true
	b := ctrl.NewControllerManagedBy(mgr).
		Named(ControllerName).
		WithOptions(ctrlOptions(skip)).
		For(&corev1.Namespace{})
	if c.engine != nil {
		disc, err := newDiscovery(mgr)
		if err != nil {
			return fmt.Errorf("netpol: discovery: %w", err)
		}
		ch := make(chan event.GenericEvent, 1024)
		w := &intentWatcher{c: c, cache: mgr.GetCache(), disc: disc, scheme: mgr.GetScheme(), engine: c.engine,
			debounce: DefaultIntentDebounce, resync: DefaultIntentResync, out: ch, trigger: make(chan struct{}, 1), handled: map[schema.GroupKind]bool{}}
		if err := mgr.Add(w); err != nil {
			return err
		}
		b = b.WatchesRawSource(source.Channel(ch, &handler.EnqueueRequestForObject{}))
	}
	return b.
		Watches(&networkingv1.NetworkPolicy{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			if o.GetLabels()[LabelManaged] != "true" {
				return nil
			}
			return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: o.GetNamespace()}}}
		})).
		Complete(c)
}

// informers starts the Namespace and NetworkPolicy informers on every
// replica (the controller's own watches start only on the leader) and marks
// the controller's view synced.
type informers struct {
	c   *Controller
	mgr manager.Manager
}

func (i *informers) NeedLeaderElection() bool { return false }

func (i *informers) Start(ctx context.Context) error {
	for _, obj := range []client.Object{&corev1.Namespace{}, &networkingv1.NetworkPolicy{}} {
		if _, err := i.mgr.GetCache().GetInformer(ctx, obj); err != nil {
			return fmt.Errorf("netpol: start informer: %w", err)
		}
	}
	if !i.mgr.GetCache().WaitForCacheSync(ctx) {
		return errors.New("netpol: caches did not sync")
	}
	i.c.synced.Store(true)
	<-ctx.Done()
	return nil
}

// CacheByObject is the cache configuration the manager should use: only
// managed NetworkPolicies are cached (the controller and the pod gate read
// nothing else), so clusters with many policies cost little memory.
func CacheByObject() (client.Object, metav1.LabelSelector) {
	return &networkingv1.NetworkPolicy{}, metav1.LabelSelector{MatchLabels: map[string]string{LabelManaged: "true"}}
}

// Reconcile implements reconcile.Reconciler for one namespace.
func (c *Controller) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	log := c.log.WithValues("namespace", req.Name)
	var ns corev1.Namespace
	if err := c.client.Get(ctx, client.ObjectKey{Name: req.Name}, &ns); err != nil {
		if apierrors.IsNotFound(err) {
			c.forget(req.Name)
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, c.failed(err)
	}
	if ns.DeletionTimestamp != nil {
		// The namespace controller deletes everything in it; MESH0215 lets it.
		c.forget(ns.Name)
		return reconcile.Result{}, nil
	}
	profile, why := c.cfg.ProfileFor(&ns, c.meshMode(&ns))
	desired := c.cfg.Render(ns.Name, profile)
	intent, intentReady := c.intent.get()
	if c.engine != nil && intentReady && profile != ProfileNone {
		desired = append(desired, intent.ForNamespace(ns.Name)...)
	}
	var list networkingv1.NetworkPolicyList
	if err := c.client.List(ctx, &list, client.InNamespace(ns.Name), client.MatchingLabels{LabelManaged: "true"}); err != nil {
		return reconcile.Result{}, c.failed(err)
	}
	existing := map[string]*networkingv1.NetworkPolicy{}
	for i := range list.Items {
		existing[list.Items[i].Name] = &list.Items[i]
	}
	var create, repair, remove []string
	var repairWhat []string
	plan := map[string]*networkingv1.NetworkPolicy{}
	for _, want := range desired {
		plan[want.Name] = want
		got, ok := existing[want.Name]
		switch {
		case !ok:
			create = append(create, want.Name)
		default:
			if d := drift(got, want); len(d) > 0 {
				repair = append(repair, want.Name)
				repairWhat = append(repairWhat, fmt.Sprintf("%s (%s)", want.Name, strings.Join(d, ", ")))
			}
		}
	}
	for name, np := range existing {
		if _, ok := plan[name]; ok || np.Labels[LabelQuarantine] != "" {
			// A quarantine's NetworkPolicy is managed (MESH0215 protects it)
			// but not part of any profile: `meshguard release` removes it.
			continue
		}
		if c.engine != nil && profile != ProfileNone && keepUnderived(name, intent, intentReady) {
			continue
		}
		remove = append(remove, name)
	}
	sort.Strings(remove)

	var cut, notes []string
	skipped, cutCount := "", 0
	if intentReady && profile != ProfileNone {
		cut, cutCount, notes, skipped = intent.Cut[ns.Name], intent.CutCount[ns.Name], intent.NotesByNamespace[ns.Name], intent.Skipped
	}
	if skipped == "" {
		c.metrics.CutEdges.WithLabelValues(ns.Name).Set(float64(cutCount))
	} else {
		c.metrics.CutEdges.DeleteLabelValues(ns.Name)
	}
	if c.cfg.Mode == ModePreview {
		c.preview(&ns, profile, why, create, repairWhat, remove, cut, cutCount, notes, skipped)
		c.remember(ns.Name, profile)
		return reconcile.Result{}, nil
	}

	var errs []error
	var created, repaired, removed []string
	for _, name := range create {
		outcome, err := c.create(ctx, plan[name])
		switch {
		case err != nil:
			errs = append(errs, err)
		case outcome == outcomeAdopted:
			repaired = append(repaired, name+" (adopted an unlabelled object of that name)")
		case outcome == outcomeCreated:
			created = append(created, name)
		}
	}
	for i, name := range repair {
		if err := c.repair(ctx, existing[name], plan[name]); err != nil {
			errs = append(errs, err)
			continue
		}
		repaired = append(repaired, repairWhat[i])
	}
	for _, name := range remove {
		np := existing[name]
		uid := np.UID
		if err := c.client.Delete(ctx, np, client.Preconditions{UID: &uid}); err != nil {
			if !apierrors.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("remove %s: %w", name, err))
			}
			continue // NotFound: an earlier reconcile removed it, the cache was behind
		}
		removed = append(removed, name)
	}
	c.metrics.Changes.WithLabelValues("create").Add(float64(len(created)))
	c.metrics.Changes.WithLabelValues("repair").Add(float64(len(repaired)))
	c.metrics.Changes.WithLabelValues("remove").Add(float64(len(removed)))
	if len(created) > 0 {
		c.event(&ns, corev1.EventTypeNormal, ReasonCreated, "Create", "created %s (profile %s: %s)", strings.Join(created, ", "), profile, why)
	}
	if len(repaired) > 0 {
		c.event(&ns, corev1.EventTypeWarning, ReasonRepaired, "Repair", "repaired drift in place: %s (profile %s)", strings.Join(repaired, "; "), profile)
	}
	if len(removed) > 0 {
		c.event(&ns, corev1.EventTypeNormal, ReasonRemoved, "Remove", "removed %s: not part of profile %s (%s)", strings.Join(removed, ", "), profile, why)
	}
	if len(created)+len(repaired)+len(removed) > 0 {
		log.Info("reconciled", "profile", profile, "created", created, "repaired", repaired, "removed", removed)
	}
	if err := errors.Join(errs...); err != nil {
		c.event(&ns, corev1.EventTypeWarning, ReasonFailed, "Reconcile", "could not bring the NetworkPolicies of profile %s in place: %v", profile, err)
		return reconcile.Result{}, c.failed(err)
	}
	c.fatal.Store(nil)
	c.remember(ns.Name, profile)
	c.warnCut(&ns, cut, cutCount, skipped)
	return reconcile.Result{}, nil
}

// keepUnderived says whether a managed policy the current derivation does
// not produce is kept rather than removed: every derived one until the first
// derivation since this replica became leader (a restart never cuts an
// edge), and the AuthorizationPolicy-derived ones while the graph is over its
// bound (those were not derived this time, not found unwanted).
func keepUnderived(name string, in *Intent, ready bool) bool {
	if !Derived(name) {
		return false
	}
	if !ready {
		return true
	}
	return in.Skipped != "" && (strings.HasPrefix(name, PrefixAuthzTo) || strings.HasPrefix(name, PrefixAuthzFrom))
}

// warnCut warns, once per change, that enforce mode cuts edges the mesh
// allows, naming them.
func (c *Controller) warnCut(ns *corev1.Namespace, cut []string, cutCount int, skipped string) {
	summary := fmt.Sprintf("%d|%s|%s", cutCount, strings.Join(cut, ", "), skipped)
	c.mu.Lock()
	changed := c.cuts[ns.Name] != summary
	c.cuts[ns.Name] = summary
	c.mu.Unlock()
	if changed && skipped != "" {
		c.event(ns, corev1.EventTypeWarning, ReasonCutEdges, "Enforce", "the edges default deny cuts are unknown: %s", skipped)
	}
	if changed && cutCount > 0 {
		c.event(ns, corev1.EventTypeWarning, ReasonCutEdges, "Enforce",
			"default deny cuts %d edges the mesh allows (SOURCE -> DESTINATION:PORT): %s; allow them with an AuthorizationPolicy ALLOW and --netpol-from-authz, a Gateway route, or a NetworkPolicy of your own", cutCount, edgeList(cut, cutCount))
	}
}

type createOutcome int

const (
	outcomeCreated createOutcome = iota
	outcomeAdopted
	outcomeUpToDate
)

// create creates a policy. When an object of that name exists without the
// managed label (the cache does not see it), it is adopted: patched in place.
// When it exists as rendered, the cache was behind and nothing happens.
func (c *Controller) create(ctx context.Context, want *networkingv1.NetworkPolicy) (createOutcome, error) {
	err := c.client.Create(ctx, want.DeepCopy(), client.FieldOwner(FieldManager))
	if err == nil {
		return outcomeCreated, nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return 0, fmt.Errorf("create %s: %w", want.Name, err)
	}
	var got networkingv1.NetworkPolicy
	if err := c.live.Get(ctx, client.ObjectKeyFromObject(want), &got); err != nil {
		return 0, fmt.Errorf("adopt %s: %w", want.Name, err)
	}
	if len(drift(&got, want)) == 0 {
		return outcomeUpToDate, nil
	}
	return outcomeAdopted, c.repair(ctx, &got, want)
}

// repair patches a policy in place with a JSON patch: the spec is replaced
// as a whole (a merge would keep rules someone added), meshguard's labels and
// annotations are set, anything else in metadata is left alone, and the
// patch applies only to the version it was computed from. The object keeps
// its UID: there is never a moment without the policy.
func (c *Controller) repair(ctx context.Context, got, want *networkingv1.NetworkPolicy) error {
	ops := []map[string]any{
		{"op": "test", "path": "/metadata/resourceVersion", "value": got.ResourceVersion},
		{"op": "replace", "path": "/spec", "value": want.Spec},
	}
	ops = append(ops, mapOps("/metadata/labels", got.Labels, want.Labels)...)
	ops = append(ops, mapOps("/metadata/annotations", got.Annotations, want.Annotations)...)
	data, err := json.Marshal(ops)
	if err != nil {
		return err
	}
	if err := c.client.Patch(ctx, got.DeepCopy(), client.RawPatch(types.JSONPatchType, data), client.FieldOwner(FieldManager)); err != nil {
		return fmt.Errorf("repair %s: %w", want.Name, err)
	}
	return nil
}

func mapOps(path string, got, want map[string]string) []map[string]any {
	if got == nil {
		return []map[string]any{{"op": "add", "path": path, "value": want}}
	}
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var ops []map[string]any
	for _, k := range keys {
		if v, ok := got[k]; !ok || v != want[k] {
			ops = append(ops, map[string]any{"op": "add", "path": path + "/" + escapePointer(k), "value": want[k]})
		}
	}
	return ops
}

func escapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// drift describes how an existing policy differs from the rendered one
// (empty when it does not): its spec, or meshguard's labels and annotations.
func drift(got, want *networkingv1.NetworkPolicy) []string {
	var out []string
	g, _ := json.Marshal(got.Spec)
	w, _ := json.Marshal(want.Spec)
	if string(g) != string(w) {
		out = append(out, "spec")
	}
	for _, k := range sortedKeys(want.Labels) {
		if got.Labels[k] != want.Labels[k] {
			out = append(out, "label "+k)
		}
	}
	for _, k := range sortedKeys(want.Annotations) {
		if got.Annotations[k] != want.Annotations[k] {
			out = append(out, "annotation "+k)
		}
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// preview reports what enforce mode would do, once per change of the plan.
func (c *Controller) preview(ns *corev1.Namespace, profile Profile, why string, create, repair, remove, cut []string, cutCount int, notes []string, skipped string) {
	c.metrics.Preview.WithLabelValues(ns.Name, "create").Set(float64(len(create)))
	c.metrics.Preview.WithLabelValues(ns.Name, "repair").Set(float64(len(repair)))
	c.metrics.Preview.WithLabelValues(ns.Name, "remove").Set(float64(len(remove)))
	var parts []string
	if len(create) > 0 {
		parts = append(parts, "would create "+strings.Join(create, ", "))
	}
	if len(repair) > 0 {
		parts = append(parts, "would repair "+strings.Join(repair, "; "))
	}
	if len(remove) > 0 {
		parts = append(parts, "would remove "+strings.Join(remove, ", "))
	}
	if len(parts) == 0 {
		parts = append(parts, "nothing to change")
	}
	if len(cut) > 0 {
		parts = append(parts, fmt.Sprintf("enforcing would cut %d edges the mesh allows (SOURCE -> DESTINATION:PORT): %s", cutCount, edgeList(cut, cutCount)))
	}
	if skipped != "" {
		parts = append(parts, "cut edges unknown: "+skipped)
	}
	if len(notes) > 0 {
		parts = append(parts, "derivation notes: "+strings.Join(notes, "; "))
	}
	summary := fmt.Sprintf("preview: %s (profile %s: %s)", strings.Join(parts, "; "), profile, why)
	c.mu.Lock()
	changed := c.previews[ns.Name] != summary
	c.previews[ns.Name] = summary
	c.mu.Unlock()
	if changed && (len(create)+len(repair)+len(remove) > 0 || profile != ProfileNone) {
		c.event(ns, corev1.EventTypeNormal, ReasonPreview, "Preview", "%s", summary)
	}
}

// maxEventEdges is the most edges an Event names; the rest are counted
// (meshguard audit --cluster and meshguard status list them all).
const maxEventEdges = 8

// edgeList names at most maxEventEdges of total edges.
func edgeList(edges []string, total int) string {
	if total <= maxEventEdges && len(edges) == total {
		return strings.Join(edges, ", ")
	}
	shown := edges[:min(len(edges), maxEventEdges)]
	return fmt.Sprintf("%s and %d more (meshguard audit --cluster lists up to %d per namespace)", strings.Join(shown, ", "), total-len(shown), MaxListedEdges)
}

// maxEventNote is the API server's limit on an Event's note.
const maxEventNote = 1024

// Preview returns the last preview summary of a namespace (preview mode).
func (c *Controller) Preview(namespace string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.previews[namespace]
	return s, ok
}

// event records an Event on the namespace. The events API folds Events
// with the same regarding object, type, reason and action into one series
// that keeps the first note; the controller's notes change (a preview, the
// edges it cuts), so the action carries a digest of the note: a new note is
// a new Event, a repeated one still counts in its series.
func (c *Controller) event(ns *corev1.Namespace, typ, reason, action, format string, args ...any) {
	if c.recorder != nil {
		note := fmt.Sprintf(format, args...)
		if len(note) > maxEventNote {
			note = note[:maxEventNote-3] + "..."
		}
		h := fnv.New32a()
		_, _ = h.Write([]byte(note))
		c.recorder.Eventf(ns, nil, typ, reason, fmt.Sprintf("%s/%08x", action, h.Sum32()), "%s", note)
	}
}

// remember records a namespace's profile for the gauge.
func (c *Controller) remember(ns string, p Profile) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p == ProfileNone {
		delete(c.profiles, ns)
	} else {
		c.profiles[ns] = p
	}
	c.updateGaugeLocked()
}

func (c *Controller) forget(ns string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.profiles, ns)
	delete(c.previews, ns)
	delete(c.cuts, ns)
	c.metrics.CutEdges.DeleteLabelValues(ns)
	for _, a := range []string{"create", "repair", "remove"} {
		c.metrics.Preview.DeleteLabelValues(ns, a)
	}
	c.updateGaugeLocked()
}

func (c *Controller) updateGaugeLocked() {
	counts := map[Profile]int{}
	for _, p := range c.profiles {
		counts[p]++
	}
	for _, p := range Profiles() {
		c.metrics.Namespaces.WithLabelValues(string(p), string(c.cfg.Mode)).Set(float64(counts[p]))
	}
}

// failed counts a failed reconcile and remembers a failure that means the
// controller cannot work at all (it lacks permission).
func (c *Controller) failed(err error) error {
	c.metrics.Errors.Inc()
	// RBAC refusals read `User "x" cannot create resource ...`; quota and
	// terminating-namespace refusals are Forbidden too but pass.
	if apierrors.IsUnauthorized(err) || (apierrors.IsForbidden(err) && strings.Contains(err.Error(), " cannot ")) {
		msg := err.Error()
		c.fatal.Store(&msg)
	}
	return err
}

// ReadyCheck fails /readyz only when the controller cannot work at all: the
// API server refuses it access to NetworkPolicies or Namespaces. Ordinary
// failures are retried and show in metrics and Events instead.
func (c *Controller) ReadyCheck(*http.Request) error {
	if msg := c.fatal.Load(); msg != nil {
		return fmt.Errorf("netpol controller has no access: %s", *msg)
	}
	return nil
}

// Prepared reports whether a namespace's managed policy set is in place, for
// the pod gate; when it is not, the string says what is missing. In preview
// mode every namespace counts as prepared (nothing will be created).
func (c *Controller) Prepared(ctx context.Context, namespace string) (bool, string) {
	if c.cfg.Mode == ModePreview {
		return true, ""
	}
	if !c.synced.Load() {
		return false, "meshguard's NetworkPolicy caches have not synced yet"
	}
	var ns corev1.Namespace
	if err := c.reader.Get(ctx, client.ObjectKey{Name: namespace}, &ns); err != nil {
		return false, "meshguard has not seen the namespace yet"
	}
	profile, _ := c.cfg.ProfileFor(&ns, c.meshMode(&ns))
	names := Names(profile)
	if len(names) == 0 {
		return true, ""
	}
	var list networkingv1.NetworkPolicyList
	if err := c.reader.List(ctx, &list, client.InNamespace(namespace), client.MatchingLabels{LabelManaged: "true"}); err != nil {
		return false, "meshguard could not read the namespace's NetworkPolicies"
	}
	var missing []string
	for _, n := range names {
		if !slices.ContainsFunc(list.Items, func(np networkingv1.NetworkPolicy) bool { return np.Name == n }) {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return false, fmt.Sprintf("its default-deny NetworkPolicies (profile %s) are not in place yet: missing %s", profile, strings.Join(missing, ", "))
	}
	return true, ""
}
