package netpol

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/meshguard/meshguard/graph"
	"github.com/meshguard/meshguard/rules"
)

// maxCallerPeers is the most callers a derived ingress policy names one by
// one; beyond, it admits the mesh namespaces.
const maxCallerPeers = 64

// Prefixes of the policies derived from AuthorizationPolicies: the ingress
// side in the destination's namespace and the egress side in the caller's.
const (
	PrefixAuthzTo   = rules.NetpolPrefixAuthzTo
	PrefixAuthzFrom = rules.NetpolPrefixAuthzFrom
)

// Derived reports whether a managed policy name is one the controller
// derives from the mesh's intent (routes, AuthorizationPolicies) rather than
// one of a profile's fixed set.
func Derived(name string) bool { return rules.NetpolIntentDerived(name) }

// IntentOptions say how the intent is computed.
type IntentOptions struct {
	// Engine gives the graph the mesh's semantics. Required.
	Engine *rules.Engine
	// Live says the objects are a live cluster's (pods after injection).
	Live bool
	// MeshMode is a namespace's data plane from its labels; nil: MeshMode.
	MeshMode func(*corev1.Namespace) string
	// FromAuthz says whether the allows of a destination namespace's ALLOW
	// AuthorizationPolicies are derived (--netpol-from-authz); nil: none.
	FromAuthz func(namespace string) bool
	// TrustDomain of the identities; default graph.DefaultTrustDomain.
	TrustDomain string
	// MaxWorkloads bounds the graph: with more workloads (top-level
	// controllers and bare pods) the AuthorizationPolicy-derived allows and
	// the cut edges are not derived (Intent.Skipped says why); the
	// gateway-to-service allows need no graph and still are. 0: no bound.
	MaxWorkloads int
	// NoRestored skips Intent.Restored (one graph computation fewer).
	NoRestored bool
}

// Intent is what the mesh's own configuration says should flow, as the
// NetworkPolicies that keep it flowing under default deny, and what
// enforcing would cut.
type Intent struct {
	// Policies are the derived allow policies (gateway-to-service, and with
	// FromAuthz the AuthorizationPolicy-derived ones), sorted by namespace
	// and name.
	Policies []*networkingv1.NetworkPolicy
	// Cut lists, per namespace, the edges that flow without meshguard's
	// policies and that the managed set (profile set and derived allows)
	// cuts: "SOURCE -> DESTINATION:PORT", sorted. An edge is listed under
	// the destination's namespace and, when different, the source's. At
	// most MaxListedEdges per namespace; CutCount counts them all.
	Cut      map[string][]string
	CutCount map[string]int
	// Restored lists, per namespace, the edges plain default deny would cut
	// that the derived allows keep open (at most MaxListedEdges).
	Restored map[string][]string
	// Notes say what could not be derived, and where a derived policy opens
	// more at L3/4 than the mesh allows at L7 (request conditions).
	Notes []string
	// NotesByNamespace are the notes about each namespace's derived policies.
	NotesByNamespace map[string][]string
	// Skipped, when not empty, says why the graph-based part (allows from
	// AuthorizationPolicies, cut edges) was not derived; Cut and Restored
	// are then empty and unknown.
	Skipped string
}

// ForNamespace returns the derived policies of one namespace.
func (in *Intent) ForNamespace(ns string) []*networkingv1.NetworkPolicy {
	if in == nil {
		return nil
	}
	var out []*networkingv1.NetworkPolicy
	for _, np := range in.Policies {
		if np.Namespace == ns {
			out = append(out, np)
		}
	}
	return out
}

