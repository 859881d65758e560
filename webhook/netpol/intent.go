package netpol

import (
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/meshguard/meshguard/rules"
)

// PrefixGatewayAllow starts the name of every gateway-to-service policy
// (RULES.md 6.5): mesh-allow-gateway-to-<service>.
const PrefixGatewayAllow = rules.NetpolPrefixGatewayAllow

// AnnotationIntent says what a derived allow policy was derived from
// (informational: the routes that made it).
const AnnotationIntent = "meshguard.io/derived-from"

// AllowTargetSelector is the podSelector of every managed allow policy: the
// pods of the Service (or workload) the policy opens. It is the single place
// such selectors are built, so that exclusions (for example quarantined pods)
// apply to every managed allow policy at once.
func AllowTargetSelector(matchLabels map[string]string) metav1.LabelSelector {
	return ExcludeQuarantined(metav1.LabelSelector{MatchLabels: copyMap(matchLabels)})
}

// RenderAll returns every NetworkPolicy the controller would manage for the
// objects: the profile set of every Namespace the objects hold (in namespace
// order, each in render order), then the derived allows of the Intent, which
// is returned too (cut edges, notes). It is deterministic.
func (c *Config) RenderAll(objs []rules.Object, o IntentOptions) ([]*networkingv1.NetworkPolicy, *Intent, error) {
	if o.MeshMode == nil {
		o.MeshMode = MeshMode
	}
	if o.FromAuthz == nil {
		o.FromAuthz = c.FromAuthzEnabled()
	}
	nss := namespacesOf(objs)
	var out []*networkingv1.NetworkPolicy
	for _, name := range sortedNames(nss) {
		p, _ := c.ProfileFor(nss[name], o.MeshMode(nss[name]))
		out = append(out, c.Render(name, p)...)
	}
	in, err := c.Intent(objs, o)
	if err != nil {
		return nil, nil, err
	}
	return append(out, in.Policies...), in, nil
}

func namespacesOf(objs []rules.Object) map[string]*corev1.Namespace {
	out := map[string]*corev1.Namespace{}
	for _, o := range objs {
		if kindOf(o) != "/Namespace" {
			continue
		}
		meta := mapOf(o["metadata"])
		name := str(meta, "name")
		if name == "" {
			continue
		}
		out[name] = &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: stringMap(meta["labels"])}}
	}
	return out
}

func sortedNames[T any](m map[string]T) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// gatewayPeer is the set of gateway pods a route enters through.
type gatewayPeer struct {
	namespaces []string
	labels     map[string]string
}

func (p gatewayPeer) key() string {
	var b strings.Builder
	b.WriteString(strings.Join(p.namespaces, ","))
	for _, k := range sortedNames(p.labels) {
		fmt.Fprintf(&b, ";%s=%s", k, p.labels[k])
	}
	return b.String()
}

// backend is one Service a gateway route leads to.
type backend struct {
	ns, name string
	port     int // the Service port the route names; 0: every port
	peer     gatewayPeer
	from     string // the route, "Kind/ns/name"
}

// allowAcc accumulates one gateway-to-service policy.
type allowAcc struct {
	svc   rules.Object
	peers map[string]gatewayPeer
	ports map[string]map[string]intstr.IntOrString // peer key -> port key -> port
	from  map[string]bool
}

// RenderGatewayAllows returns, for every Service that a Gateway-bound
// VirtualService or a Gateway API HTTPRoute routes to, the policy
// mesh-allow-gateway-to-<service> admitting only the gateway's pods on the
// Service's target ports (15008 in ambient namespaces). Policies are
// rendered only in namespaces the objects hold with an application profile
// (sidecar or ambient): elsewhere no default deny is installed and an allow
// policy would isolate the pods it selects. Sorted by namespace, then name.
func (c *Config) RenderGatewayAllows(objs []rules.Object) ([]*networkingv1.NetworkPolicy, []string) {
	profiles := map[string]Profile{}
	for name, ns := range namespacesOf(objs) {
		profiles[name], _ = c.ProfileFor(ns, MeshMode(ns))
	}
	return c.renderGatewayAllows(objs, profiles)
}

