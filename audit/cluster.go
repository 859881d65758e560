package audit

import (
	"context"
	"fmt"
	"sort"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/meshguard/meshguard/rules"
)

// ClusterScheme prefixes the location of an object read from a cluster, which
// has no file and line: "cluster://Kind/namespace/name" (cluster-scoped
// objects: "cluster://Kind/name"). Every output format uses it where a file
// audit names the file.
const ClusterScheme = "cluster://"

// DefaultPageSize is the number of objects a cluster audit asks for per list request.
const DefaultPageSize = 500

// ClusterLocation returns the location of a cluster object: ClusterScheme
// followed by "Kind/namespace/name".
func ClusterLocation(ref rules.ObjectRef) string { return ClusterScheme + ref.String() }

// isClusterLocation reports whether a report location is a cluster object's.
func isClusterLocation(file string) bool { return strings.HasPrefix(file, ClusterScheme) }

// ClusterEvaluator is what a cluster audit needs from the rule engine: the
// evaluation itself and the namespace facts of the per-namespace summary.
// *rules.Engine implements it.
type ClusterEvaluator interface {
	rules.Evaluator
	NamespaceMTLS(ctx rules.Context, namespace string) rules.MTLSResolution
	NamespaceMeshMode(ns rules.Namespace) string
	NamespaceNetpol(ctx rules.Context, ns rules.Namespace) rules.NetpolState
	NamespaceAuthz(ctx rules.Context, namespace string) rules.AuthzResolution
	WorkloadMeshMode(ctx rules.Context, obj rules.Object, defaultNamespace string, postInjection bool) (string, bool)
}

var _ ClusterEvaluator = (*rules.Engine)(nil)

// Discovery is the part of client-go's discovery client a cluster audit uses.
type Discovery interface {
	ServerGroupsWithContext(ctx context.Context) (*metav1.APIGroupList, error)
	ServerResourcesForGroupVersionWithContext(ctx context.Context, groupVersion string) (*metav1.APIResourceList, error)
}

// ClusterClients are the clients a cluster audit reads through.
type ClusterClients struct {
	Dynamic   dynamic.Interface
	Discovery Discovery
}

// NewClusterClients builds the dynamic and discovery clients for a REST
// configuration. A configuration without client-side rate limits gets
// kubectl's (50 requests/s, bursts of 300) instead of client-go's 5/s, which
// would make a paged audit crawl.
func NewClusterClients(cfg *rest.Config) (*ClusterClients, error) {
	cfg = rest.CopyConfig(cfg)
	if cfg.QPS == 0 && cfg.RateLimiter == nil {
		cfg.QPS, cfg.Burst = 50, 300
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("dynamic client: %w", err)
	}
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("discovery client: %w", err)
	}
	return &ClusterClients{Dynamic: dyn, Discovery: disc}, nil
}

// ClusterOptions tune RunCluster.
type ClusterOptions struct {
	// Kinds are the kinds to list. Required: the catalog's kinds
	// (rules.Catalog.Kinds), each with the versions meshguard understands.
	Kinds []rules.KindInfo
	// PageSize is the number of objects per list request (Limit; the rest
	// follows with Continue). Default DefaultPageSize.
	PageSize int64
}

// ClusterSummary is what a cluster audit adds to a report: which kinds were
// listed, which are not served by the cluster, and a summary per namespace.
type ClusterSummary struct {
	// Listed are the kinds listed, in catalog order.
	Listed []KindListing `json:"listed"`
	// Unavailable are the kinds the cluster does not serve (their CRDs are not
	// installed, or in no version meshguard understands); nothing of them was audited.
	Unavailable []UnavailableKind `json:"unavailable"`
	// Namespaces summarize every namespace, by name.
	Namespaces []NamespaceSummary `json:"namespaces"`
	// CutEdgesError says why the cut edges could not be derived.
	CutEdgesError string `json:"cutEdgesError,omitempty"`
	// ViaOwner counts objects not evaluated on their own because their
	// controller carries the same pod template and is judged instead
	// (ReplicaSets of Deployments and Rollouts, Jobs of CronJobs,
	// ReplicationControllers of DeploymentConfigs), by kind.
	ViaOwner map[string]int `json:"viaOwner,omitempty"`
	// IstioVersions are the Istio releases detected per injector revision,
	// e.g. "default=1.26, canary=1.27", from the injector's webhook
	// configurations (their version label wins) and istiod's Deployments
	// (app=istiod: version label, else image tag); "" when none was found.
	// Each revision's pods are judged with its release's semantics unless
	// --istio-version overrides them.
	IstioVersions string `json:"istioVersions,omitempty"`
}