// Intent derives the allow policies and the cut edges from the objects: the
// routes (gateway to service) and, where FromAuthz says so, the ALLOW
// AuthorizationPolicies, read from the allowed-traffic graph of the objects
// without meshguard's own NetworkPolicies (what the mesh allows). Cut edges
// compare that graph with the graph under the whole managed set.
func (c *Config) Intent(objs []rules.Object, o IntentOptions) (*Intent, error) {
	if o.Engine == nil {
		return nil, fmt.Errorf("netpol: IntentOptions.Engine is required")
	}
	if o.MeshMode == nil {
		o.MeshMode = MeshMode
	}
	if o.TrustDomain == "" {
		o.TrustDomain = graph.DefaultTrustDomain
	}
	nss := namespacesOf(objs)
	profiles := map[string]Profile{}
	var profileSets []*networkingv1.NetworkPolicy
	for _, name := range sortedNames(nss) {
		p, _ := c.ProfileFor(nss[name], o.MeshMode(nss[name]))
		profiles[name] = p
		profileSets = append(profileSets, c.Render(name, p)...)
	}
	out := &Intent{Cut: map[string][]string{}, CutCount: map[string]int{}, Restored: map[string][]string{}, NotesByNamespace: map[string][]string{}}
	var gw []*networkingv1.NetworkPolicy
	if c.GatewayAllows {
		var notes []string
		gw, notes = c.renderGatewayAllows(objs, profiles)
		out.Notes = append(out.Notes, notes...)
	}
	if len(profileSets) == 0 {
		out.Policies = gw
		return out, nil
	}
	if n := countWorkloads(objs); o.MaxWorkloads > 0 && n > o.MaxWorkloads {
		out.Policies = gw
		out.Skipped = fmt.Sprintf("%d workloads exceed the bound of %d (--netpol-intent-max-workloads): the allows from AuthorizationPolicies and the cut edges are not derived", n, o.MaxWorkloads)
		return out, nil
	}
	// What the mesh allows: the objects without meshguard's managed policies
	// (a quarantine's stay: they are not part of any profile).
	base := make([]rules.Object, 0, len(objs))
	for _, obj := range objs {
		if kindOf(obj) == "networking.k8s.io/NetworkPolicy" {
			l := stringMap(mapAt(obj, "metadata")["labels"])
			if l[LabelManaged] == "true" && l[LabelQuarantine] == "" {
				continue
			}
		}
		base = append(base, obj)
	}
	gopts := graph.Options{Engine: o.Engine, TrustDomain: o.TrustDomain, Live: o.Live, AssumedGateways: graph.DefaultAssumedGateways(), VerdictsOnly: true}
	baseGraph, err := graph.Compute(base, gopts)
	if err != nil {
		return nil, err
	}
	derived := gw
	if o.FromAuthz != nil {
		authz, notes, err := c.renderAuthzAllows(baseGraph, objs, profiles, o.FromAuthz)
		if err != nil {
			return nil, err
		}
		derived = append(derived, authz...)
		for ns, n := range notes {
			out.Notes = append(out.Notes, n...)
			out.NotesByNamespace[ns] = n
		}
	}
	sort.SliceStable(derived, func(i, j int) bool {
		if derived[i].Namespace != derived[j].Namespace {
			return derived[i].Namespace < derived[j].Namespace
		}
		return derived[i].Name < derived[j].Name
	})
	out.Policies = derived

	withPlain, err := withPolicies(base, profileSets)
	if err != nil {
		return nil, err
	}
	withAll, err := withPolicies(withPlain, derived)
	if err != nil {
		return nil, err
	}
	allGraph, err := graph.Compute(withAll, gopts)
	if err != nil {
		return nil, err
	}
	var plainGraph *graph.Graph
	if !o.NoRestored {
		if plainGraph, err = graph.Compute(withPlain, gopts); err != nil {
			return nil, err
		}
	}
	// The graphs differ only in NetworkPolicies, which make no nodes: their
	// nodes and edges come in the same order, so edge i is the same
	// connection in each. Only cut edges are ever turned into text: a
	// cluster without AuthorizationPolicies allows (and default deny cuts)
	// millions of edges.
	for _, g := range []*graph.Graph{allGraph, plainGraph} {
		if g != nil && !sameEdges(baseGraph, g) {
			return nil, fmt.Errorf("netpol: the graphs with and without the managed policies differ in their edges")
		}
	}
	restored := map[string]int{}
	for i := range baseGraph.Edges {
		e := &baseGraph.Edges[i]
		if !e.Verdict.Allowed() {
			continue
		}
		if allGraph.Edges[i].Verdict.Allowed() {
			if plainGraph != nil && !plainGraph.Edges[i].Verdict.Allowed() {
				listEdge(baseGraph, e, out.Restored, restored)
			}
			continue
		}
		listEdge(baseGraph, e, out.Cut, out.CutCount)
	}
	for _, m := range []map[string][]string{out.Cut, out.Restored} {
		for _, l := range m {
			sort.Strings(l)
		}
	}
	sort.Strings(out.Notes)
	out.Notes = slices.Compact(out.Notes)
	return out, nil
}