// renderGatewayAllows is RenderGatewayAllows with the namespaces' profiles
// decided by the caller.
func (c *Config) renderGatewayAllows(objs []rules.Object, profiles map[string]Profile) ([]*networkingv1.NetworkPolicy, []string) {
	idx := indexObjects(objs)
	var notes []string
	var backends []backend
	for _, o := range objs {
		switch kindOf(o) {
		case "networking.istio.io/VirtualService":
			b, n := c.virtualServiceBackends(o, idx)
			backends, notes = append(backends, b...), append(notes, n...)
		case "gateway.networking.k8s.io/HTTPRoute":
			b, n := httpRouteBackends(o, idx)
			backends, notes = append(backends, b...), append(notes, n...)
		}
	}
	accs := map[string]*allowAcc{}
	for _, b := range backends {
		p, ok := profiles[b.ns]
		if !ok {
			notes = append(notes, fmt.Sprintf("%s routes to Service %s/%s, whose Namespace is not in the input: no policy rendered", b.from, b.ns, b.name))
			continue
		}
		if p != ProfileSidecar && p != ProfileAmbient {
			continue
		}
		svc := idx.services[b.ns+"/"+b.name]
		if svc == nil {
			notes = append(notes, fmt.Sprintf("%s routes to Service %s/%s, which is not in the input: no policy rendered", b.from, b.ns, b.name))
			continue
		}
		if len(stringMap(mapAt(svc, "spec")["selector"])) == 0 {
			notes = append(notes, fmt.Sprintf("%s routes to Service %s/%s, which has no selector: no policy rendered", b.from, b.ns, b.name))
			continue
		}
		key := b.ns + "/" + b.name
		acc := accs[key]
		if acc == nil {
			acc = &allowAcc{svc: svc, peers: map[string]gatewayPeer{}, ports: map[string]map[string]intstr.IntOrString{}, from: map[string]bool{}}
			accs[key] = acc
		}
		pk := b.peer.key()
		acc.peers[pk] = b.peer
		if acc.ports[pk] == nil {
			acc.ports[pk] = map[string]intstr.IntOrString{}
		}
		acc.from[b.from] = true
		var ports []intstr.IntOrString
		if p == ProfileAmbient {
			ports = []intstr.IntOrString{intstr.FromInt32(hbonePort)}
		} else {
			ports = targetPorts(svc, b.port)
			if len(ports) == 0 {
				notes = append(notes, fmt.Sprintf("%s routes to port %d of Service %s/%s, which has no such port: no port opened for it", b.from, b.port, b.ns, b.name))
			}
		}
		for _, pt := range ports {
			acc.ports[pk][pt.String()] = pt
		}
	}
	var out []*networkingv1.NetworkPolicy
	for _, key := range sortedNames(accs) {
		acc := accs[key]
		ns, name, _ := strings.Cut(key, "/")
		np := &networkingv1.NetworkPolicy{
			TypeMeta: metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
			ObjectMeta: metav1.ObjectMeta{
				Name: PrefixGatewayAllow + name, Namespace: ns, Labels: ManagedLabels(),
				Annotations: map[string]string{AnnotationVersion: PolicySetVersion, AnnotationIntent: strings.Join(sortedNames(acc.from), ",")},
			},
			Spec: networkingv1.NetworkPolicySpec{
				PodSelector: AllowTargetSelector(stringMap(mapAt(acc.svc, "spec")["selector"])),
				PolicyTypes: []networkingv1.PolicyType{ingress},
			},
		}
		for _, pk := range sortedNames(acc.peers) {
			if len(acc.ports[pk]) == 0 {
				continue
			}
			peer := acc.peers[pk]
			rule := networkingv1.NetworkPolicyIngressRule{From: []networkingv1.NetworkPolicyPeer{{
				NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
					Key: labelNamespaceName, Operator: metav1.LabelSelectorOpIn, Values: peer.namespaces,
				}}},
				PodSelector: func() *metav1.LabelSelector { s := AllowTargetSelector(peer.labels); return &s }(),
			}}}
			for _, k := range sortedNames(acc.ports[pk]) {
				pt := acc.ports[pk][k]
				proto := tcp
				rule.Ports = append(rule.Ports, networkingv1.NetworkPolicyPort{Protocol: &proto, Port: &pt})
			}
			np.Spec.Ingress = append(np.Spec.Ingress, rule)
		}
		if len(np.Spec.Ingress) == 0 {
			continue
		}
		out = append(out, np)
	}
	sort.Strings(notes)
	return out, notes
}