// templateOwners maps a kind to the controller kinds whose pod template it
// copies; such objects are judged through their owner, so one mistake is
// reported once per workload (plus once per running Pod, which is seen after
// injection and may differ).
var templateOwners = map[schema.GroupKind]map[string]string{
	// Argo Rollouts runs a Rollout's pods through ReplicaSets it controls,
	// OpenShift a DeploymentConfig's through ReplicationControllers.
	{Group: "apps", Kind: "ReplicaSet"}: {"Deployment": "apps/v1", "Rollout": "argoproj.io/v1alpha1"},
	{Group: "batch", Kind: "Job"}:       {"CronJob": "batch/v1"},
	{Kind: "ReplicationController"}:     {"DeploymentConfig": "apps.openshift.io/v1"},
}

// ownedByTemplateController reports whether obj is controlled by an owner
// that carries the same pod template.
func ownedByTemplateController(gk schema.GroupKind, obj rules.Object) bool {
	owners, ok := templateOwners[gk]
	if !ok {
		return false
	}
	meta, _ := obj["metadata"].(map[string]any)
	refs, _ := meta["ownerReferences"].([]any)
	for _, r := range refs {
		ref, _ := r.(map[string]any)
		if c, _ := ref["controller"].(bool); !c {
			continue
		}
		kind, _ := ref["kind"].(string)
		apiVersion, _ := ref["apiVersion"].(string)
		if want, ok := owners[kind]; ok && strings.HasPrefix(apiVersion, strings.Split(want, "/")[0]+"/") {
			return true
		}
	}
	return false
}

// JudgedViaOwner reports whether an object is not judged on its own because
// its controller carries the same pod template and is judged instead (a
// ReplicaSet of a Deployment, a Job of a CronJob). The background audit of
// `meshguard serve` skips the same objects.
func JudgedViaOwner(gk schema.GroupKind, obj rules.Object) bool {
	return ownedByTemplateController(gk, obj)
}

// ServedKind is a kind with the version the cluster serves it in.
type ServedKind struct {
	Info    rules.KindInfo
	Version string
}

// GVR is the kind's resource in the served version.
func (k ServedKind) GVR() schema.GroupVersionResource {
	return resolvedKind{info: k.Info, version: k.Version}.gvr()
}

// ContextOnlyKinds are the kinds a cluster audit lists only as context (the
// webhook configurations), not to judge them.
func ContextOnlyKinds() []rules.KindInfo { return append([]rules.KindInfo(nil), contextOnlyKinds...) }

// ResolveKinds picks through discovery the version the cluster serves each
// kind in (as a cluster audit does) and says which kinds are not served.
func ResolveKinds(ctx context.Context, disc Discovery, kinds []rules.KindInfo) ([]ServedKind, []UnavailableKind, error) {
	res, unavailable, err := resolveKinds(ctx, disc, kinds)
	if err != nil {
		return nil, nil, err
	}
	out := make([]ServedKind, 0, len(res))
	for _, k := range res {
		out = append(out, ServedKind{Info: k.info, Version: k.version})
	}
	return out, unavailable, nil
}

// KindListing is one kind listed from the cluster.
type KindListing struct {
	// Group, Version and Kind identify what was listed (Version is the one
	// chosen through discovery); Resource is the plural resource name.
	Group    string `json:"group,omitempty"`
	Version  string `json:"version"`
	Kind     string `json:"kind"`
	Resource string `json:"resource"`
	// Objects is the number of objects listed; Pages the number of list requests.
	Objects int `json:"objects"`
	Pages   int `json:"pages"`
	// ContextOnly is true for kinds listed only as context for the rules
	// (webhook configurations), not audited themselves.
	ContextOnly bool `json:"contextOnly,omitempty"`
	// Selector is the label selector of a context listing (istiod's
	// Deployments: app=istiod); "" lists every object.
	Selector string `json:"selector,omitempty"`
}

