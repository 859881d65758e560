package rules

import (
	"fmt"
	"sort"
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
// oldest by creationTimestamp, then by name.
func oldest(objs []Object) Object {
	if len(objs) == 0 {
		return nil
	}
	sorted := append([]Object(nil), objs...)
	sort.SliceStable(sorted, func(i, j int) bool {
		ti := str(mapAt(sorted[i], "metadata"), "creationTimestamp")
		tj := str(mapAt(sorted[j], "metadata"), "creationTimestamp")
		if ti != tj {
			return ti < tj
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
	spec := mapAt(obj, "spec")
	if err := checkType(obj, "", "spec", "object"); err != nil {
		return nil, err
	}
	if err := checkType(spec, "spec", "portLevelMtls", "object"); err != nil {
		return nil, err
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
	var ports []any
	plm := mapAt(spec, "portLevelMtls")
	keys := make([]string, 0, len(plm))
	for k := range plm {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		pm, ok := plm[k].(map[string]any)
		if !ok {
			return nil, fmt.Errorf("spec.portLevelMtls[%s]: expected object, got %s", k, jsonType(plm[k]))
		}
		m := str(pm, "mode")
		if m == mtlsPermissive || m == mtlsDisable {
			ports = append(ports, map[string]any{"port": k, "mode": m, "text": fmt.Sprintf("port %s is %s", k, m)})
		}
	}
	return map[string]any{
		"scope":         scope,
		"mode":          mode,
		"effectiveMode": effective,
		"namespaceMode": nsMode,
		"meshMode":      meshMode,
		"meshPolicy":    meshKnown,
		"weakPorts":     nonNil(ports),
	}, nil
}

// inMeshHost reports whether a DestinationRule host names in-mesh services
// (RULES.md 2.2), and whether it is a wildcard covering the whole mesh.
func inMeshHost(host, namespace, clusterDomain string) (inMesh, meshWildcard bool) {
	h := strings.ToLower(strings.TrimSpace(host))
	cd := strings.ToLower(clusterDomain)
	switch h {
	case "*", "*.local", "*." + cd, "*.svc." + cd:
		return true, true
	case "":
		return false, false
	}
	if !strings.Contains(h, ".") {
		return true, false
	}
	if strings.HasSuffix(h, ".svc."+cd) || strings.HasSuffix(h, ".svc") {
		return true, false
	}
	if strings.HasPrefix(h, "*.") && strings.HasSuffix(h, ".svc."+cd) {
		return true, false
	}
	return false, false
}

func (e *engine) destinationRuleFacts(obj Object, ns string) (map[string]any, error) {
	if err := checkType(obj, "", "spec", "object"); err != nil {
		return nil, err
	}
	spec := mapAt(obj, "spec")
	for _, f := range []struct{ k, t string }{{"host", "string"}, {"trafficPolicy", "object"}, {"subsets", "array"}, {"exportTo", "array"}} {
		if err := checkType(spec, "spec", f.k, f.t); err != nil {
			return nil, err
		}
	}
	host := str(spec, "host")
	inMesh, wildcard := inMeshHost(host, ns, e.cfg.ClusterDomain)
	exportAll := true
	for _, x := range listAt(spec, "exportTo") {
		if x != "*" {
			exportAll = false
		}
	}
	var tls []any
	addPolicy := func(tp map[string]any, where string) error {
		if tp == nil {
			return nil
		}
		if err := checkType(tp, where, "tls", "object"); err != nil {
			return err
		}
		add := func(t map[string]any, at string) {
			if t == nil {
				return
			}
			tls = append(tls, map[string]any{
				"at": at, "mode": str(t, "mode"), "insecureSkipVerify": boolAt(t, "insecureSkipVerify"),
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
		return nil, err
	}
	for i, s := range listAt(spec, "subsets") {
		sm, ok := s.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("spec.subsets[%d]: expected object, got %s", i, jsonType(s))
		}
		where := fmt.Sprintf("spec.subsets[%d].trafficPolicy", i)
		if n := str(sm, "name"); n != "" {
			where = fmt.Sprintf("spec.subsets[%s].trafficPolicy", n)
		}
		if err := addPolicy(mapAt(sm, "trafficPolicy"), where); err != nil {
			return nil, err
		}
	}
	return map[string]any{
		"host":          host,
		"inMesh":        inMesh,
		"meshWildcard":  wildcard,
		"exportedToAll": exportAll,
		"inRoot":        ns == e.cfg.RootNamespace,
		"tls":           nonNil(tls),
	}, nil
}

var catchAllCIDRs = map[string]bool{"0.0.0.0/0": true, "::/0": true}

// sourceUnconstrained reports whether an AuthorizationPolicy source admits
// plaintext, unauthenticated requests from anywhere (RULES.md 2.3).
func sourceUnconstrained(src map[string]any) bool {
	for k, v := range src {
		if strings.HasPrefix(k, "not") {
			continue
		}
		list, _ := v.([]any)
		if len(list) == 0 {
			continue
		}
		if k == "ipBlocks" || k == "remoteIpBlocks" {
			all := false
			for _, c := range list {
				if s, _ := c.(string); catchAllCIDRs[s] {
					all = true
				}
			}
			if all {
				continue
			}
		}
		return false
	}
	return true
}

var operationWildcards = map[string]map[string]bool{
	"methods": {"*": true},
	"paths":   {"*": true, "/*": true},
	"hosts":   {"*": true},
}

func operationUnconstrained(op map[string]any) bool {
	for k, v := range op {
		list, _ := v.([]any)
		if len(list) == 0 {
			continue
		}
		wild, ok := operationWildcards[k]
		if !ok {
			return false
		}
		any := false
		for _, x := range list {
			if s, _ := x.(string); wild[s] {
				any = true
			}
		}
		if !any {
			return false
		}
	}
	return true
}

// ruleMatchesAny reports whether an AuthorizationPolicy rule matches every request.
func ruleMatchesAny(rule map[string]any) bool {
	for _, f := range listAt(rule, "from") {
		if !sourceUnconstrained(mapAt(asMap(f), "source")) {
			return false
		}
	}
	for _, t := range listAt(rule, "to") {
		if !operationUnconstrained(mapAt(asMap(t), "operation")) {
			return false
		}
	}
	for _, w := range listAt(rule, "when") {
		if len(listAt(asMap(w), "values")) > 0 {
			return false
		}
	}
	return true
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func apScope(spec map[string]any, ns, root string) string {
	if hasSelector(spec, "selector") || len(listAt(spec, "targetRefs")) > 0 || len(mapAt(spec, "targetRef")) > 0 {
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

func (e *engine) authorizationPolicyFacts(obj Object, ns string) (map[string]any, error) {
	if err := checkType(obj, "", "spec", "object"); err != nil {
		return nil, err
	}
	spec := mapAt(obj, "spec")
	if err := checkType(spec, "spec", "rules", "array"); err != nil {
		return nil, err
	}
	var allowAll []any
	for i, r := range listAt(spec, "rules") {
		rm, ok := r.(map[string]any)
		if !ok && r != nil {
			return nil, fmt.Errorf("spec.rules[%d]: expected object, got %s", i, jsonType(r))
		}
		for _, f := range []string{"from", "to", "when"} {
			if err := checkType(rm, fmt.Sprintf("spec.rules[%d]", i), f, "array"); err != nil {
				return nil, err
			}
		}
		if ruleMatchesAny(rm) {
			allowAll = append(allowAll, fmt.Sprintf("spec.rules[%d]", i))
		}
	}
	return map[string]any{
		"action":        apAction(spec),
		"scope":         apScope(spec, ns, e.cfg.RootNamespace),
		"matchAllRules": nonNil(allowAll),
	}, nil
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

// ruleRequiresToken reports whether an ALLOW rule admits only requests with a
// request principal.
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
		k := str(asMap(w), "key")
		if (k == "request.auth.principal" || strings.HasPrefix(k, "request.auth.claims[")) && len(listAt(asMap(w), "values")) > 0 {
			return true
		}
	}
	return false
}

// requestAuthenticationFacts decides whether some authorization policy makes the
// token mandatory for the workloads a RequestAuthentication selects (MESH0030).
func (e *engine) requestAuthenticationFacts(obj Object, ns string) (map[string]any, error) {
	if err := checkType(obj, "", "spec", "object"); err != nil {
		return nil, err
	}
	spec := mapAt(obj, "spec")
	raLabels := selectorLabels(spec)
	raTargeted := len(listAt(spec, "targetRefs")) > 0
	var policies []Object
	policies = append(policies, e.ctx.AuthorizationPolicies(ns)...)
	if ns != e.cfg.RootNamespace {
		policies = append(policies, e.ctx.AuthorizationPolicies(e.cfg.RootNamespace)...)
	}
	allowCovering, allowAllRequire, denyRequires := 0, true, false
	for _, ap := range policies {
		aspec := mapAt(ap, "spec")
		apNS, _ := objKey(ap)
		if apNS == "" {
			apNS = ns
		}
		if apNS == e.cfg.RootNamespace && ns != e.cfg.RootNamespace && hasSelector(aspec, "selector") {
			continue // a root-namespace policy with a selector applies only in the root namespace
		}
		if len(listAt(aspec, "targetRefs")) > 0 && !raTargeted {
			continue
		}
		if !covers(selectorLabels(aspec), raLabels) {
			continue
		}
		switch apAction(aspec) {
		case "ALLOW":
			allowCovering++
			for _, r := range listAt(aspec, "rules") {
				if !ruleRequiresToken(asMap(r)) {
					allowAllRequire = false
				}
			}
		case "DENY":
			for _, r := range listAt(aspec, "rules") {
				for _, f := range listAt(asMap(r), "from") {
					for _, p := range listAt(mapAt(asMap(f), "source"), "notRequestPrincipals") {
						if p == "*" {
							denyRequires = true
						}
					}
				}
			}
		}
	}
	return map[string]any{
		"tokenRequired":         denyRequires || allowCovering > 0 && allowAllRequire,
		"allowPoliciesCovering": float64(allowCovering),
	}, nil
}