// targetPorts are the pod ports behind a Service port (every port when
// port is 0). A named targetPort stays named: the NetworkPolicy resolves it
// against each selected pod's container ports, as the Service does.
func targetPorts(svc rules.Object, port int) []intstr.IntOrString {
	var out []intstr.IntOrString
	for _, sp := range listOf(mapAt(svc, "spec")["ports"]) {
		m := mapOf(sp)
		if proto := str(m, "protocol"); proto != "" && proto != "TCP" {
			continue
		}
		p, _ := intOf(m["port"])
		if port != 0 && p != port {
			continue
		}
		switch tp := m["targetPort"].(type) {
		case string:
			if tp != "" {
				out = append(out, intstr.FromString(tp))
				continue
			}
		default:
			if n, ok := intOf(tp); ok && n > 0 {
				out = append(out, intstr.FromInt32(int32(n)))
				continue
			}
		}
		if p > 0 {
			out = append(out, intstr.FromInt32(int32(p)))
		}
	}
	return out
}

// objectIndex holds the objects routes refer to.
type objectIndex struct {
	services    map[string]rules.Object // ns/name
	gateways    map[string]rules.Object // Istio Gateways, ns/name
	apiGateways map[string]rules.Object // Gateway API Gateways, ns/name
	podLabels   map[string][]map[string]string
	grants      map[string][]rules.Object // ReferenceGrants by namespace
	nsLabels    map[string]map[string]string
}

func indexObjects(objs []rules.Object) *objectIndex {
	idx := &objectIndex{services: map[string]rules.Object{}, gateways: map[string]rules.Object{}, apiGateways: map[string]rules.Object{},
		podLabels: map[string][]map[string]string{}, grants: map[string][]rules.Object{}, nsLabels: map[string]map[string]string{}}
	for _, o := range objs {
		meta := mapOf(o["metadata"])
		key := str(meta, "namespace") + "/" + str(meta, "name")
		switch kindOf(o) {
		case "/Service":
			idx.services[key] = o
		case "networking.istio.io/Gateway":
			idx.gateways[key] = o
		case "gateway.networking.k8s.io/Gateway":
			idx.apiGateways[key] = o
		case "gateway.networking.k8s.io/ReferenceGrant":
			ns := str(meta, "namespace")
			idx.grants[ns] = append(idx.grants[ns], o)
		case "/Namespace":
			idx.nsLabels[str(meta, "name")] = stringMap(meta["labels"])
		case "/Pod":
			idx.podLabels[str(meta, "namespace")] = append(idx.podLabels[str(meta, "namespace")], stringMap(meta["labels"]))
		case "apps/Deployment", "apps/StatefulSet", "apps/DaemonSet", "apps/ReplicaSet":
			l := stringMap(mapAt(o, "spec", "template", "metadata")["labels"])
			idx.podLabels[str(meta, "namespace")] = append(idx.podLabels[str(meta, "namespace")], l)
		}
	}
	return idx
}

// gatewayNamespaces are the namespaces holding pods the selector matches;
// the configured gateway namespaces when the input holds none.
func (c *Config) gatewayNamespaces(idx *objectIndex, sel map[string]string) []string {
	var out []string
	for _, ns := range sortedNames(idx.podLabels) {
		for _, l := range idx.podLabels[ns] {
			if selectsLabels(sel, l) {
				out = append(out, ns)
				break
			}
		}
	}
	if len(out) == 0 {
		out = append(out, c.GatewayNamespaces...)
		sort.Strings(out)
	}
	return out
}

func selectsLabels(sel, l map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if l[k] != v {
			return false
		}
	}
	return true
}