// UnavailableKind is a kind of the catalog the cluster does not serve.
type UnavailableKind struct {
	Group  string `json:"group,omitempty"`
	Kind   string `json:"kind"`
	Reason string `json:"reason"`
}

// String renders "group/Kind" ("Kind" for the core group).
func (u UnavailableKind) String() string {
	if u.Group == "" {
		return u.Kind
	}
	return u.Group + "/" + u.Kind
}

// NamespaceSummary is one namespace of a cluster audit.
type NamespaceSummary struct {
	// Name of the namespace.
	Name string `json:"name"`
	// MeshMode is how the namespace takes part in the mesh: sidecar, ambient
	// or none (from its labels, as the injector decides).
	MeshMode string `json:"meshMode"`
	// MTLS is the effective namespace-wide mTLS mode and the policy deciding it.
	MTLS rules.MTLSResolution `json:"mtls"`
	// Objects is the number of audited objects in the namespace (the
	// Namespace object itself included).
	Objects int `json:"objects"`
	// Findings is the number of findings; BySeverity counts them by severity.
	Findings   int            `json:"findings"`
	BySeverity map[string]int `json:"bySeverity,omitempty"`
	// NetworkPolicies is the preview of meshguard's default-deny controller:
	// the profile it would apply (and why), and how the managed
	// NetworkPolicies in the namespace compare with the profile's set by name
	// (complete, partial, missing; none when the profile installs nothing;
	// unknown when NetworkPolicies could not be listed). Absent for a
	// namespace the cluster did not list.
	NetworkPolicies *rules.NetpolState `json:"networkPolicies,omitempty"`
	// Authz says whether the namespace's authorization is default-deny (a
	// namespace-wide or mesh-wide ALLOW policy that does not allow
	// everything, or a DENY-all) and which policy decides.
	Authz rules.AuthzResolution `json:"authz"`
	// Workloads counts the namespace's top-level workloads (pod-template
	// kinds, and Pods no controller owns); Meshed those whose pods are in the
	// mesh (sidecar or ambient; a running Pod only with its proxy).
	Workloads int `json:"workloads"`
	Meshed    int `json:"meshed"`
	// CutEdges are the edges the mesh allows today that enforcing the
	// default-deny set would cut ("SOURCE -> DESTINATION:PORT"), as the
	// controller with its default configuration derives them (gateway
	// allows from the routes; no --netpol-from-authz).
	CutEdges []string `json:"cutEdges,omitempty"`
	// CutEdgesTotal counts them all (CutEdges lists at most 100).
	CutEdgesTotal int `json:"cutEdgesTotal,omitempty"`
}

// contextKinds are the audited kinds whose objects also make up the rules'
// context (what rules.Snapshot.Add records, as the webhook's informers do);
// they are listed first and kept in memory. Every other kind is evaluated page
// by page and not kept.
var contextKinds = map[schema.GroupKind]bool{
	{Kind: "Namespace"}: true,
	{Kind: "Service"}:   true,
	{Group: "security.istio.io", Kind: "PeerAuthentication"}:  true,
	{Group: "security.istio.io", Kind: "AuthorizationPolicy"}: true,
	// meshguard's managed NetworkPolicies (MESH0217, the summary's preview).
	{Group: "networking.k8s.io", Kind: "NetworkPolicy"}: true,
	// ServiceEntries that make a host an alias of an in-mesh Service, for
	// the DestinationRules (MESH0010, MESH0011).
	{Group: "networking.istio.io", Kind: "ServiceEntry"}:    true,
	{Group: "networking.istio.io", Kind: "DestinationRule"}: true,
}

var netpolKind = schema.GroupKind{Group: "networking.k8s.io", Kind: "NetworkPolicy"}

// contextOnlyKinds are listed as context and not audited: the webhook
// configurations (which ports the API server must reach in plaintext, which
// injector revisions exist). A kind the cluster does not serve is left out.
// istiodSelector finds istiod's Deployments, listed as context for the Istio
// release of each revision (rules.VersionsFromIstiod) when Deployments are
// audited; they are audited again with the other Deployments.
const istiodSelector = "app=istiod"

