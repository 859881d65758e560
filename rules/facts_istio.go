package rules

import (
	"encoding/json"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
)

// mTLS modes of a PeerAuthentication.
const (
	mtlsUnset      = "UNSET"
	mtlsStrict     = "STRICT"
	mtlsPermissive = "PERMISSIVE"
	mtlsDisable    = "DISABLE"
)

func paMode(pa Object) string {
	m := str(mapAt(pa, "spec", "mtls"), "mode")
	if m == "" {
		return mtlsUnset
	}
	return m
}

func hasSelector(spec map[string]any, field string) bool {
	sel := mapAt(spec, field)
	return len(mapAt(sel, "matchLabels")) > 0 || len(listAt(sel, "matchExpressions")) > 0 || len(mapAt(sel, "labels")) > 0
}

func objKey(o Object) (string, string) {
	m := mapAt(o, "metadata")
	return str(m, "namespace"), str(m, "name")
}

// oldest returns the policy Istio picks when several apply at one level: the
// oldest by creationTimestamp, then by name. An object without a
// creationTimestamp (a manifest not yet applied) counts as the newest: it will
// be created after every stored object.
func oldest(objs []Object) Object {
	if len(objs) == 0 {
		return nil
	}
	sorted := append([]Object(nil), objs...)
	sort.SliceStable(sorted, func(i, j int) bool {
		ti := str(mapAt(sorted[i], "metadata"), "creationTimestamp")
		tj := str(mapAt(sorted[j], "metadata"), "creationTimestamp")
		if ti != tj {
			return tj == "" || ti != "" && ti < tj
		}
		_, ni := objKey(sorted[i])
		_, nj := objKey(sorted[j])
		return ni < nj
	})
	return sorted[0]
}

// levelPolicy returns the effective selector-less PeerAuthentication of a
// namespace: the object under review replaces its own stored version.
func levelPolicy(ctx Context, namespace string, self Object) Object {
	var cands []Object
	_, selfName := objKey(self)
	for _, pa := range ctx.PeerAuthentications(namespace) {
		if hasSelector(mapAt(pa, "spec"), "selector") {
			continue
		}
		if _, n := objKey(pa); self != nil && n == selfName {
			continue
		}
		cands = append(cands, pa)
	}
	if self != nil && !hasSelector(mapAt(self, "spec"), "selector") {
		cands = append(cands, self)
	}
	return oldest(cands)
}

// resolveMtls follows ComposePeerAuthentication: start PERMISSIVE, then the mesh
// policy, then the namespace policy; UNSET inherits.
func resolveMtls(parent string, p Object) string {
	if p == nil {
		return parent
	}
	if m := paMode(p); m != mtlsUnset {
		return m
	}
	return parent
}

// meshMtls returns the effective mesh-wide mode and whether a mesh-wide policy exists.
func (e *engine) meshMtls(ctx Context, self Object, selfIsMesh bool) (string, bool) {
	var s Object
	if selfIsMesh {
		s = self
	}
	p := levelPolicy(ctx, e.cfg.RootNamespace, s)
	return resolveMtls(mtlsPermissive, p), p != nil
}

func (e *engine) peerAuthenticationFacts(obj Object, ns string) (map[string]any, error) {
	f := paFactsPool.Get().(*PeerAuthenticationFacts)
	defer putPeerAuthenticationFacts(f)
	if err := e.computePeerAuthenticationFacts(f, obj, ns); err != nil {
		return nil, err
	}
	return f.Map(), nil
}