// countWorkloads counts the objects that become workload nodes of the
// graph: pod-template kinds and Pods without a controller owner.
func countWorkloads(objs []rules.Object) int {
	n := 0
	for _, o := range objs {
		switch kindOf(o) {
		case "/Pod", "/ReplicationController", "apps/Deployment", "apps/StatefulSet", "apps/DaemonSet", "apps/ReplicaSet", "batch/Job", "batch/CronJob":
			owned := false
			for _, r := range listOf(mapAt(o, "metadata")["ownerReferences"]) {
				if c, _ := mapOf(r)["controller"].(bool); c {
					owned = true
				}
			}
			if !owned {
				n++
			}
		}
	}
	return n
}

// MaxListedEdges is the most cut (or kept) edges an Intent lists per
// namespace; the count covers them all.
const MaxListedEdges = 100

// listEdge counts an edge under its destination's namespace and, when
// different, its source's, and lists it there while fewer than
// MaxListedEdges are. Edges come in graph order (by destination), so the
// listed ones are the first destinations'.
func listEdge(g *graph.Graph, e *graph.Edge, list map[string][]string, count map[string]int) {
	from, to := g.Node(e.From), g.Node(e.To)
	nss := []string{to.Namespace}
	if from.Namespace != "" && from.Namespace != to.Namespace {
		nss = append(nss, from.Namespace)
	}
	text := ""
	for _, ns := range nss {
		count[ns]++
		if len(list[ns]) >= MaxListedEdges {
			continue
		}
		if text == "" {
			text = fmt.Sprintf("%s -> %s:%d", from.ID, to.ID, e.Port)
		}
		list[ns] = append(list[ns], text)
	}
}

// sameEdges reports whether two graphs have the same nodes and edges in the
// same order (their verdicts may differ).
func sameEdges(a, b *graph.Graph) bool {
	if len(a.Nodes) != len(b.Nodes) || len(a.Edges) != len(b.Edges) {
		return false
	}
	for i := range a.Nodes {
		if a.Nodes[i].ID != b.Nodes[i].ID {
			return false
		}
	}
	for i := range a.Edges {
		x, y := &a.Edges[i], &b.Edges[i]
		if x.From != y.From || x.To != y.To || x.Port != y.Port {
			return false
		}
	}
	return true
}

// withPolicies returns objs followed by the policies as rule objects.
func withPolicies(objs []rules.Object, nps []*networkingv1.NetworkPolicy) ([]rules.Object, error) {
	out := append(make([]rules.Object, 0, len(objs)+len(nps)), objs...)
	for _, np := range nps {
		b, err := json.Marshal(np)
		if err != nil {
			return nil, err
		}
		var o rules.Object
		if err := json.Unmarshal(b, &o); err != nil {
			return nil, err
		}
		out = append(out, rules.JSONNumbers(o).(map[string]any))
	}
	return out, nil
}

// authzAcc accumulates one derived policy: peers by key, ports per peer.
type authzAcc struct {
	ns, name   string
	selector   map[string]string
	egress     bool
	peers      map[string]networkingv1.NetworkPolicyPeer
	ports      map[string]map[int32]bool
	from       map[string]bool
	workloadID string
}

func (a *authzAcc) add(key string, peer networkingv1.NetworkPolicyPeer, port int32, policies []string) {
	if a.peers[key].NamespaceSelector == nil && a.peers[key].PodSelector == nil && a.peers[key].IPBlock == nil {
		a.peers[key] = peer
	}
	if a.ports[key] == nil {
		a.ports[key] = map[int32]bool{}
	}
	if port > 0 {
		a.ports[key][port] = true
	}
	for _, p := range policies {
		a.from["AuthorizationPolicy/"+p] = true
	}
}