var contextOnlyKinds = []rules.KindInfo{
	{Group: "admissionregistration.k8s.io", Kind: "MutatingWebhookConfiguration", Versions: []string{"v1"}, Resource: "mutatingwebhookconfigurations"},
	{Group: "admissionregistration.k8s.io", Kind: "ValidatingWebhookConfiguration", Versions: []string{"v1"}, Resource: "validatingwebhookconfigurations"},
}

// RunCluster audits a live cluster: it lists every object of opts.Kinds that
// the cluster serves, paged, builds the rules' context from the cluster's
// Namespaces, PeerAuthentications, AuthorizationPolicies, Services and
// webhook configurations (the context the webhook's informers hold), evaluates every
// object as seen after admission (PostInjection: live Pods are already
// injected), and summarizes each namespace. Objects are located with
// ClusterLocation. Only the context kinds are held in memory; the others are
// evaluated one page at a time.
//
// A kind the cluster does not serve is reported in Report.Cluster.Unavailable;
// a list that fails (forbidden, expired continue token) is an input error of
// the report (exit code 2) and the audit goes on. The returned error is for a
// cluster that cannot be asked at all (discovery fails).
func RunCluster(ctx context.Context, ev ClusterEvaluator, cl *ClusterClients, opts ClusterOptions) (*Report, error) {
	if opts.PageSize <= 0 {
		opts.PageSize = DefaultPageSize
	}
	resolved, unavailable, err := resolveKinds(ctx, cl.Discovery, opts.Kinds)
	if err != nil {
		return nil, err
	}
	ctxOnly, _, err := resolveKinds(ctx, cl.Discovery, contextOnlyKinds)
	if err != nil {
		return nil, err
	}
	rep := &Report{Cluster: &ClusterSummary{Listed: []KindListing{}, Unavailable: unavailable, Namespaces: []NamespaceSummary{}}}
	snap := rules.NewSnapshot()
	for _, k := range ctxOnly {
		kl := KindListing{Group: k.info.Group, Version: k.version, Kind: k.info.Kind, Resource: k.info.Resource, ContextOnly: true}
		if err := listPaged(ctx, cl.Dynamic, k.gvr(), opts.PageSize, "", &kl, func(obj rules.Object) { snap.Add(obj, "") }); err != nil {
			rep.Errors = append(rep.Errors, listError(k, err))
			continue
		}
		rep.Cluster.Listed = append(rep.Cluster.Listed, kl)
	}
	for _, k := range resolved {
		if k.info.GroupKind() != (schema.GroupKind{Group: "apps", Kind: "Deployment"}) {
			continue
		}
		kl := KindListing{Group: k.info.Group, Version: k.version, Kind: k.info.Kind, Resource: k.info.Resource, ContextOnly: true, Selector: istiodSelector}
		if err := listPaged(ctx, cl.Dynamic, k.gvr(), opts.PageSize, istiodSelector, &kl, func(obj rules.Object) { snap.Add(obj, "") }); err != nil {
			rep.Errors = append(rep.Errors, listError(k, err))
			continue
		}
		rep.Cluster.Listed = append(rep.Cluster.Listed, kl)
	}
	if e, ok := ev.(interface {
		InjectorVersions(rules.Context) map[string]string
	}); ok {
		rep.Cluster.IstioVersions = rules.IstioVersionsText(e.InjectorVersions(snap))
	}
	// Without the NetworkPolicies no namespace can be said to lack its
	// managed set: MESH0217 stays quiet and the summary says unknown.
	netpolsListed := false
	held := map[schema.GroupKind][]rules.Object{}
	listing := make([]KindListing, len(resolved))
	listErr := make([]bool, len(resolved))

	// The context first: it must be complete before anything is evaluated.
	for i, k := range resolved {
		listing[i] = KindListing{Group: k.info.Group, Version: k.version, Kind: k.info.Kind, Resource: k.info.Resource}
		if !contextKinds[k.info.GroupKind()] {
			continue
		}
		err := listPaged(ctx, cl.Dynamic, k.gvr(), opts.PageSize, "", &listing[i], func(obj rules.Object) {
			snap.Add(obj, "")
			held[k.info.GroupKind()] = append(held[k.info.GroupKind()], obj)
		})
		if err != nil {
			listErr[i] = true
			rep.Errors = append(rep.Errors, listError(k, err))
			continue
		}
		if k.info.GroupKind() == netpolKind {
			netpolsListed = true
		}
	}
	if !netpolsListed {
		snap.NetworkPoliciesUnknown()
	}
	evalOpts := Options{PostInjection: true}
	for i, k := range resolved {
		if listErr[i] {
			continue
		}
		if contextKinds[k.info.GroupKind()] {
			for _, obj := range held[k.info.GroupKind()] {
				rep.evaluate(ctx, ev, clusterDocument(obj), evalOpts, snap)
			}
		} else {
			gk := k.info.GroupKind()
			err := listPaged(ctx, cl.Dynamic, k.gvr(), opts.PageSize, "", &listing[i], func(obj rules.Object) {
				if ownedByTemplateController(gk, obj) {
					if rep.Cluster.ViaOwner == nil {
						rep.Cluster.ViaOwner = map[string]int{}
					}
					rep.Cluster.ViaOwner[k.info.Kind]++
					return
				}
				rep.evaluate(ctx, ev, clusterDocument(obj), evalOpts, snap)
			})
			if err != nil {
				rep.Errors = append(rep.Errors, listError(k, err))
				continue
			}
		}
		rep.Cluster.Listed = append(rep.Cluster.Listed, listing[i])
	}
	rep.Cluster.Namespaces = summarizeNamespaces(ev, snap, rep)
	return rep, nil
}