// computePeerAuthenticationFacts fills f (empty, its weakPorts array maybe
// reused from the pool).
func (e *engine) computePeerAuthenticationFacts(f *PeerAuthenticationFacts, obj Object, ns string) error {
	spec := mapAt(obj, "spec")
	if err := checkType(obj, "", "spec", "object"); err != nil {
		return err
	}
	if err := checkType(spec, "spec", "portLevelMtls", "object"); err != nil {
		return err
	}
	selector := hasSelector(spec, "selector")
	scope := "workload"
	switch {
	case ns == e.cfg.RootNamespace && !selector:
		scope = "mesh"
	case ns == e.cfg.RootNamespace:
		scope = "ignored"
	case !selector:
		scope = "namespace"
	}
	mode := paMode(obj)
	meshMode, meshKnown := e.meshMtls(e.ctx, obj, scope == "mesh")
	nsMode := meshMode
	if scope == "namespace" || scope == "workload" {
		var self Object
		if scope == "namespace" {
			self = obj
		}
		nsMode = resolveMtls(meshMode, levelPolicy(e.ctx, ns, self))
	}
	effective := nsMode
	if scope == "workload" {
		effective = resolveMtls(nsMode, obj)
	}
	plm := mapAt(spec, "portLevelMtls")
	keys := make([]string, 0, len(plm))
	for k := range plm {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		pm, ok := plm[k].(map[string]any)
		if !ok {
			return fmt.Errorf("spec.portLevelMtls[%s]: expected object, got %s", k, jsonType(plm[k]))
		}
		m := str(pm, "mode")
		if m == mtlsPermissive || m == mtlsDisable {
			entry := WeakPortFacts{Port: k, Mode: m, Allowed: e.cfg.portsAllowed[k], Text: fmt.Sprintf("port %s is %s", k, m)}
			// A PERMISSIVE exception on the port the API server calls as a webhook is
			// what keeps that webhook working under STRICT; DISABLE is not needed for it.
			if m == mtlsPermissive && scope == "workload" {
				if b, ok := e.webhookPortFor(ns, selectorLabels(spec), k); ok {
					entry.Webhook = b.Webhook + " via Service " + b.Service
				}
			}
			f.WeakPorts = append(f.WeakPorts, entry)
		}
	}
	conflicts := e.peerAuthenticationConflicts(obj, ns, scope)
	f.Scope, f.Mode, f.EffectiveMode, f.NamespaceMode, f.MeshMode, f.MeshPolicy = scope, mode, effective, nsMode, meshMode, meshKnown
	f.Selector = labelsText(selectorLabels(spec))
	f.Conflicts, f.conflictsBoxed = anyStrings(conflicts), conflicts
	return nil
}

// labelsText renders selector labels as "k=v,k2=v2", sorted by key.
func labelsText(labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + labels[k]
	}
	return strings.Join(parts, ",")
}

// inMeshHost reports whether a DestinationRule host names in-mesh services
// (RULES.md 2.2), and whether it is a wildcard covering the whole mesh.
func inMeshHost(host, namespace, clusterDomain string) (inMesh, meshWildcard bool) {
	inMesh, meshWildcard, _ = meshHost(host, namespace, clusterDomain)
	return inMesh, meshWildcard
}

// hostNamespace returns the one namespace an in-mesh DestinationRule host
// names: the DR's own for a short name, <ns> for <svc>.<ns>.svc[.<domain>] and
// for wildcards that cover services of <ns> only (*.<ns>.svc.<domain>,
// *api.<ns>.svc.<domain>); "" for mesh wildcards, wildcards that cover several
// namespaces and other hosts.
func hostNamespace(host, namespace, clusterDomain string) string {
	_, _, ns := meshHost(host, namespace, clusterDomain)
	return ns
}