// virtualServiceBackends are the Services a VirtualService bound to an
// Istio Gateway routes to (http, tls and tcp routes).
func (c *Config) virtualServiceBackends(vs rules.Object, idx *objectIndex) ([]backend, []string) {
	meta := mapOf(vs["metadata"])
	ns, name := str(meta, "namespace"), str(meta, "name")
	from := "VirtualService/" + ns + "/" + name
	var notes []string
	var peers []gatewayPeer
	for _, g := range listOf(mapAt(vs, "spec")["gateways"]) {
		ref, _ := g.(string)
		if ref == "" || ref == "mesh" {
			continue
		}
		gns, gname, ok := strings.Cut(ref, "/")
		if !ok {
			gns, gname = ns, ref
		}
		gw := idx.gateways[gns+"/"+gname]
		if gw == nil {
			notes = append(notes, fmt.Sprintf("%s names Gateway %s/%s, which is not in the input: its routes open nothing", from, gns, gname))
			continue
		}
		sel := stringMap(mapAt(gw, "spec")["selector"])
		if len(sel) == 0 {
			notes = append(notes, fmt.Sprintf("%s names Gateway %s/%s, which has no selector: its routes open nothing", from, gns, gname))
			continue
		}
		peers = append(peers, gatewayPeer{namespaces: c.gatewayNamespaces(idx, sel), labels: sel})
	}
	if len(peers) == 0 {
		return nil, notes
	}
	var out []backend
	spec := mapAt(vs, "spec")
	for _, section := range []string{"http", "tls", "tcp"} {
		for _, r := range listOf(spec[section]) {
			for _, d := range listOf(mapOf(r)["route"]) {
				dest := mapOf(mapOf(d)["destination"])
				host := str(dest, "host")
				svcNS, svcName, ok := serviceOfHost(host, ns)
				if !ok {
					notes = append(notes, fmt.Sprintf("%s routes to host %q, which is not a Service of this cluster: no policy rendered for it", from, host))
					continue
				}
				port, _ := intOf(mapOf(dest["port"])["number"])
				for _, p := range peers {
					out = append(out, backend{ns: svcNS, name: svcName, port: port, peer: p, from: from})
				}
			}
		}
	}
	return out, notes
}

// serviceOfHost resolves a VirtualService destination host to a Service as
// Istio does (pilot/pkg/model ResolveShortnameToFQDN): a name without a dot
// is in the VirtualService's namespace; name.ns.svc.<cluster domain> names
// another. Any other dotted host ("name.ns", external names) is taken
// literally and is not a Service's host; wildcards are not Services.
func serviceOfHost(host, ns string) (string, string, bool) {
	if host == "" || strings.Contains(host, "*") {
		return "", "", false
	}
	parts := strings.Split(host, ".")
	switch {
	case len(parts) == 1:
		return ns, parts[0], true
	case len(parts) >= 4 && parts[2] == "svc":
		return parts[1], parts[0], true
	}
	return "", "", false
}

// httpRouteBackends are the Services an HTTPRoute attached to a Gateway API
// Gateway routes to. The Gateway's pods carry
// gateway.networking.k8s.io/gateway-name in the Gateway's namespace.
func httpRouteBackends(rt rules.Object, idx *objectIndex) ([]backend, []string) {
	meta := mapOf(rt["metadata"])
	ns, name := str(meta, "namespace"), str(meta, "name")
	from := "HTTPRoute/" + ns + "/" + name
	var notes []string
	var peers []gatewayPeer
	for _, pr := range listOf(mapAt(rt, "spec")["parentRefs"]) {
		m := mapOf(pr)
		if k := str(m, "kind"); k != "" && k != "Gateway" {
			continue
		}
		if g := str(m, "group"); g != "" && g != "gateway.networking.k8s.io" {
			continue
		}
		gns := str(m, "namespace")
		if gns == "" {
			gns = ns
		}
		gname := str(m, "name")
		gw := idx.apiGateways[gns+"/"+gname]
		if gw == nil {
			notes = append(notes, fmt.Sprintf("%s is attached to Gateway %s/%s, which is not in the input: its routes open nothing", from, gns, gname))
			continue
		}
		if !idx.gatewayAdmitsRoutesFrom(gw, gns, ns) {
			notes = append(notes, fmt.Sprintf("%s is attached to Gateway %s/%s, whose listeners do not allow routes from namespace %s (allowedRoutes): Istio ignores it, it opens nothing", from, gns, gname, ns))
			continue
		}
		peers = append(peers, gatewayPeer{namespaces: []string{gns}, labels: map[string]string{"gateway.networking.k8s.io/gateway-name": gname}})
	}
	if len(peers) == 0 {
		return nil, notes
	}
	var out []backend
	for _, r := range listOf(mapAt(rt, "spec")["rules"]) {
		for _, br := range listOf(mapOf(r)["backendRefs"]) {
			m := mapOf(br)
			if k := str(m, "kind"); k != "" && k != "Service" {
				continue
			}
			if g := str(m, "group"); g != "" && g != "core" {
				continue
			}
			bns := str(m, "namespace")
			if bns == "" {
				bns = ns
			}
			if bns != ns && !idx.grantsRouteTo(bns, ns, str(m, "name")) {
				notes = append(notes, fmt.Sprintf("%s routes to Service %s/%s, but no ReferenceGrant in namespace %s lets HTTPRoutes of namespace %s refer to it: Istio does not route there, no policy rendered", from, bns, str(m, "name"), bns, ns))
				continue
			}
			port, _ := intOf(m["port"])
			for _, p := range peers {
				out = append(out, backend{ns: bns, name: str(m, "name"), port: port, peer: p, from: from})
			}
		}
	}
	return out, notes
}