func clusterDocument(obj rules.Object) Document {
	return Document{File: ClusterLocation(rules.ObjectRefOf(obj, "")), Object: obj}
}

func listError(k resolvedKind, err error) InputError {
	loc := ClusterScheme + k.info.Kind
	msg := fmt.Sprintf("list %s: %v", k.gvr().GroupResource(), err)
	if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
		msg += " (the list changed too much between pages; run the audit again or raise --page-size)"
	}
	return InputError{File: loc, Err: msg}
}

// resolvedKind is a catalog kind with the version the cluster serves it in.
type resolvedKind struct {
	info    rules.KindInfo
	version string
}

func (k resolvedKind) gvr() schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: k.info.Group, Version: k.version, Resource: k.info.Resource}
}

// resolveKinds picks, through discovery, a served version for every kind:
// the group's preferred version when meshguard understands it, else the first
// of the kind's versions the cluster serves with the resource listable.
func resolveKinds(ctx context.Context, disc Discovery, kinds []rules.KindInfo) ([]resolvedKind, []UnavailableKind, error) {
	groups, err := disc.ServerGroupsWithContext(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("discover the cluster's API groups: %w", err)
	}
	byName := map[string]metav1.APIGroup{}
	for _, g := range groups.Groups {
		byName[g.Name] = g
	}
	resources := map[string]*metav1.APIResourceList{}
	resourcesFor := func(gv string) (*metav1.APIResourceList, error) {
		if l, ok := resources[gv]; ok {
			return l, nil
		}
		l, err := disc.ServerResourcesForGroupVersionWithContext(ctx, gv)
		if apierrors.IsNotFound(err) {
			l, err = &metav1.APIResourceList{GroupVersion: gv}, nil
		}
		if err != nil {
			return nil, fmt.Errorf("discover the resources of %s: %w", gv, err)
		}
		resources[gv] = l
		return l, nil
	}
	var out []resolvedKind
	unavailable := []UnavailableKind{}
	for _, k := range kinds {
		g, ok := byName[k.Group]
		if !ok {
			unavailable = append(unavailable, UnavailableKind{Group: k.Group, Kind: k.Kind, Reason: fmt.Sprintf("API group %q is not served (CRD not installed)", groupName(k.Group))})
			continue
		}
		served := map[string]bool{}
		for _, v := range g.Versions {
			served[v.Version] = true
		}
		var candidates []string
		if slicesContains(k.Versions, g.PreferredVersion.Version) {
			candidates = append(candidates, g.PreferredVersion.Version)
		}
		for _, v := range k.Versions {
			if served[v] && v != g.PreferredVersion.Version {
				candidates = append(candidates, v)
			}
		}
		chosen := ""
		for _, v := range candidates {
			gv := schema.GroupVersion{Group: k.Group, Version: v}.String()
			l, err := resourcesFor(gv)
			if err != nil {
				return nil, nil, err
			}
			if listable(l, k) {
				chosen = v
				break
			}
		}
		if chosen == "" {
			unavailable = append(unavailable, UnavailableKind{Group: k.Group, Kind: k.Kind, Reason: fmt.Sprintf("not served in %s (known versions: %s)", groupName(k.Group), strings.Join(k.Versions, ", "))})
			continue
		}
		out = append(out, resolvedKind{info: k, version: chosen})
	}
	return out, unavailable, nil
}