// meshHost classifies a DestinationRule host: whether it names or covers
// in-mesh services, whether it covers every service of the mesh, and the one
// namespace it names ("" when none or several).
//
// A host starting with "*" is a wildcard, matched as Istio's host.Name.Matches
// does (pkg/config/host/name.go): the rest after the star is a plain string
// suffix, with or without a dot, so "*svc.cluster.local", "*local" and "*" all
// cover every Kubernetes service, whose registry name is
// <svc>.<ns>.svc.<clusterDomain>. A wildcard covers in-mesh services when some
// such name ends with its suffix; the <svc>.<ns>.svc form, which RULES.md also
// counts as in-mesh for plain hosts, makes a wildcard in-mesh but never
// mesh-wide. Every other host is taken as written (short names resolve in the
// DR's namespace).
func meshHost(host, namespace, clusterDomain string) (inMesh, meshWildcard bool, hostNS string) {
	h := strings.ToLower(strings.TrimSpace(host))
	cd := strings.Trim(strings.ToLower(clusterDomain), ".")
	if h == "" {
		return false, false, ""
	}
	if strings.HasPrefix(h, "*") {
		return wildcardMeshHost(h[1:], cd)
	}
	if net.ParseIP(h) != nil {
		return false, false, "" // an address is never resolved as a short name
	}
	if !strings.Contains(h, ".") {
		return true, false, namespace
	}
	for _, tail := range []string{".svc." + cd, ".svc"} {
		if rest, ok := strings.CutSuffix(h, tail); ok {
			// <svc>.<ns> names one namespace; anything else still counts as
			// in-mesh but names none.
			if svc, ns, ok := strings.Cut(rest, "."); ok && svc != "" && ns != "" && !strings.Contains(ns, ".") {
				return true, false, ns
			}
			return true, false, ""
		}
	}
	return false, false, ""
}

// wildcardMeshHost classifies the suffix of a wildcard host (what follows the
// "*") against the in-mesh service names <svc>.<ns>.svc.<cd> and <svc>.<ns>.svc.
func wildcardMeshHost(suffix, cd string) (inMesh, meshWildcard bool, hostNS string) {
	for _, tail := range []string{".svc." + cd, ".svc"} {
		registryForm := tail != ".svc"
		if strings.HasSuffix(tail, suffix) {
			// The suffix lies within the domain tail: every service matches.
			inMesh = true
			if registryForm {
				return true, true, ""
			}
			continue
		}
		rest, ok := strings.CutSuffix(suffix, tail)
		if !ok {
			continue
		}
		// rest must be a suffix of some <svc>.<ns>: at most one dot.
		switch strings.Count(rest, ".") {
		case 0:
			// A namespace-name suffix ("*prod.svc.cluster.local" covers prod,
			// preprod, ...): in-mesh, but no single namespace.
			inMesh = true
		case 1:
			if _, ns, _ := strings.Cut(rest, "."); ns != "" {
				inMesh = true
				if hostNS == "" {
					hostNS = ns
				}
			}
		}
	}
	return inMesh, false, hostNS
}

func (e *engine) destinationRuleFacts(obj Object, ns string) (map[string]any, error) {
	f := drFactsPool.Get().(*DestinationRuleFacts)
	defer putDestinationRuleFacts(f)
	if err := e.computeDestinationRuleFacts(f, obj, ns); err != nil {
		return nil, err
	}
	return f.Map(), nil
}