func kindOf(o rules.Object) string {
	av, _ := o["apiVersion"].(string)
	k, _ := o["kind"].(string)
	g := ""
	if i := strings.LastIndex(av, "/"); i >= 0 {
		g = av[:i]
	}
	return g + "/" + k
}

func str(m map[string]any, k string) string { s, _ := m[k].(string); return s }

func mapOf(v any) map[string]any { m, _ := v.(map[string]any); return m }

func listOf(v any) []any { l, _ := v.([]any); return l }

func mapAt(m map[string]any, path ...string) map[string]any {
	for _, p := range path {
		m = mapOf(m[p])
	}
	return m
}

func stringMap(v any) map[string]string {
	out := map[string]string{}
	for k, x := range mapOf(v) {
		if s, ok := x.(string); ok {
			out[k] = s
		}
	}
	return out
}

func intOf(v any) (int, bool) {
	switch n := v.(type) {
	case int:
		return n, true
	case int64:
		return int(n), true
	case float64:
		return int(n), n == float64(int(n))
	}
	return 0, false
}

// gatewayAdmitsRoutesFrom reports whether some listener of a Gateway API
// Gateway (in gwNS) admits HTTPRoutes of namespace ns: allowedRoutes
// namespaces from Same (the default), All, or Selector (matchLabels and
// matchExpressions on the namespace's labels), as the Gateway API defines it.
func (idx *objectIndex) gatewayAdmitsRoutesFrom(gw rules.Object, gwNS, ns string) bool {
	listeners := listOf(mapAt(gw, "spec")["listeners"])
	if len(listeners) == 0 {
		return ns == gwNS
	}
	for _, l := range listeners {
		nsSpec := mapAt(mapOf(l), "allowedRoutes", "namespaces")
		if kinds := listOf(mapAt(mapOf(l), "allowedRoutes")["kinds"]); len(kinds) > 0 && !slicesContainsKind(kinds, "HTTPRoute") {
			continue
		}
		switch str(nsSpec, "from") {
		case "", "Same":
			if ns == gwNS {
				return true
			}
		case "All":
			return true
		case "Selector":
			var sel metav1.LabelSelector
			raw := mapOf(nsSpec["selector"])
			sel.MatchLabels = stringMap(raw["matchLabels"])
			for _, e := range listOf(raw["matchExpressions"]) {
				em := mapOf(e)
				var vals []string
				for _, v := range listOf(em["values"]) {
					if s, ok := v.(string); ok {
						vals = append(vals, s)
					}
				}
				sel.MatchExpressions = append(sel.MatchExpressions, metav1.LabelSelectorRequirement{Key: str(em, "key"), Operator: metav1.LabelSelectorOperator(str(em, "operator")), Values: vals})
			}
			s, err := metav1.LabelSelectorAsSelector(&sel)
			if err == nil {
				l := idx.nsLabels[ns]
				if l == nil {
					l = map[string]string{}
				}
				l[labelNamespaceName] = ns
				if s.Matches(labels.Set(l)) {
					return true
				}
			}
		}
	}
	return false
}

func slicesContainsKind(kinds []any, kind string) bool {
	for _, k := range kinds {
		if str(mapOf(k), "kind") == kind {
			return true
		}
	}
	return false
}

// grantsRouteTo reports whether a ReferenceGrant in namespace to lets
// HTTPRoutes of namespace from refer to the Service name there.
func (idx *objectIndex) grantsRouteTo(to, from, name string) bool {
	for _, g := range idx.grants[to] {
		spec := mapAt(g, "spec")
		fromOK := false
		for _, f := range listOf(spec["from"]) {
			fm := mapOf(f)
			if str(fm, "group") == "gateway.networking.k8s.io" && str(fm, "kind") == "HTTPRoute" && str(fm, "namespace") == from {
				fromOK = true
			}
		}
		if !fromOK {
			continue
		}
		for _, t := range listOf(spec["to"]) {
			tm := mapOf(t)
			if str(tm, "group") == "" && str(tm, "kind") == "Service" && (str(tm, "name") == "" || str(tm, "name") == name) {
				return true
			}
		}
	}
	return false
}