func groupName(g string) string {
	if g == "" {
		return "core"
	}
	return g
}

func slicesContains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func listable(l *metav1.APIResourceList, k rules.KindInfo) bool {
	for _, r := range l.APIResources {
		if r.Name == k.Resource && r.Kind == k.Kind {
			return slicesContains(r.Verbs, "list")
		}
	}
	return false
}

// listPaged lists every object of a resource in every namespace, pageSize at
// a time, handing each to fn as JSON-compatible maps (float64 numbers, as the
// rules expect) before the next page is requested.
func listPaged(ctx context.Context, dyn dynamic.Interface, gvr schema.GroupVersionResource, pageSize int64, selector string, kl *KindListing, fn func(rules.Object)) error {
	opts := metav1.ListOptions{Limit: pageSize, LabelSelector: selector}
	for {
		page, err := dyn.Resource(gvr).List(ctx, opts)
		if err != nil {
			return err
		}
		kl.Pages++
		apiVersion := gvr.GroupVersion().String()
		for i := range page.Items {
			obj := page.Items[i].Object
			// List items may omit apiVersion and kind; the rules need them.
			if obj["apiVersion"] == nil || obj["apiVersion"] == "" {
				obj["apiVersion"] = apiVersion
			}
			if obj["kind"] == nil || obj["kind"] == "" {
				obj["kind"] = kl.Kind
			}
			if meta, ok := obj["metadata"].(map[string]any); ok {
				delete(meta, "managedFields") // large and never read by a rule
			}
			kl.Objects++
			fn(rules.JSONNumbers(obj).(map[string]any))
			page.Items[i].Object = nil
		}
		opts.Continue = page.GetContinue()
		if opts.Continue == "" {
			return nil
		}
	}
}

// summarizeNamespaces builds the per-namespace summary: every namespace the
// cluster listed, plus any other namespace a finding names. Listed namespaces
// carry the default-deny controller's preview (NetworkPolicies).
func summarizeNamespaces(ev ClusterEvaluator, snap *rules.Snapshot, rep *Report) []NamespaceSummary {
	byName := map[string]*NamespaceSummary{}
	get := func(name string) *NamespaceSummary {
		if s, ok := byName[name]; ok {
			return s
		}
		s := &NamespaceSummary{Name: name, MeshMode: rules.ModeUnknown}
		if ns, ok := snap.Namespace(name); ok {
			s.MeshMode = ev.NamespaceMeshMode(ns)
			np := ev.NamespaceNetpol(snap, ns)
			s.NetworkPolicies = &np
		}
		s.MTLS = ev.NamespaceMTLS(snap, name)
		s.Authz = ev.NamespaceAuthz(snap, name)
		byName[name] = s
		return s
	}
	for _, n := range snap.Namespaces() {
		get(n)
	}
	for _, r := range rep.Results {
		if n, ok := namespaceOf(r.Object); ok {
			s := get(n)
			s.Objects++
			if r.MeshMode != "" {
				s.Workloads++
				if r.MeshMode == rules.ModeSidecar || r.MeshMode == rules.ModeAmbient {
					s.Meshed++
				}
			}
		}
	}
	for _, f := range rep.Findings {
		if n, ok := namespaceOf(f.Object); ok {
			s := get(n)
			s.Findings++
			if s.BySeverity == nil {
				s.BySeverity = map[string]int{}
			}
			s.BySeverity[f.Severity.String()]++
		}
	}
	out := make([]NamespaceSummary, 0, len(byName))
	for _, s := range byName {
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// namespaceOf is the namespace an object counts towards: its own, or for a
// Namespace the namespace itself. Other cluster-scoped objects count towards none.
func namespaceOf(ref rules.ObjectRef) (string, bool) {
	if ref.Namespace != "" {
		return ref.Namespace, true
	}
	if ref.Kind == "Namespace" && ref.APIVersion == "v1" {
		return ref.Name, true
	}
	return "", false
}