// computeDestinationRuleFacts fills f (empty, its tls array maybe reused
// from the pool).
func (e *engine) computeDestinationRuleFacts(f *DestinationRuleFacts, obj Object, ns string) error {
	if err := checkType(obj, "", "spec", "object"); err != nil {
		return err
	}
	spec := mapAt(obj, "spec")
	for _, c := range []struct{ k, t string }{{"host", "string"}, {"trafficPolicy", "object"}, {"subsets", "array"}, {"exportTo", "array"}} {
		if err := checkType(spec, "spec", c.k, c.t); err != nil {
			return err
		}
	}
	host := str(spec, "host")
	inMesh, wildcard, hostNS := meshHost(host, ns, e.cfg.ClusterDomain)
	// Istio takes a present workloadSelector, even an empty one, as scoping
	// the DestinationRule to workloads (IST0128, cluster_tls.go).
	workloadSelector := spec["workloadSelector"] != nil
	// A host that is not in-mesh by its spelling is when a ServiceEntry
	// sends it to in-mesh workloads (serviceentry.go); its namespace is then
	// theirs, when they have one.
	inMeshVia := ""
	if !inMesh {
		if aliases := e.serviceEntryAliases(host, ns); len(aliases) > 0 {
			sort.Slice(aliases, func(i, j int) bool { return aliases[i].text < aliases[j].text })
			inMesh, hostNS, inMeshVia = true, aliases[0].namespace, " ("+aliases[0].text+")"
		}
	}
	exportAll := true
	for _, x := range listAt(spec, "exportTo") {
		if x != "*" {
			exportAll = false
		}
	}
	tls := f.TLS
	addPolicy := func(tp map[string]any, where string) error {
		if tp == nil {
			return nil
		}
		if err := checkType(tp, where, "tls", "object"); err != nil {
			return err
		}
		for _, c := range []string{"caCertificates", "credentialName"} {
			if err := checkType(mapAt(tp, "tls"), where+".tls", c, "string"); err != nil {
				return err
			}
		}
		add := func(t map[string]any, at string) {
			if t == nil {
				return
			}
			// A tls block without a mode is DISABLE (the enum's zero value), and
			// Istio then uses it as is instead of auto-mTLS.
			mode, effective, text := str(t, "mode"), str(t, "mode"), ""
			if mode == "" {
				effective, text = "DISABLE", at+" omits mode (DISABLE)"
			} else {
				text = at + " sets mode " + mode
			}
			tls = append(tls, DestinationRuleTLSFacts{
				At: at, Mode: mode, EffectiveMode: effective, Text: text,
				InsecureSkipVerify: boolAt(t, "insecureSkipVerify"),
				NoCA:               tlsNoCAText(t, effective, at, workloadSelector),
			})
		}
		add(mapAt(tp, "tls"), where+".tls")
		if err := checkType(tp, where, "portLevelSettings", "array"); err != nil {
			return err
		}
		for i, pl := range listAt(tp, "portLevelSettings") {
			plm, ok := pl.(map[string]any)
			if !ok {
				return fmt.Errorf("%s.portLevelSettings[%d]: expected object, got %s", where, i, jsonType(pl))
			}
			at := fmt.Sprintf("%s.portLevelSettings[%d].tls", where, i)
			if n, ok := intAt(mapAt(plm, "port"), "number"); ok {
				at = fmt.Sprintf("%s.portLevelSettings[port %d].tls", where, n)
			}
			add(mapAt(plm, "tls"), at)
		}
		return nil
	}
	if err := addPolicy(mapAt(spec, "trafficPolicy"), "spec.trafficPolicy"); err != nil {
		return err
	}
	for i, s := range listAt(spec, "subsets") {
		sm, ok := s.(map[string]any)
		if !ok {
			return fmt.Errorf("spec.subsets[%d]: expected object, got %s", i, jsonType(s))
		}
		where := fmt.Sprintf("spec.subsets[%d].trafficPolicy", i)
		if n := str(sm, "name"); n != "" {
			where = fmt.Sprintf("spec.subsets[%s].trafficPolicy", n)
		}
		if err := addPolicy(mapAt(sm, "trafficPolicy"), where); err != nil {
			return err
		}
	}
	hostMode, outside := e.hostOutsideMesh(host, ns, hostNS)
	if outside != "" {
		inMesh = false
	}
	*f = DestinationRuleFacts{
		Host: host, HostNamespace: hostNS, HostNamespaceMode: hostMode, OutsideMesh: outside, InMesh: inMesh,
		InMeshVia: inMeshVia, MeshWildcard: wildcard, ExportedToAll: exportAll, InRoot: ns == e.cfg.RootNamespace,
		TLS: tls,
	}
	return nil
}

// sourceUnconstrained reports whether an AuthorizationPolicy source admits
// plaintext, unauthenticated requests from anywhere (RULES.md 2.3): every
// positive field it sets matches every caller (ipBlocks or remoteIpBlocks
// whose CIDRs together cover every address of a family, 0.0.0.0/0 or ::/0
// being the literal forms), and negative fields are ignored, since callers without
// the attribute pass them, unless a notIpBlocks or notRemoteIpBlocks list
// excludes every address: then the source matches nothing.
func sourceUnconstrained(src map[string]any) bool {
	for k := range src {
		list := strs(src, k)
		if len(list) == 0 {
			continue
		}
		if k == "notIpBlocks" || k == "notRemoteIpBlocks" {
			if ipCoverage(list).all() {
				return false
			}
			continue
		}
		if strings.HasPrefix(k, "not") {
			continue
		}
		if (k == "ipBlocks" || k == "remoteIpBlocks") && matchesEverything(k, list) {
			continue
		}
		return false
	}
	return true
}

