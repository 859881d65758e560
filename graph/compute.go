package graph

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/meshguard/meshguard/rules"
)

const (
	labelUseWaypoint = "istio.io/use-waypoint"
	annReason        = -1
)

// policySet is what enforces AuthorizationPolicies on a destination.
type policySet struct {
	id int32
	// mode: "sidecar" (the sidecar enforces selector policies), "ztunnel"
	// (ambient without waypoint: selector policies at L4 only), "waypoint"
	// (ambient with a waypoint: targetRefs policies in full, selector
	// policies at L4 by ztunnel).
	mode      string
	selectors []*rules.AuthzPolicy
	targeted  []*rules.AuthzPolicy
	classes   *rules.AuthzCallerClassifier
}

type memoKey struct{ set, port int32 }

type classKey struct {
	set, port int32
	class     uint64
}

type explKey struct {
	tr, authz, npIn, npEg int32
	inDenied, egDenied    bool
	verdict               Verdict
	tp                    Transport
}

// srcPort keys the egress denial reason of a source on a port (the
// source's egress policies are fixed, so the text is too).
type srcPort struct{ src, port int32 }

type transportResult struct {
	tp     Transport
	reason int32
}

// computation is the state of one Compute call.
type computation struct {
	in      *inputs
	eng     *rules.Engine
	eps     []*endpoint
	np      netpols
	callers []rules.AuthzCaller
	// decisions are the distinct authorization decisions; decisionReasons
	// their reason IDs and decisionConds their conditions.
	decisions       []rules.AuthzDecision
	decisionReasons [][]int32
	memo            map[memoKey][]int32
	byClass         map[classKey]int32
	sets            map[string]*policySet
	setList         []*policySet
	strs            []string
	strIDs          map[string]int32
	expl            map[explKey]*Explanation
	nsMTLS          map[string]rules.MTLSResolution
	namespaces      int
	denyReason      map[srcPort]int32
	allowing        map[int32]*Explanation
}

func (g *computation) intern(s string) int32 {
	if id, ok := g.strIDs[s]; ok {
		return id
	}
	id := int32(len(g.strs))
	g.strs = append(g.strs, s)
	g.strIDs[s] = id
	return id
}

// Compute builds the allowed-traffic graph of a set of objects: the
// manifests `meshguard audit` reads, or a live cluster's objects (Options.Live).
// An object that cannot be read (an AuthorizationPolicy or NetworkPolicy of
// the wrong shape) is an error naming it and the field: a graph that left it
// out would show traffic as allowed that it denies, or the reverse.
func Compute(objs []rules.Object, opts Options) (*Graph, error) {
	if opts.Engine == nil {
		return nil, fmt.Errorf("graph: Options.Engine is required")
	}
	if opts.TrustDomain == "" {
		opts.TrustDomain = DefaultTrustDomain
	}
	if opts.DefaultNamespace == "" {
		opts.DefaultNamespace = "default"
	}
	if opts.AssumedGateways == nil {
		opts.AssumedGateways = DefaultAssumedGateways()
	}
	in, err := read(objs, opts)
	if err != nil {
		return nil, err
	}
	g := &computation{
		in: in, eng: opts.Engine, callers: []rules.AuthzCaller{{}},
		memo: map[memoKey][]int32{}, byClass: map[classKey]int32{}, sets: map[string]*policySet{}, strIDs: map[string]int32{},
		expl: map[explKey]*Explanation{}, nsMTLS: map[string]rules.MTLSResolution{},
		denyReason: map[srcPort]int32{},
	}
	notes, err := g.endpoints()
	if err != nil {
		return nil, err
	}
	if err := g.prepareNetpols(); err != nil {
		return nil, err
	}
	out := &Graph{TrustDomain: opts.TrustDomain, Notes: notes}
	out.Nodes = make([]Node, len(g.eps))
	for i, ep := range g.eps {
		out.Nodes[i] = ep.node
	}
	g.countFindings(out)
	out.Edges = g.edges()
	return out, nil
}