// renderAuthzAllows derives, from the graph of what the mesh allows, a
// NetworkPolicy pair for every edge an explicit ALLOW AuthorizationPolicy
// allows (in full or for some requests) between workloads: ingress on the
// destination's pods from the caller's pods on the port
// (mesh-allow-authz-to-<workload>), and egress on the caller's pods to the
// destination's (mesh-allow-authz-from-<workload>). Only namespaces with
// the sidecar profile need them (the ambient profile admits HBONE between
// mesh namespaces). Request conditions (paths, methods, claims) cannot be
// expressed at L3/4: the port opens for every request and a note says so.
// ALLOW sources that match no workload of the input open, on the policy's
// pods and ports, the narrowest peer that holds them: their namespace when
// the pattern names one, every namespace otherwise; a note says so.
func (c *Config) renderAuthzAllows(g *graph.Graph, objs []rules.Object, profiles map[string]Profile, enabled func(string) bool) ([]*networkingv1.NetworkPolicy, map[string][]string, error) {
	accs := map[string]*authzAcc{}
	names := map[string]string{} // policy key -> workload ID that owns the name
	noteSet := map[string]bool{}
	nsNotes := map[string]map[string]bool{}
	note := func(ns, format string, args ...any) {
		n := fmt.Sprintf(format, args...)
		noteSet[n] = true
		if nsNotes[ns] == nil {
			nsNotes[ns] = map[string]bool{}
		}
		nsNotes[ns][n] = true
	}
	acc := func(ns, prefix string, n *graph.Node, egress bool) *authzAcc {
		// Workload names may be as long as a policy name may: bounded, so a
		// long name never makes a policy the API server refuses.
		name := BoundedName(prefix+n.Name, MaxPolicyName)
		key := ns + "/" + name
		if owner, ok := names[key]; ok && owner != n.ID {
			name = BoundedName(prefix+strings.ToLower(n.Workload)+"-"+n.Name, MaxPolicyName)
			key = ns + "/" + name
		}
		names[key] = n.ID
		a := accs[key]
		if a == nil {
			a = &authzAcc{ns: ns, name: name, selector: n.PodLabels, egress: egress, peers: map[string]networkingv1.NetworkPolicyPeer{}, ports: map[string]map[int32]bool{}, from: map[string]bool{}, workloadID: n.ID}
			accs[key] = a
		}
		return a
	}
	sidecar := func(ns string) bool { return profiles[ns] == ProfileSidecar }
	meshCaller := map[string]bool{} // peer keys of callers in mesh namespaces
	callers := map[string]rules.AuthzCaller{}
	for i := range g.Nodes {
		n := &g.Nodes[i]
		if n.Identity != "" {
			callers[n.ID] = rules.AuthzCaller{Principal: strings.TrimPrefix(n.Identity, "spiffe://"), Namespace: n.Namespace}
		}
	}
	for _, e := range g.Edges {
		if !e.Verdict.Allowed() || e.Why == nil || len(e.Why.Allowing) == 0 {
			continue
		}
		src, dst := g.Node(e.From), g.Node(e.To)
		if !enabled(dst.Namespace) || dst.Kind != graph.NodeWorkload {
			continue
		}
		if e.Verdict == graph.Conditional {
			note(dst.Namespace, "AuthorizationPolicy %s allows %s only some requests to %s on port %d (%s): the derived NetworkPolicy opens the port for all of them (L3/4 cannot express request conditions)",
				strings.Join(e.Why.Allowing, ", "), src.ID, dst.ID, e.Port, strings.Join(e.Why.Conditions, "; "))
		}
		switch src.Kind {
		case graph.NodeGateway:
			continue // the routes' gateway-to-service policies admit gateways
		case graph.NodeOutside:
			// Any caller, plaintext ones included. The widest safe L3/4
			// equivalent is every mesh namespace: admitting every address
			// would undo default deny (MESH0212, MESH0213); callers outside
			// the mesh stay cut and are listed with the cut edges.
			if sidecar(dst.Namespace) {
				a := acc(dst.Namespace, PrefixAuthzTo, dst, false)
				for i, p := range c.meshCallerPeers() {
					a.add(fmt.Sprintf("mesh:%d", i), p, e.Port, e.Why.Allowing)
				}
				note(dst.Namespace, "AuthorizationPolicy %s allows any caller, without a mesh identity too, to %s on port %d: the derived NetworkPolicy admits every mesh namespace on that port; callers outside the mesh stay cut (admit them with a NetworkPolicy of your own)", strings.Join(e.Why.Allowing, ", "), dst.ID, e.Port)
			}
			continue
		}
		if sidecar(dst.Namespace) {
			peer := networkingv1.NetworkPolicyPeer{NamespaceSelector: nsSelector(src.Namespace)}
			if len(src.PodLabels) > 0 {
				// A quarantined caller is not a caller (its egress is cut by
				// the quarantine; the destination does not admit it either).
				sel := AllowTargetSelector(src.PodLabels)
				peer.PodSelector = &sel
			} else {
				note(dst.Namespace, "%s has no pod labels to select it by: %s admits every pod of namespace %s on port %d", src.ID, PrefixAuthzTo+dst.Name, src.Namespace, e.Port)
			}
			acc(dst.Namespace, PrefixAuthzTo, dst, false).add("wl:"+src.ID, peer, e.Port, e.Why.Allowing)
			if profiles[src.Namespace] == ProfileSidecar || profiles[src.Namespace] == ProfileAmbient {
				meshCaller["wl:"+src.ID] = true
			}
		}
		if sidecar(src.Namespace) && len(dst.PodLabels) > 0 {
			sel := AllowTargetSelector(dst.PodLabels)
			peer := networkingv1.NetworkPolicyPeer{NamespaceSelector: nsSelector(dst.Namespace), PodSelector: &sel}
			acc(src.Namespace, PrefixAuthzFrom, src, true).add("wl:"+dst.ID, peer, e.Port, e.Why.Allowing)
		}
	}
	// ALLOW sources no workload of the input matches.
	for _, obj := range objs {
		if kindOf(obj) != "security.istio.io/AuthorizationPolicy" {
			continue
		}
		ap, err := rules.NewAuthzPolicy(obj, "default")
		if err != nil {
			return nil, nil, fmt.Errorf("AuthorizationPolicy %s/%s: %w", str(mapOf(obj["metadata"]), "namespace"), str(mapOf(obj["metadata"]), "name"), err)
		}
		if ap.Action != "ALLOW" || ap.DryRun || !enabled(ap.Namespace) || !sidecar(ap.Namespace) {
			continue
		}
		for _, s := range ap.AllowedSources() {
			hit := false
			for _, cl := range callers {
				if s.Matches(cl) {
					hit = true
					break
				}
			}
			if hit {
				continue
			}
			// Only mesh workloads have an identity to match: a pattern
			// without one namespace opens to every mesh namespace.
			peers := c.meshCallerPeers()
			where := "every mesh namespace"
			if ns, ok := s.Namespace(); ok {
				peers = []networkingv1.NetworkPolicyPeer{{NamespaceSelector: nsSelector(ns)}}
				where = "namespace " + ns
			}
			var dsts []*graph.Node
			for i := range g.Nodes {
				n := &g.Nodes[i]
				if n.Kind == graph.NodeWorkload && ap.SelectsWorkload(n.Namespace, n.PodLabels, "") && n.Namespace == ap.Namespace {
					dsts = append(dsts, n)
				}
			}
			if len(dsts) == 0 {
				continue
			}
			for _, d := range dsts {
				a := acc(d.Namespace, PrefixAuthzTo, d, false)
				for i, peer := range peers {
					for _, port := range d.Ports {
						a.add(fmt.Sprintf("src:%s:%s:%d", s.Field, s.Pattern, i), peer, int32(port), []string{ap.Ref()})
					}
				}
			}
			note(ap.Namespace, "AuthorizationPolicy %s allows %s %q, which matches no workload meshguard sees: its pods and ports are opened to %s (a NetworkPolicy cannot select by identity); the callers' own namespaces get no egress rule", ap.Ref(), s.Field, s.Pattern, where)
		}
	}
	var out []*networkingv1.NetworkPolicy
	for _, key := range sortedNames(accs) {
		a := accs[key]
		// A destination many callers may reach (an ALLOW for every
		// authenticated caller, say) gets the mesh-wide peers instead of one
		// peer per caller, so one policy cannot grow with the cluster.
		if callers := len(slices.DeleteFunc(sortedNames(a.peers), func(k string) bool { return !strings.HasPrefix(k, "wl:") })); !a.egress && callers > maxCallerPeers {
			union := map[int32]bool{}
			for pk, ports := range a.ports {
				if strings.HasPrefix(pk, "wl:") && meshCaller[pk] {
					for p := range ports {
						union[p] = true
					}
					delete(a.peers, pk)
					delete(a.ports, pk)
				}
			}
			for i, peer := range c.meshCallerPeers() {
				k := fmt.Sprintf("mesh:%d", i)
				a.peers[k] = peer
				if a.ports[k] == nil {
					a.ports[k] = map[int32]bool{}
				}
				for p := range union {
					a.ports[k][p] = true
				}
			}
			note(a.ns, "%s may be called by %d workloads: %s admits every mesh namespace on those ports instead of naming each caller", a.workloadID, callers, a.name)
		}
		// Ports open to every mesh namespace (an ALLOW for any caller) need
		// no per-caller peer from a mesh namespace: it would only repeat them.
		if any := a.ports["mesh:0"]; len(any) > 0 {
			for pk, ports := range a.ports {
				if !strings.HasPrefix(pk, "wl:") || !meshCaller[pk] {
					continue
				}
				for p := range ports {
					if any[p] {
						delete(ports, p)
					}
				}
			}
		}
		np := &networkingv1.NetworkPolicy{
			TypeMeta: metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
			ObjectMeta: metav1.ObjectMeta{
				Name: a.name, Namespace: a.ns, Labels: ManagedLabels(),
				Annotations: map[string]string{AnnotationVersion: PolicySetVersion, AnnotationIntent: strings.Join(sortedNames(a.from), ",")},
			},
			Spec: networkingv1.NetworkPolicySpec{PodSelector: AllowTargetSelector(a.selector)},
		}
		if len(a.selector) == 0 {
			note(a.ns, "%s has no pod labels to select it by: no %s rendered", a.workloadID, a.name)
			continue
		}
		for _, pk := range sortedNames(a.peers) {
			var ports []networkingv1.NetworkPolicyPort
			ps := make([]int32, 0, len(a.ports[pk]))
			for p := range a.ports[pk] {
				ps = append(ps, p)
			}
			sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
			for _, p := range ps {
				proto, v := tcp, intstr.FromInt32(p)
				ports = append(ports, networkingv1.NetworkPolicyPort{Protocol: &proto, Port: &v})
			}
			if len(ports) == 0 {
				continue
			}
			peer := a.peers[pk]
			if a.egress {
				np.Spec.Egress = append(np.Spec.Egress, networkingv1.NetworkPolicyEgressRule{To: []networkingv1.NetworkPolicyPeer{peer}, Ports: ports})
			} else {
				np.Spec.Ingress = append(np.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{From: []networkingv1.NetworkPolicyPeer{peer}, Ports: ports})
			}
		}
		if a.egress {
			np.Spec.PolicyTypes = []networkingv1.PolicyType{egress}
			if len(np.Spec.Egress) == 0 {
				continue
			}
		} else {
			np.Spec.PolicyTypes = []networkingv1.PolicyType{ingress}
			if len(np.Spec.Ingress) == 0 {
				continue
			}
		}
		out = append(out, np)
	}
	notes := map[string][]string{}
	for ns, set := range nsNotes {
		notes[ns] = sortedNames(set)
	}
	return out, notes, nil
}

// meshCallerPeers are the namespaces whose pods can hold a mesh identity:
// the mesh namespaces and the gateway namespaces.
func (c *Config) meshCallerPeers() []networkingv1.NetworkPolicyPeer {
	out := meshNamespacePeers()
	for _, ns := range c.GatewayNamespaces {
		out = append(out, networkingv1.NetworkPolicyPeer{NamespaceSelector: nsSelector(ns)})
	}
	return out
}