// operationUnconstrained reports whether an operation matches every request:
// each positive list matches everything (methods, paths or hosts "*", paths
// "/*", ports naming every port) and each negative list excludes nothing
// (excludesNothing: notPaths that do not start with "/", notMethods that are
// not tokens, notHosts that cannot be a Host, notPorts ["0"]).
func operationUnconstrained(op map[string]any) bool {
	for k := range op {
		list := strs(op, k)
		if len(list) == 0 {
			continue
		}
		if strings.HasPrefix(k, "not") {
			if !excludesNothing(k, list) {
				return false
			}
			continue
		}
		if !matchesEverything(k, list) {
			return false
		}
	}
	return true
}

// ruleMatchesAny reports whether an AuthorizationPolicy rule matches every
// request. A rule matches when at least one of its sources, at least one of its
// operations and all of its conditions match (authorization_policy.proto), so
// one unconstrained entry in from (or to) is enough.
func ruleMatchesAny(rule map[string]any) bool {
	anyEntry := func(field, inner string, unconstrained func(map[string]any) bool) bool {
		list := listAt(rule, field)
		if len(list) == 0 {
			return true
		}
		for _, x := range list {
			if unconstrained(mapAt(asMap(x), inner)) {
				return true
			}
		}
		return false
	}
	if !anyEntry("from", "source", sourceUnconstrained) || !anyEntry("to", "operation", operationUnconstrained) {
		return false
	}
	for _, w := range listAt(rule, "when") {
		wm := asMap(w)
		if !conditionUnconstrained(str(wm, "key"), strs(wm, "values"), strs(wm, "notValues")) {
			return false
		}
	}
	return true
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

// apScope is the reach of an AuthorizationPolicy: a selector made only of
// labels every injected pod carries (universalSelector) reaches as far as no
// selector.
func apScope(spec map[string]any, ns, root string) string {
	if (hasSelector(spec, "selector") && universalSelector(spec) == "") || len(listAt(spec, "targetRefs")) > 0 || len(mapAt(spec, "targetRef")) > 0 {
		return "workload"
	}
	if ns == root {
		return "mesh"
	}
	return "namespace"
}

func apAction(spec map[string]any) string {
	if a := str(spec, "action"); a != "" {
		return a
	}
	return "ALLOW"
}

// authorizationPolicyFacts returns the facts of an AuthorizationPolicy
// without the managed-policy facts, which depend on the request.
func (e *engine) authorizationPolicyFacts(obj Object, ns string) (map[string]any, error) {
	var f AuthorizationPolicyFacts
	if err := e.computeAuthorizationPolicyFacts(&f, obj, ns); err != nil {
		return nil, err
	}
	return f.Map(), nil
}

// computeAuthorizationPolicyFacts fills f (empty, its list arrays maybe
// reused from the pool) but for its managed-policy facts.
func (e *engine) computeAuthorizationPolicyFacts(f *AuthorizationPolicyFacts, obj Object, ns string) error {
	if err := checkType(obj, "", "spec", "object"); err != nil {
		return err
	}
	spec := mapAt(obj, "spec")
	if err := checkType(spec, "spec", "rules", "array"); err != nil {
		return err
	}
	if err := checkType(spec, "spec", "selector", "object"); err != nil {
		return err
	}
	if err := checkType(mapAt(spec, "selector"), "spec.selector", "matchLabels", "object"); err != nil {
		return err
	}
	ml := mapAt(spec, "selector", "matchLabels")
	for _, k := range sortedKeys(ml) {
		if err := checkType(ml, "spec.selector.matchLabels", k, "string"); err != nil {
			return err
		}
	}
	allowAll, negative, notes, anyPeer, denyPositive := f.MatchAllRules, f.NegativeMatches, f.MatchAllNotes, f.AnyPeerRules, f.DenyPositive
	action := apAction(spec)
	for i, r := range listAt(spec, "rules") {
		rm, ok := r.(map[string]any)
		if !ok && r != nil {
			return fmt.Errorf("spec.rules[%d]: expected object, got %s", i, jsonType(r))
		}
		// The rule's path, formatted once: every check and list below names it.
		at := "spec.rules[" + strconv.Itoa(i) + "]"
		for _, c := range []string{"from", "to", "when"} {
			if err := checkType(rm, at, c, "array"); err != nil {
				return err
			}
		}
		if err := checkAuthorizationRule(rm, at); err != nil {
			return err
		}
		if ruleMatchesAny(rm) {
			allowAll = append(allowAll, at)
			notes = append(notes, allowAllNotes(rm, at)...)
		}
		negative = append(negative, negativeMatches(rm, at)...)
		switch action {
		case "ALLOW":
			if t := ruleAnyPeer(rm, at); t != "" {
				anyPeer = append(anyPeer, t)
			}
		case "DENY":
			denyPositive = append(denyPositive, denyPositiveMatches(rm, at)...)
		}
	}
	scope := apScope(spec, ns, e.cfg.RootNamespace)
	target, why := policyTarget(spec, ns, e.cfg.RootNamespace), universalSelector(spec)
	if why != "" && scope != "workload" {
		target = policyTarget(map[string]any{}, ns, e.cfg.RootNamespace) + " (" + why + ")"
	} else {
		why = ""
	}
	f.DryRun, f.DryRunRaw = apDryRun(obj), str(mapAt(obj, "metadata", "annotations"), annDryRun)
	f.Action, f.Scope, f.ScopeReason, f.Target = action, scope, why, target
	f.MatchAllRules, f.MatchAllNotes, f.NegativeMatches, f.AnyPeerRules, f.DenyPositive = allowAll, notes, negative, anyPeer, denyPositive
	return nil
}

// positiveWildcards match every value of their field, so a positive list made
// of them does not narrow a negative match of the same field.
var positiveWildcards = map[string]bool{"*": true, "/*": true, "0.0.0.0/0": true, "::/0": true}

// negativeMatches lists the not* fields of an AuthorizationPolicy rule that
// are not paired with a narrowing positive list of the same field in the same
// source, operation or condition (RULES.md MESH0022: notPaths next to paths
// only subtracts from the paths), e.g.
// `spec.rules[0].to[0].operation.notPaths ["/admin"] without paths`. A
// positive list that matches everything (matchesEverything) does not narrow,
// and an operation's not* list that excludes nothing (excludesNothing) is not
// a negative match: it changes nothing, and MESH0020 judges the rule.
func negativeMatches(rule map[string]any, at string) []string {
	var out []string
	check := func(m map[string]any, where, condKey string) {
		for _, k := range sortedKeys(m) {
			if !strings.HasPrefix(k, "not") || len(k) < 4 {
				continue
			}
			vals := strs(m, k)
			if len(vals) == 0 || excludesNothing(k, vals) ||
				k == "notValues" && condKey == "destination.port" && excludesNothing("notPorts", vals) {
				continue
			}
			pos := strings.ToLower(k[3:4]) + k[4:]
			narrowing := false
			posVals := strs(m, pos)
			switch {
			case len(posVals) == 0:
			case pos == "values" && conditionValuesMatchEverything(condKey, posVals):
			case matchesEverything(pos, posVals):
			default:
				for _, s := range posVals {
					if !positiveWildcards[s] {
						narrowing = true
					}
				}
			}
			if narrowing {
				continue
			}
			b, _ := json.Marshal(vals)
			out = append(out, fmt.Sprintf("%s.%s %s without %s", where, k, b, pos))
		}
	}
	for j, f := range listAt(rule, "from") {
		check(mapAt(asMap(f), "source"), fmt.Sprintf("%s.from[%d].source", at, j), "")
	}
	for j, t := range listAt(rule, "to") {
		check(mapAt(asMap(t), "operation"), fmt.Sprintf("%s.to[%d].operation", at, j), "")
	}
	for j, w := range listAt(rule, "when") {
		wm := asMap(w)
		if key := str(wm, "key"); key != "" {
			check(wm, fmt.Sprintf("%s.when[%d] (%s)", at, j, key), key)
		} else {
			check(wm, fmt.Sprintf("%s.when[%d]", at, j), "")
		}
	}
	return out
}

// selectorLabels returns a policy's selector labels (nil for none).
func selectorLabels(spec map[string]any) map[string]string {
	return stringMap(mapAt(spec, "selector")["matchLabels"])
}

// covers reports whether a policy with selector labels ap applies to every pod
// a policy with selector labels ra applies to.
func covers(ap, ra map[string]string) bool {
	for k, v := range ap {
		if rv, ok := ra[k]; !ok || rv != v {
			return false
		}
	}
	return true
}

// tokenAttributes are the condition keys that exist only for a request carrying
// a validated JWT.
func tokenAttribute(key string) bool {
	switch key {
	case "request.auth.principal", "request.auth.audiences", "request.auth.presenter":
		return true
	}
	return strings.HasPrefix(key, "request.auth.claims[")
}

// ruleRequiresToken reports whether an ALLOW rule admits only requests with a
// request principal: every source requires one, or a condition on a JWT
// attribute must hold.
func ruleRequiresToken(rule map[string]any) bool {
	from := listAt(rule, "from")
	if len(from) > 0 {
		all := true
		for _, f := range from {
			if len(listAt(mapAt(asMap(f), "source"), "requestPrincipals")) == 0 {
				all = false
			}
		}
		if all {
			return true
		}
	}
	for _, w := range listAt(rule, "when") {
		if tokenAttribute(str(asMap(w), "key")) && len(listAt(asMap(w), "values")) > 0 {
			return true
		}
	}
	return false
}

// denyRejectsTokenless reports whether a DENY policy has a rule sourced from
// notRequestPrincipals: ["*"], which rejects requests without a token.
func denyRejectsTokenless(spec map[string]any) bool {
	for _, r := range listAt(spec, "rules") {
		for _, f := range listAt(asMap(r), "from") {
			for _, p := range listAt(mapAt(asMap(f), "source"), "notRequestPrincipals") {
				if p == "*" {
					return true
				}
			}
		}
	}
	return false
}

// overlaps reports whether two selectors may select a common pod: no label is
// required with two different values.
func overlaps(a, b map[string]string) bool {
	for k, v := range a {
		if bv, ok := b[k]; ok && bv != v {
			return false
		}
	}
	return true
}

// targetRefKeys returns a policy's targetRefs (and deprecated targetRef) as
// "group/Kind/name" keys.
func targetRefKeys(spec map[string]any) map[string]bool {
	refs := listAt(spec, "targetRefs")
	if r := mapAt(spec, "targetRef"); len(r) > 0 {
		refs = append(append([]any(nil), refs...), r)
	}
	if len(refs) == 0 {
		return nil
	}
	out := map[string]bool{}
	for _, r := range refs {
		m := asMap(r)
		out[str(m, "group")+"/"+str(m, "kind")+"/"+str(m, "name")] = true
	}
	return out
}

// policyTarget describes what a security policy (selector or targetRefs)
// applies to, for messages: a root-namespace selector matches in every namespace.
func policyTarget(spec map[string]any, ns, root string) string {
	labels, targets := selectorLabels(spec), targetRefKeys(spec)
	switch {
	case targets != nil:
		var names []string
		for _, k := range sortedSet(targets) {
			parts := strings.SplitN(k, "/", 3)
			names = append(names, parts[1]+"/"+parts[2])
		}
		return "targetRefs " + strings.Join(names, ", ")
	case len(labels) > 0 && ns == root:
		return "workloads " + labelsText(labels) + " in every namespace"
	case len(labels) > 0:
		return "workloads " + labelsText(labels)
	case ns == root:
		return "every workload in the mesh"
	}
	return fmt.Sprintf("every workload in namespace %q", ns)
}

func sortedSet(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// requestAuthenticationFacts decides whether some authorization policy makes the
// token mandatory for the workloads a RequestAuthentication selects (MESH0030).
// Policies in dry-run are not enforced and do not count. A root-namespace
// policy with a selector applies to matching workloads in every namespace.
func (e *engine) requestAuthenticationFacts(obj Object, ns string) (map[string]any, error) {
	f := raFactsPool.Get().(*RequestAuthenticationFacts)
	defer putRequestAuthenticationFacts(f)
	if err := e.computeRequestAuthenticationFacts(f, obj, ns); err != nil {
		return nil, err
	}
	return f.Map(), nil
}

// computeRequestAuthenticationFacts fills f (empty, its list arrays maybe
// reused from the pool).
func (e *engine) computeRequestAuthenticationFacts(f *RequestAuthenticationFacts, obj Object, ns string) error {
	if err := checkType(obj, "", "spec", "object"); err != nil {
		return err
	}
	spec := mapAt(obj, "spec")
	plaintext, leaks, err := jwtRuleFacts(spec, f.JwksPlaintext, f.TokenLeaks)
	if err != nil {
		return err
	}
	root := e.cfg.RootNamespace
	raLabels := selectorLabels(spec)
	raTargets := targetRefKeys(spec)
	var policies []Object
	policies = append(policies, e.ctx.AuthorizationPolicies(ns)...)
	if ns != root {
		policies = append(policies, e.ctx.AuthorizationPolicies(root)...)
	}
	allowCovering, denyRequires := 0, false
	tokenless := f.TokenlessAllowRules
	for _, ap := range policies {
		if apDryRun(ap) {
			continue
		}
		aspec := mapAt(ap, "spec")
		apNS, apName := objKey(ap)
		if apNS == "" {
			apNS = ns
		}
		apLabels, apTargets := selectorLabels(aspec), targetRefKeys(aspec)
		var coversAll, mayApply bool
		switch {
		case apTargets != nil:
			// Attached to named resources of its own namespace only.
			coversAll, mayApply = apNS == ns && raTargets != nil, apNS == ns && raTargets != nil
			for k := range raTargets {
				if !apTargets[k] {
					coversAll = false
				}
			}
		case raTargets != nil:
			coversAll = len(apLabels) == 0
			mayApply = coversAll
		default:
			coversAll, mayApply = covers(apLabels, raLabels), overlaps(apLabels, raLabels)
		}
		if !mayApply {
			continue
		}
		switch apAction(aspec) {
		case "ALLOW":
			if coversAll {
				allowCovering++
			}
			for i, r := range listAt(aspec, "rules") {
				if !ruleRequiresToken(asMap(r)) {
					tokenless = append(tokenless, fmt.Sprintf("ALLOW policy %q spec.rules[%d]", apNS+"/"+apName, i))
				}
			}
		case "DENY":
			if coversAll && denyRejectsTokenless(aspec) {
				denyRequires = true
			}
		}
	}
	f.TokenRequired = denyRequires || allowCovering > 0 && len(tokenless) == 0
	f.AllowPoliciesCovering, f.TokenlessAllowRules, f.Target = float64(allowCovering), tokenless, policyTarget(spec, ns, root)
	f.JwksPlaintext, f.TokenLeaks = plaintext, leaks
	return nil
}

// annDryRun is istio.io/dry-run on authorization policies.
const annDryRun = "istio.io/dry-run"

// apDryRun reports whether Istio treats an AuthorizationPolicy as dry-run
// (not enforced): pilot parses istio.io/dry-run with strconv.ParseBool, so
// "True", "1" and "t" count, and an unparsable value means enforced.
func apDryRun(ap Object) bool {
	v, _, ok := parseBoolAnnotation(stringMap(mapAt(ap, "metadata")["annotations"]), annDryRun)
	return ok && v
}