// endpoints turns the workload groups into endpoints: workloads sorted by
// ID, then gateways, then the outside node.
func (g *computation) endpoints() ([]string, error) {
	in, opts := g.in, g.in.opts
	keys := make([]string, 0, len(in.groups))
	for k := range in.groups {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var workloads, gateways []*endpoint
	for _, k := range keys {
		grp := in.groups[k]
		meta, spec, live := in.template(grp)
		nsObj, known := in.namespaces[grp.ns]
		if !known {
			nsObj = rules.Namespace{Name: grp.ns}
		}
		labels := stringMap(meta["labels"])
		ep := &endpoint{labels: labels, nsLabels: in.nsLabels(grp.ns), refs: grp.refs}
		ep.mesh = g.eng.PodMesh(nsObj, known, meta, spec, live)
		ep.named, _ = namedPorts(spec)
		_, cports := namedPorts(spec)
		sa := str(spec, "serviceAccountName")
		if sa == "" {
			sa = str(spec, "serviceAccount")
		}
		if sa == "" {
			sa = "default"
		}
		ep.node = Node{ID: k, Kind: NodeWorkload, Name: grp.name, Namespace: grp.ns, Workload: grp.kind, ServiceAccount: sa, MeshMode: ep.mesh.Mode, PodLabels: stableLabels(labels)}
		if opts.Live {
			ep.node.Pods = len(grp.pods)
		}
		if q, ok := labels[LabelQuarantined]; ok {
			ep.node.Quarantined = q
			ep.node.Notes = append(ep.node.Notes, "quarantined ("+LabelQuarantined+"="+q+"): cut off by an Istio DENY-all AuthorizationPolicy and an isolating NetworkPolicy")
		}
		for _, p := range grp.pods {
			for _, ipv := range listOf(mapAt(p, "status")["podIPs"]) {
				if a, err := netip.ParseAddr(str(mapOf(ipv), "ip")); err == nil {
					ep.ips = append(ep.ips, a)
				}
			}
			if a, err := netip.ParseAddr(str(mapAt(p, "status"), "podIP")); err == nil && len(listOf(mapAt(p, "status")["podIPs"])) == 0 {
				ep.ips = append(ep.ips, a)
			}
		}
		gateway := isGateway(labels)
		switch {
		case gateway:
			ep.node.Kind = NodeGateway
			ep.proxy = true
		case ep.mesh.Mode == rules.ModeSidecar && ep.mesh.OutboundBypass == "":
			ep.proxy = true
		case ep.mesh.Mode == rules.ModeAmbient:
			ep.proxy, ep.ambient = true, true
		}
		if ep.mesh.OutboundBypass != "" && !gateway {
			ep.node.Notes = append(ep.node.Notes, "outbound traffic leaves without the mesh identity: "+ep.mesh.OutboundBypass)
		}
		if ep.mesh.Mode == rules.ModeUnknown {
			ep.node.Notes = append(ep.node.Notes, fmt.Sprintf("namespace %q is not in the input: mesh mode unknown, judged as outside the mesh (set --default-namespace-mode)", grp.ns))
		}
		if ep.proxy {
			ep.node.Identity = spiffe(opts.TrustDomain, grp.ns, sa)
			ep.caller = g.caller(opts.TrustDomain, grp.ns, sa)
		}
		if gateway {
			gateways = append(gateways, ep)
			continue
		}
		ep.dest = true
		ep.services = map[int][]ServicePort{}
		ports := map[int]bool{}
		for _, sp := range in.servicePorts(grp.ns, labels, ep.named) {
			ep.node.Services = append(ep.node.Services, sp)
			ep.services[sp.TargetPort] = append(ep.services[sp.TargetPort], sp)
			ports[sp.TargetPort] = true
		}
		for _, p := range cports {
			ports[p] = true
		}
		for p := range ports {
			ep.node.Ports = append(ep.node.Ports, p)
		}
		sort.Ints(ep.node.Ports)
		if ep.ambient {
			ep.waypoint = g.waypointOf(grp.ns, labels)
		}
		if len(ep.node.Ports) == 0 {
			ep.node.Notes = append(ep.node.Notes, "no Service or container port names a TCP port: no edge leads to it")
		}
		workloads = append(workloads, ep)
	}
	var notes []string
	if len(gateways) == 0 {
		for _, a := range opts.AssumedGateways {
			ns, sa, ok := strings.Cut(a, "/")
			if !ok || ns == "" || sa == "" {
				return nil, fmt.Errorf("assumed gateway %q: want namespace/serviceaccount", a)
			}
			ep := &endpoint{
				labels:   map[string]string{"istio": "ingressgateway", "app": sa},
				nsLabels: in.nsLabels(ns), proxy: true,
				node: Node{
					ID: "gateway:" + ns + "/" + sa, Kind: NodeGateway, Name: sa, Namespace: ns, ServiceAccount: sa,
					Identity: spiffe(opts.TrustDomain, ns, sa), MeshMode: rules.ModeSidecar, Assumed: true,
				},
			}
			ep.caller = g.caller(opts.TrustDomain, ns, sa)
			gateways = append(gateways, ep)
			notes = append(notes, fmt.Sprintf("the input holds no ingress gateway pods: assumed gateway %s (identity %s)", a, ep.node.Identity))
		}
	}
	outside := &endpoint{node: Node{ID: OutsideID, Kind: NodeOutside, Name: "outside the mesh",
		Notes: []string{"every client without a mesh identity that the input does not describe: other namespaces' pods, nodes and host traffic, addresses outside the cluster"}}}
	g.eps = append(append(workloads, gateways...), outside)
	nsIdx := map[string]int32{}
	for _, ep := range g.eps {
		i, ok := nsIdx[ep.node.Namespace]
		if !ok {
			i = int32(len(nsIdx))
			nsIdx[ep.node.Namespace] = i
		}
		ep.nsIdx = i
	}
	g.namespaces = len(nsIdx)
	return notes, nil
}

func spiffe(td, ns, sa string) string { return "spiffe://" + td + "/ns/" + ns + "/sa/" + sa }

// caller interns an identity as an AuthorizationPolicy sees it.
func (g *computation) caller(td, ns, sa string) int32 {
	g.callers = append(g.callers, rules.AuthzCaller{Principal: td + "/ns/" + ns + "/sa/" + sa, Namespace: ns})
	return int32(len(g.callers) - 1)
}

// waypointOf returns the waypoint an ambient workload uses: the
// istio.io/use-waypoint label of its pods, of a Service selecting them, or of
// its namespace ("" for none, or "none").
func (g *computation) waypointOf(ns string, labels map[string]string) string {
	wp := labels[labelUseWaypoint]
	if wp == "" {
		for _, s := range g.in.services[ns] {
			if selects(stringMap(mapAt(s, "spec")["selector"]), labels) {
				if v := stringMap(mapAt(s, "metadata")["labels"])[labelUseWaypoint]; v != "" {
					wp = v
					break
				}
			}
		}
	}
	if wp == "" {
		wp = g.in.namespaces[ns].Labels[labelUseWaypoint]
	}
	if wp == "none" {
		return ""
	}
	return wp
}

// countFindings counts findings on the nodes of the objects they are about.
func (g *computation) countFindings(out *Graph) {
	if len(g.in.opts.Findings) == 0 {
		return
	}
	byRef := map[string]int{}
	for i, ep := range g.eps {
		for _, r := range ep.refs {
			byRef[r] = i
		}
	}
	for _, f := range g.in.opts.Findings {
		i, ok := byRef[f.Object.Kind+"/"+f.Object.Namespace+"/"+f.Object.Name]
		if !ok {
			continue
		}
		if out.Nodes[i].Findings == nil {
			out.Nodes[i].Findings = map[string]int{}
		}
		out.Nodes[i].Findings[f.Severity.String()]++
	}
}

// policySetOf returns what enforces AuthorizationPolicies on a destination.
func (g *computation) policySetOf(ep *endpoint) *policySet {
	root := g.in.cfg.RootNamespace
	ns := ep.node.Namespace
	mode := "sidecar"
	if ep.ambient {
		mode = "ztunnel"
		if ep.waypoint != "" {
			mode = "waypoint"
		}
	}
	var key strings.Builder
	key.WriteString(mode)
	set := &policySet{mode: mode}
	scan := func(list []*rules.AuthzPolicy) {
		for _, p := range list {
			if p.SelectsWorkload(ns, ep.labels, root) {
				set.selectors = append(set.selectors, p)
				key.WriteString("|s:" + p.Ref())
			}
		}
	}
	scan(g.in.aps[ns])
	if ns != root {
		scan(g.in.aps[root])
	}
	if mode == "waypoint" {
		svcs := map[string]bool{}
		for _, sps := range ep.services {
			for _, sp := range sps {
				svcs[sp.Service] = true
			}
		}
		for _, p := range g.in.aps[ns] {
			for _, t := range p.TargetRefs {
				if t.Kind == "Service" && svcs[t.Name] || t.Kind == "Gateway" && t.Name == ep.waypoint {
					set.targeted = append(set.targeted, p)
					key.WriteString("|t:" + p.Ref())
					break
				}
			}
		}
	}
	k := key.String()
	if s, ok := g.sets[k]; ok {
		return s
	}
	set.id = int32(len(g.setList))
	set.classes = rules.NewAuthzCallerClassifier(set.selectors, set.targeted)
	g.sets[k] = set
	g.setList = append(g.setList, set)
	return set
}

// decision returns the index of the authorization decision for a caller.
func (g *computation) decision(set *policySet, port int, caller int32) int32 {
	mk := memoKey{set.id, int32(port)}
	row := g.memo[mk]
	if row == nil {
		row = make([]int32, len(g.callers))
		for i := range row {
			row[i] = -1
		}
		g.memo[mk] = row
	}
	if row[caller] >= 0 {
		return row[caller]
	}
	c := g.callers[caller]
	class, classified := set.classes.Class(c)
	ck := classKey{set.id, int32(port), class}
	if classified {
		if idx, ok := g.byClass[ck]; ok {
			row[caller] = idx
			return idx
		}
	}
	var d rules.AuthzDecision
	switch set.mode {
	case "sidecar":
		d = rules.EvaluateAuthz(set.selectors, c, port, false)
	case "ztunnel":
		d = rules.EvaluateAuthz(set.selectors, c, port, true)
	default:
		d = combine(rules.EvaluateAuthz(set.selectors, c, port, true), rules.EvaluateAuthz(set.targeted, c, port, false))
	}
	idx := g.internDecision(d, set.mode)
	row[caller] = idx
	if classified {
		g.byClass[ck] = idx
	}
	return idx
}

// combine joins what ztunnel and a waypoint decide: both must allow.
func combine(a, b rules.AuthzDecision) rules.AuthzDecision {
	switch {
	case a.Verdict == rules.AuthzDenied:
		return a
	case b.Verdict == rules.AuthzDenied:
		return b
	case a.Verdict == rules.AuthzConditional || b.Verdict == rules.AuthzConditional:
		return rules.AuthzDecision{Verdict: rules.AuthzConditional, Policies: append(append([]string{}, a.Policies...), b.Policies...), Conditions: append(append([]string{}, a.Conditions...), b.Conditions...)}
	case a.Verdict == rules.AuthzAllowedByDefault && b.Verdict == rules.AuthzAllowedByDefault:
		return a
	}
	return rules.AuthzDecision{Verdict: rules.AuthzAllowed, Policies: append(append([]string{}, a.Policies...), b.Policies...)}
}

func (g *computation) internDecision(d rules.AuthzDecision, mode string) int32 {
	var reasons []int32
	where := ""
	switch mode {
	case "ztunnel":
		where = " (enforced by ztunnel at L4)"
	case "waypoint":
		where = " (ztunnel and the waypoint)"
	}
	switch d.Verdict {
	case rules.AuthzAllowed:
		reasons = append(reasons, g.intern("AuthorizationPolicy "+strings.Join(d.Policies, ", ")+" allows"+where))
	case rules.AuthzAllowedByDefault:
		reasons = append(reasons, g.intern("no ALLOW AuthorizationPolicy applies to the destination: allowed by default"+where))
	case rules.AuthzDenied:
		if d.ByDeny {
			reasons = append(reasons, g.intern("DENY AuthorizationPolicy "+d.Policies[0]+" denies"+where))
		} else {
			reasons = append(reasons, g.intern("no rule of ALLOW AuthorizationPolicy "+strings.Join(d.Policies, ", ")+" matches"+where))
		}
	case rules.AuthzConditional:
		if len(d.Policies) > 0 {
			reasons = append(reasons, g.intern("AuthorizationPolicy "+strings.Join(d.Policies, ", ")+" allows some requests"+where))
		} else {
			reasons = append(reasons, g.intern("some requests are refused by condition"+where))
		}
	}
	g.decisions = append(g.decisions, d)
	g.decisionReasons = append(g.decisionReasons, reasons)
	return int32(len(g.decisions) - 1)
}

func mtlsText(r rules.MTLSResolution) string {
	if r.Source == "" {
		return r.Mode + " (Istio's default: no PeerAuthentication applies)"
	}
	return fmt.Sprintf("%s (PeerAuthentication %s, %s level)", r.Mode, r.Source, r.Level)
}

// destPort is one port of a destination, prepared for every source.
type destPort struct {
	d        int
	port     int
	enforced bool // a proxy receives the port: PeerAuthentication and AuthorizationPolicies apply
	mtls     rules.MTLSResolution
	set      *policySet
	anon     transportResult
	ambient  transportResult
	bySrcNS  []transportResult // by the source's namespace index; tp 0 when not yet decided
	notProxy int32             // the reason when no proxy receives the port
}

// transport decides how a source's connection to a destination port is
// protected (see Verdict): auto mTLS, a DestinationRule's tls mode, the
// destination's PeerAuthentication mode.
func (g *computation) transport(dp *destPort, src *endpoint) transportResult {
	if !dp.enforced {
		return transportResult{TransportPlaintext, dp.notProxy}
	}
	if !src.proxy {
		return dp.anon
	}
	d := g.eps[dp.d]
	if src.ambient || d.ambient {
		return dp.ambient
	}
	ns := src.node.Namespace
	if r := dp.bySrcNS[src.nsIdx]; r.tp != 0 {
		return r
	}
	var r transportResult
	tls := g.destinationTLS(ns, d, dp.port)
	strict := dp.mtls.Mode == "STRICT"
	switch tls.Mode {
	case "DISABLE", "SIMPLE", "MUTUAL":
		scope := ""
		if tls.Subset != "" {
			scope = " for traffic routed to subset " + tls.Subset
		}
		if strict {
			r = transportResult{TransportRejected, g.intern(fmt.Sprintf("DestinationRule %s sets tls.mode %s%s, but the destination's mode on port %d is %s: rejected", tls.At, tls.Mode, scope, dp.port, mtlsText(dp.mtls)))}
		} else {
			r = transportResult{TransportPlaintext, g.intern(fmt.Sprintf("DestinationRule %s sets tls.mode %s%s: no Istio mTLS; the destination's mode on port %d is %s", tls.At, tls.Mode, scope, dp.port, mtlsText(dp.mtls)))}
		}
	case "ISTIO_MUTUAL":
		if dp.mtls.Mode == "DISABLE" {
			r = transportResult{TransportRejected, g.intern(fmt.Sprintf("DestinationRule %s requires Istio mTLS, but the destination's mode on port %d is %s", tls.At, dp.port, mtlsText(dp.mtls)))}
		} else {
			r = transportResult{TransportMTLS, g.intern(fmt.Sprintf("mTLS (DestinationRule %s; mode on port %d %s)", tls.At, dp.port, mtlsText(dp.mtls)))}
		}
	default:
		if dp.mtls.Mode == "DISABLE" {
			r = transportResult{TransportPlaintext, g.intern(fmt.Sprintf("auto mTLS sends plaintext: the destination's mode on port %d is %s", dp.port, mtlsText(dp.mtls)))}
		} else {
			r = transportResult{TransportMTLS, g.intern(fmt.Sprintf("auto mTLS (mode on port %d: %s)", dp.port, mtlsText(dp.mtls)))}
		}
	}
	dp.bySrcNS[src.nsIdx] = r
	return r
}

// destinationTLS finds the DestinationRule a source in namespace srcNS
// applies to traffic for a destination port: for the first Service that
// leads to the port, the rules of the source's namespace, then of the
// Service's, then of the root namespace; an exact host before a wildcard.
func (g *computation) destinationTLS(srcNS string, d *endpoint, port int) rules.DestinationTLS {
	sps := d.services[port]
	if len(sps) == 0 {
		return rules.DestinationTLS{}
	}
	sp := sps[0]
	fqdn := sp.Service + "." + d.node.Namespace + ".svc." + strings.Trim(g.in.cfg.ClusterDomain, ".")
	for _, ns := range []string{srcNS, d.node.Namespace, g.in.cfg.RootNamespace} {
		var wildcard rules.Object
		for _, dr := range g.in.drs[ns] {
			if !exported(dr, ns, srcNS) {
				continue
			}
			host := str(mapAt(dr, "spec"), "host")
			if !rules.DestinationRuleHostMatches(host, ns, g.in.cfg.ClusterDomain, fqdn) {
				continue
			}
			if strings.HasPrefix(host, "*") {
				if wildcard == nil {
					wildcard = dr
				}
				continue
			}
			return rules.DestinationRuleTLS(dr, sp.Port, d.labels)
		}
		if wildcard != nil {
			return rules.DestinationRuleTLS(wildcard, sp.Port, d.labels)
		}
	}
	return rules.DestinationTLS{}
}

// exported reports whether a DestinationRule of namespace ns is visible to
// clients of srcNS (spec.exportTo; default every namespace).
func exported(dr rules.Object, ns, srcNS string) bool {
	list := listOf(mapAt(dr, "spec")["exportTo"])
	if len(list) == 0 {
		return true
	}
	for _, x := range list {
		s, _ := x.(string)
		if s == "*" || s == srcNS || s == "." && ns == srcNS {
			return true
		}
	}
	return false
}

// edges computes every edge: for each destination port, every source.
func (g *computation) edges() []Edge {
	total := 0
	for _, dst := range g.eps {
		if dst.dest {
			total += len(dst.node.Ports) * (len(g.eps) - 1)
		}
	}
	out := make([]Edge, 0, total)
	for d, dst := range g.eps {
		if !dst.dest || len(dst.node.Ports) == 0 {
			continue
		}
		set := g.policySetOf(dst)
		ns := dst.node.Namespace
		nsRes, ok := g.nsMTLS[ns]
		if !ok {
			nsRes = g.eng.NamespaceMTLS(g.in.snap, ns)
			g.nsMTLS[ns] = nsRes
		}
		wm := g.eng.WorkloadMTLS(g.in.snap, nsRes, ns, dst.labels)
		for _, port := range dst.node.Ports {
			dp := &destPort{d: d, port: port, set: set, mtls: wm.Port(port), bySrcNS: make([]transportResult, g.namespaces)}
			captured, why := dst.mesh.InboundCaptured(port)
			switch {
			case dst.mesh.Mode == rules.ModeNone || dst.mesh.Mode == rules.ModeUnknown:
				dp.notProxy = g.intern("the destination has no sidecar and no ztunnel: plaintext, and no PeerAuthentication or AuthorizationPolicy is enforced")
			case !captured:
				dp.notProxy = g.intern(fmt.Sprintf("port %d bypasses the destination's sidecar (%s): plaintext, and no PeerAuthentication or AuthorizationPolicy is enforced", port, why))
			default:
				dp.enforced = true
			}
			if dp.enforced {
				if dp.mtls.Mode == "STRICT" {
					dp.anon = transportResult{TransportRejected, g.intern(fmt.Sprintf("the source sends plaintext (no mesh identity) and the destination's mode on port %d is %s: rejected", port, mtlsText(dp.mtls)))}
				} else {
					dp.anon = transportResult{TransportPlaintext, g.intern(fmt.Sprintf("the source sends plaintext (no mesh identity), which mode %s accepts on port %d", mtlsText(dp.mtls), port))}
				}
				dp.ambient = transportResult{TransportMTLS, g.intern(fmt.Sprintf("HBONE mTLS through ztunnel (mode on port %d: %s)", port, mtlsText(dp.mtls)))}
			}
			inDeny := int32(annReason)
			for s, src := range g.eps {
				if s == d {
					continue
				}
				out = append(out, g.edge(dp, s, src, &inDeny))
			}
		}
	}
	return out
}

// edge decides one source's connections to a destination port.
func (g *computation) edge(dp *destPort, s int, src *endpoint, inDeny *int32) Edge {
	dst := g.eps[dp.d]
	e := Edge{From: int32(s), To: int32(dp.d), Port: int32(dp.port)}
	k := explKey{tr: annReason, authz: annReason, npIn: annReason, npEg: annReason}

	// L3/4: ingress on the destination, egress on the source.
	npDenied := false
	quiet := g.in.opts.VerdictsOnly
	if by, ok, restricted := admits(g.np.ingress[dp.d], s, dp.port, dst.named); restricted {
		switch {
		case quiet:
			npDenied = npDenied || !ok
		case ok:
			k.npIn = g.npReasonOf(by, 0)
		default:
			npDenied, k.inDenied = true, true
			if *inDeny < 0 {
				*inDeny = g.intern(fmt.Sprintf("ingress to the destination is restricted by NetworkPolicy %s: none admits this source on port %d", strings.Join(refsOf(g.np.ingress[dp.d]), ", "), dp.port))
			}
			k.npIn = *inDeny
		}
	}
	if by, ok, restricted := admits(g.np.egress[s], dp.d, dp.port, dst.named); restricted {
		switch {
		case quiet:
			npDenied = npDenied || !ok
		case ok:
			k.npEg = g.npReasonOf(by, 1)
		default:
			npDenied, k.egDenied = true, true
			key := srcPort{int32(s), int32(dp.port)}
			id, seen := g.denyReason[key]
			if !seen {
				id = g.intern(fmt.Sprintf("egress of the source is restricted by NetworkPolicy %s: none admits this destination on port %d", strings.Join(refsOf(g.np.egress[s]), ", "), dp.port))
				g.denyReason[key] = id
			}
			k.npEg = id
		}
	}

	tr := g.transport(dp, src)
	k.tr = tr.reason
	e.Transport = tr.tp
	var authz *rules.AuthzDecision
	if dp.enforced && tr.tp != TransportRejected {
		caller := int32(0)
		if tr.tp == TransportMTLS {
			caller = src.caller
		}
		k.authz = g.decision(dp.set, dp.port, caller)
		authz = &g.decisions[k.authz]
	}
	switch {
	case npDenied:
		e.Verdict = DeniedNetpol
	case tr.tp == TransportRejected:
		e.Verdict = RejectedMTLS
	case authz != nil && authz.Verdict == rules.AuthzDenied:
		e.Verdict = DeniedAuthz
	case authz != nil && authz.Verdict == rules.AuthzConditional:
		e.Verdict = Conditional
	case tr.tp == TransportPlaintext:
		e.Verdict = AllowedPlaintext
	case authz == nil || authz.Verdict == rules.AuthzAllowedByDefault:
		e.Verdict = AllowedByDefault
	default:
		e.Verdict = AllowedMTLS
	}
	k.verdict, k.tp = e.Verdict, e.Transport
	if quiet {
		e.Why = g.allowingOnly(k.authz, e.Verdict.Allowed())
	} else {
		e.Why = g.explanation(k)
	}
	return e
}

func (g *computation) npReasonOf(p *npPolicy, dir int) int32 {
	if p.reason == 0 {
		if dir == 0 {
			p.reason = g.intern("ingress admitted by NetworkPolicy "+p.ref) + 1
		} else {
			p.reason = g.intern("egress admitted by NetworkPolicy "+p.ref) + 1
		}
	}
	return p.reason - 1
}

// allowingOnly is the explanation of Options.VerdictsOnly: no reasons, only
// the ALLOW policies an allowed edge rests on (shared per decision).
func (g *computation) allowingOnly(authz int32, allowed bool) *Explanation {
	if authz < 0 || !allowed {
		return noExplanation
	}
	d := &g.decisions[authz]
	if d.Verdict != rules.AuthzAllowed && d.Verdict != rules.AuthzConditional || len(d.Policies) == 0 {
		return noExplanation
	}
	if g.allowing == nil {
		g.allowing = map[int32]*Explanation{}
	}
	x, ok := g.allowing[authz]
	if !ok {
		x = &Explanation{Allowing: d.Policies, Conditions: d.Conditions}
		g.allowing[authz] = x
	}
	return x
}

// noExplanation is the shared empty explanation of Options.VerdictsOnly.
var noExplanation = &Explanation{}

// explanation returns the shared explanation of a combination of reasons.
func (g *computation) explanation(k explKey) *Explanation {
	if x, ok := g.expl[k]; ok {
		return x
	}
	x := &Explanation{}
	add := func(id int32) {
		if id >= 0 {
			x.Reasons = append(x.Reasons, g.strs[id])
		}
	}
	// The deciding layer first.
	if k.inDenied {
		add(k.npIn)
	}
	if k.egDenied {
		add(k.npEg)
	}
	if k.verdict == DeniedNetpol {
		g.expl[k] = x
		return x
	}
	add(k.tr)
	if k.authz >= 0 {
		for _, id := range g.decisionReasons[k.authz] {
			add(id)
		}
		d := g.decisions[k.authz]
		x.Conditions = d.Conditions
		if (d.Verdict == rules.AuthzAllowed || d.Verdict == rules.AuthzConditional) && k.verdict.Allowed() {
			x.Allowing = d.Policies
		}
	}
	add(k.npIn)
	add(k.npEg)
	g.expl[k] = x
	return x
}
