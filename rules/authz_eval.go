package rules

import (
	"fmt"
	"sort"
	"strings"
)

// This file evaluates AuthorizationPolicies against a known caller, for
// callers that reason about which connections are allowed (the
// allowed-traffic graph, and NetworkPolicies derived from the mesh's intent).
// It applies the same value semantics the rules judge policies by
// (authz_sets.go, facts_istio.go: matchLiteral, matchesEverything,
// excludesNothing, conditionUnconstrained), with Istio's precedence: CUSTOM,
// then DENY, then ALLOW, and allow by default when no ALLOW policy applies.
//
// What a static view cannot know (the request's path, method, host, token,
// headers, or the caller's address) makes a match partial: AuthzMatchSome,
// with the condition spelled out, never a full match.

// AuthzMatch says how much of a caller's traffic a policy or rule matches.
type AuthzMatch uint8

// Match results, from none to all.
const (
	// AuthzNoMatch: no request of the caller matches.
	AuthzNoMatch AuthzMatch = iota
	// AuthzMatchSome: some requests match, depending on what only the request
	// carries (path, method, token, caller address); the conditions say which.
	AuthzMatchSome
	// AuthzMatchAll: every request of the caller to the port matches.
	AuthzMatchAll
)

// AuthzCaller is the caller of a connection as the destination's proxy sees it.
type AuthzCaller struct {
	// Principal is the caller's mTLS identity without "spiffe://"
	// ("cluster.local/ns/NS/sa/SA"); "" when the connection carries no peer
	// certificate (plaintext), so principal and namespace matches fail.
	Principal string
	// Namespace is the namespace the caller's certificate proves; "" without one.
	Namespace string
}

// AuthzPolicyTargetRef is one entry of an AuthorizationPolicy's targetRefs
// (or its deprecated targetRef).
type AuthzPolicyTargetRef struct {
	Group, Kind, Name string
}

// AuthzPolicy is an AuthorizationPolicy prepared for evaluation. Build it with
// NewAuthzPolicy; it is read-only afterwards and safe for concurrent use.
type AuthzPolicy struct {
	// Namespace and Name identify the policy.
	Namespace, Name string
	// Action is ALLOW (the default), DENY, CUSTOM or AUDIT.
	Action string
	// Provider is the extension provider of a CUSTOM policy.
	Provider string
	// DryRun is true for a policy annotated istio.io/dry-run: "true"; Istio
	// does not enforce it.
	DryRun bool
	// Selector is spec.selector.matchLabels (nil without a selector).
	Selector map[string]string
	// TargetRefs are the policy's targetRefs; such a policy is enforced by the
	// gateway or waypoint it names, never by a sidecar or ztunnel.
	TargetRefs []AuthzPolicyTargetRef

	rules []map[string]any
}

// Ref returns "namespace/name".
func (p *AuthzPolicy) Ref() string { return p.Namespace + "/" + p.Name }

// NewAuthzPolicy prepares an AuthorizationPolicy. defaultNamespace is used
// when the object names none. A malformed policy is an error naming the field.
func NewAuthzPolicy(obj Object, defaultNamespace string) (*AuthzPolicy, error) {
	if err := checkType(obj, "", "spec", "object"); err != nil {
		return nil, err
	}
	spec := mapAt(obj, "spec")
	for _, f := range []struct{ k, t string }{{"rules", "array"}, {"selector", "object"}, {"action", "string"}, {"targetRefs", "array"}, {"targetRef", "object"}} {
		if err := checkType(spec, "spec", f.k, f.t); err != nil {
			return nil, err
		}
	}
	if err := checkType(mapAt(spec, "selector"), "spec.selector", "matchLabels", "object"); err != nil {
		return nil, err
	}
	ns, name := objKey(obj)
	if ns == "" {
		ns = defaultNamespace
	}
	p := &AuthzPolicy{
		Namespace: ns, Name: name,
		Action:   apAction(spec),
		Provider: str(mapAt(spec, "provider"), "name"),
		DryRun:   str(mapAt(obj, "metadata", "annotations"), "istio.io/dry-run") == "true",
		Selector: selectorLabels(spec),
	}
	switch p.Action {
	case "ALLOW", "DENY", "CUSTOM", "AUDIT":
	default:
		return nil, fmt.Errorf("spec.action: %q is not ALLOW, DENY, CUSTOM or AUDIT", p.Action)
	}
	for _, k := range sortedSet(targetRefKeys(spec)) {
		parts := strings.SplitN(k, "/", 3)
		p.TargetRefs = append(p.TargetRefs, AuthzPolicyTargetRef{Group: parts[0], Kind: parts[1], Name: parts[2]})
	}
	for i, r := range listAt(spec, "rules") {
		rm, ok := r.(map[string]any)
		if !ok && r != nil {
			return nil, fmt.Errorf("spec.rules[%d]: expected object, got %s", i, jsonType(r))
		}
		at := fmt.Sprintf("spec.rules[%d]", i)
		for _, f := range []string{"from", "to", "when"} {
			if err := checkType(rm, at, f, "array"); err != nil {
				return nil, err
			}
		}
		if err := checkAuthorizationRule(rm, at); err != nil {
			return nil, err
		}
		p.rules = append(p.rules, rm)
	}
	return p, nil
}

// SelectsWorkload reports whether the policy applies, through its selector, to
// a workload with these pod labels in namespace ns: a policy without selector
// applies to its whole namespace (the whole mesh in the root namespace), a
// selector to the pods whose labels it matches (in every namespace from the
// root namespace). Policies with targetRefs never select workloads.
func (p *AuthzPolicy) SelectsWorkload(ns string, labels map[string]string, root string) bool {
	if len(p.TargetRefs) > 0 {
		return false
	}
	if p.Namespace != ns && p.Namespace != root {
		return false
	}
	return covers(p.Selector, labels)
}

// Match reports how much of a caller's traffic to a port the policy's rules
// match, and for a partial match the conditions (one line per matching rule,
// e.g. `bookinfo/reviews rules[0]: methods ["GET"]`). l4Only evaluates the
// policy as ztunnel enforces it without a waypoint: an ALLOW rule with an HTTP
// attribute matches nothing, a DENY rule is enforced without its HTTP
// attributes (Istio's ambient authorization translation).
func (p *AuthzPolicy) Match(c AuthzCaller, port int, l4Only bool) (AuthzMatch, []string) {
	best := AuthzNoMatch
	var conds []string
	for i, r := range p.rules {
		m, why := matchRule(r, c, port, l4Only, p.Action == "ALLOW", p.Namespace)
		switch {
		case m == AuthzMatchAll:
			return AuthzMatchAll, nil
		case m == AuthzMatchSome:
			best = AuthzMatchSome
			conds = append(conds, fmt.Sprintf("%s rules[%d]: %s", p.Ref(), i, strings.Join(why, " and ")))
		}
	}
	return best, conds
}

// fieldMatch combines the ANDed fields of a source, operation or rule.
type fieldMatch struct {
	m   AuthzMatch
	why []string
}

func newFieldMatch() fieldMatch { return fieldMatch{m: AuthzMatchAll} }

func (f *fieldMatch) and(m AuthzMatch, why string) {
	switch m {
	case AuthzNoMatch:
		f.m = AuthzNoMatch
	case AuthzMatchSome:
		if f.m == AuthzMatchAll {
			f.m = AuthzMatchSome
		}
		f.why = append(f.why, why)
	}
}

// httpSourceFields, httpOperationFields are what ztunnel cannot enforce.
var (
	httpSourceFields    = map[string]bool{"remoteIpBlocks": true, "notRemoteIpBlocks": true, "requestPrincipals": true, "notRequestPrincipals": true}
	httpOperationFields = map[string]bool{"hosts": true, "notHosts": true, "methods": true, "notMethods": true, "paths": true, "notPaths": true}
	l4ConditionKeys     = map[string]bool{"source.ip": true, "source.namespace": true, "source.principal": true, "destination.ip": true, "destination.port": true}
)

// matchRule evaluates one rule: some source, some operation and every
// condition must match.
func matchRule(rule map[string]any, c AuthzCaller, port int, l4Only, allow bool, ruleNS string) (AuthzMatch, []string) {
	if l4Only && allow && ruleHasHTTP(rule) {
		return AuthzNoMatch, nil
	}
	out := newFieldMatch()
	anyOf := func(field, inner string, eval func(map[string]any) fieldMatch) {
		list := listAt(rule, field)
		if len(list) == 0 {
			return
		}
		best := fieldMatch{m: AuthzNoMatch}
		var whys []string
		for _, x := range list {
			fm := eval(mapAt(asMap(x), inner))
			if fm.m == AuthzMatchAll {
				return
			}
			if fm.m == AuthzMatchSome {
				best.m = AuthzMatchSome
				whys = append(whys, strings.Join(fm.why, " and "))
			}
		}
		out.and(best.m, strings.Join(whys, " or "))
	}
	anyOf("from", "source", func(src map[string]any) fieldMatch { return matchSource(src, c, l4Only, ruleNS) })
	anyOf("to", "operation", func(op map[string]any) fieldMatch { return matchOperation(op, port, l4Only) })
	for _, w := range listAt(rule, "when") {
		wm := asMap(w)
		key := str(wm, "key")
		if l4Only && !l4ConditionKeys[key] {
			continue // a DENY rule is enforced without it
		}
		m, why := matchCondition(key, strs(wm, "values"), strs(wm, "notValues"), c, port)
		out.and(m, why)
	}
	return out.m, out.why
}

func ruleHasHTTP(rule map[string]any) bool {
	for _, f := range listAt(rule, "from") {
		for k, v := range mapAt(asMap(f), "source") {
			if l, _ := v.([]any); httpSourceFields[k] && len(l) > 0 {
				return true
			}
		}
	}
	for _, t := range listAt(rule, "to") {
		for k, v := range mapAt(asMap(t), "operation") {
			if l, _ := v.([]any); httpOperationFields[k] && len(l) > 0 {
				return true
			}
		}
	}
	for _, w := range listAt(rule, "when") {
		if !l4ConditionKeys[str(asMap(w), "key")] {
			return true
		}
	}
	return false
}

// matchValue matches a value as Istio's string matchers do (matchLiteral):
// presence, prefix, suffix or exact. An empty value never matches.
func matchValue(pattern, v string) bool {
	if v == "" {
		return false
	}
	lit, presence := matchLiteral(pattern)
	switch {
	case presence:
		return true
	case strings.HasPrefix(pattern, "*"):
		return strings.HasSuffix(v, lit)
	case strings.HasSuffix(pattern, "*"):
		return strings.HasPrefix(v, lit)
	}
	return v == lit
}

func matchAnyValue(patterns []string, v string) bool {
	for _, p := range patterns {
		if matchValue(p, v) {
			return true
		}
	}
	return false
}

// principalOf returns the principal a serviceAccounts value names ("ns/sa",
// or "sa" in the policy's namespace), for the caller's trust domain.
func serviceAccountMatches(values []string, c AuthzCaller, ruleNS string) bool {
	if c.Principal == "" {
		return false
	}
	for _, v := range values {
		ns, sa, ok := strings.Cut(v, "/")
		if !ok {
			ns, sa = ruleNS, v
		}
		if strings.HasSuffix(c.Principal, "/ns/"+ns+"/sa/"+sa) {
			return true
		}
	}
	return false
}

func matchSource(src map[string]any, c AuthzCaller, l4Only bool, ruleNS string) fieldMatch {
	out := newFieldMatch()
	for _, k := range sortedKeys(src) {
		vals := strs(src, k)
		if len(vals) == 0 || l4Only && httpSourceFields[k] {
			continue
		}
		switch k {
		case "principals":
			out.and(boolMatch(matchAnyValue(vals, c.Principal)), "")
		case "notPrincipals":
			out.and(boolMatch(!matchAnyValue(vals, c.Principal)), "")
		case "namespaces":
			out.and(boolMatch(matchAnyValue(vals, c.Namespace)), "")
		case "notNamespaces":
			out.and(boolMatch(!matchAnyValue(vals, c.Namespace)), "")
		case "serviceAccounts":
			out.and(boolMatch(serviceAccountMatches(vals, c, ruleNS)), "")
		case "notServiceAccounts":
			out.and(boolMatch(!serviceAccountMatches(vals, c, ruleNS)), "")
		case "ipBlocks", "remoteIpBlocks":
			if matchesEverything(k, vals) {
				continue
			}
			out.and(AuthzMatchSome, k+" "+quoted(vals))
		case "notIpBlocks", "notRemoteIpBlocks":
			if ipCoverage(vals).all() {
				out.and(AuthzNoMatch, "")
				continue
			}
			out.and(AuthzMatchSome, k+" "+quoted(vals))
		default: // requestPrincipals, notRequestPrincipals and fields Istio adds later
			out.and(AuthzMatchSome, k+" "+quoted(vals))
		}
	}
	return out
}

func boolMatch(b bool) AuthzMatch {
	if b {
		return AuthzMatchAll
	}
	return AuthzNoMatch
}

func portIn(values []string, port int) bool {
	for _, v := range values {
		if p, ok := parsePort(v); ok && p == port {
			return true
		}
	}
	return false
}

func matchOperation(op map[string]any, port int, l4Only bool) fieldMatch {
	out := newFieldMatch()
	for _, k := range sortedKeys(op) {
		vals := strs(op, k)
		if len(vals) == 0 || l4Only && httpOperationFields[k] {
			continue
		}
		switch {
		case k == "ports":
			out.and(boolMatch(portIn(vals, port)), "")
		case k == "notPorts":
			out.and(boolMatch(!portIn(vals, port)), "")
		case strings.HasPrefix(k, "not"):
			if !excludesNothing(k, vals) {
				out.and(AuthzMatchSome, k+" "+quoted(vals))
			}
		default:
			if !matchesEverything(k, vals) {
				out.and(AuthzMatchSome, k+" "+quoted(vals))
			}
		}
	}
	return out
}

// matchCondition evaluates a when condition: keys on the caller's identity and
// the port are decided, keys on addresses that cover everything match, the
// rest depends on the request.
func matchCondition(key string, values, notValues []string, c AuthzCaller, port int) (AuthzMatch, string) {
	var subject string
	switch key {
	case "source.principal":
		subject = c.Principal
	case "source.namespace":
		subject = c.Namespace
	case "destination.port":
		m := AuthzMatchAll
		if len(values) > 0 && !portIn(values, port) || portIn(notValues, port) {
			m = AuthzNoMatch
		}
		return m, ""
	default:
		if conditionUnconstrained(key, values, notValues) {
			return AuthzMatchAll, ""
		}
		var parts []string
		if len(values) > 0 {
			parts = append(parts, key+" in "+quoted(values))
		}
		if len(notValues) > 0 {
			parts = append(parts, key+" not in "+quoted(notValues))
		}
		return AuthzMatchSome, strings.Join(parts, " and ")
	}
	if len(values) > 0 && !matchAnyValue(values, subject) || matchAnyValue(notValues, subject) {
		return AuthzNoMatch, ""
	}
	return AuthzMatchAll, ""
}

// AuthzVerdict is the outcome of EvaluateAuthz.
type AuthzVerdict string

// Verdicts of EvaluateAuthz.
const (
	// AuthzAllowed: an ALLOW policy matches every request of the caller.
	AuthzAllowed AuthzVerdict = "allowed"
	// AuthzAllowedByDefault: no ALLOW policy applies, nothing denies.
	AuthzAllowedByDefault AuthzVerdict = "allowed-by-default"
	// AuthzConditional: some requests are allowed, others not, by what only
	// the request carries (Conditions).
	AuthzConditional AuthzVerdict = "conditional"
	// AuthzDenied: every request is denied (Policies say by what).
	AuthzDenied AuthzVerdict = "denied"
)

// AuthzDecision is what a destination's policies decide for one caller and port.
type AuthzDecision struct {
	Verdict AuthzVerdict
	// ByDeny is true for a denial by a DENY policy (Policies[0]); a denial
	// with ByDeny false is one where ALLOW policies apply and none matches.
	ByDeny bool
	// Policies are the policies that decided ("namespace/name"): the matching
	// DENY policy, the matching ALLOW policies, or for a denial because no
	// ALLOW rule matches, every ALLOW policy that applies.
	Policies []string
	// Conditions list what a conditional decision depends on.
	Conditions []string
}

// EvaluateAuthz decides a caller's connection to a port under the policies
// that apply to the destination, with Istio's precedence: CUSTOM policies
// that match send the request to their provider (conditional), a DENY policy
// that matches every request denies, ALLOW policies then allow what one of
// them matches and deny the rest; without ALLOW policies the request is
// allowed by default. Dry-run and AUDIT policies are not enforced and are
// skipped. l4Only is Match's.
func EvaluateAuthz(policies []*AuthzPolicy, c AuthzCaller, port int, l4Only bool) AuthzDecision {
	var conds []string
	var allows []*AuthzPolicy
	for _, p := range policies {
		if p.DryRun {
			continue
		}
		switch p.Action {
		case "CUSTOM":
			if l4Only {
				continue // ztunnel does not enforce CUSTOM policies
			}
			if m, why := p.Match(c, port, false); m != AuthzNoMatch {
				provider := p.Provider
				if provider == "" {
					provider = "(none named)"
				}
				if m == AuthzMatchAll {
					why = []string{p.Ref() + ": every request"}
				}
				for _, w := range why {
					conds = append(conds, fmt.Sprintf("CUSTOM provider %s decides (%s)", provider, w))
				}
			}
		case "ALLOW":
			allows = append(allows, p)
		}
	}
	for _, p := range policies {
		if p.DryRun || p.Action != "DENY" {
			continue
		}
		m, why := p.Match(c, port, l4Only)
		switch m {
		case AuthzMatchAll:
			return AuthzDecision{Verdict: AuthzDenied, ByDeny: true, Policies: []string{p.Ref()}}
		case AuthzMatchSome:
			for _, w := range why {
				conds = append(conds, "denied when "+w)
			}
		}
	}
	if len(allows) == 0 {
		if len(conds) > 0 {
			return AuthzDecision{Verdict: AuthzConditional, Conditions: conds}
		}
		return AuthzDecision{Verdict: AuthzAllowedByDefault}
	}
	var some []string
	var somePolicies []string
	for _, p := range allows {
		m, why := p.Match(c, port, l4Only)
		switch m {
		case AuthzMatchAll:
			if len(conds) > 0 {
				return AuthzDecision{Verdict: AuthzConditional, Policies: []string{p.Ref()}, Conditions: conds}
			}
			return AuthzDecision{Verdict: AuthzAllowed, Policies: []string{p.Ref()}}
		case AuthzMatchSome:
			somePolicies = append(somePolicies, p.Ref())
			for _, w := range why {
				some = append(some, "allowed when "+w)
			}
		}
	}
	if len(some) > 0 {
		return AuthzDecision{Verdict: AuthzConditional, Policies: somePolicies, Conditions: append(conds, some...)}
	}
	refs := make([]string, 0, len(allows))
	for _, p := range allows {
		refs = append(refs, p.Ref())
	}
	sort.Strings(refs)
	return AuthzDecision{Verdict: AuthzDenied, Policies: refs}
}

// identPattern is a value of a policy that is matched against the caller's
// identity: a principal, namespace or service-account pattern.
type identPattern struct {
	field   string // "principal", "namespace", "serviceAccount"
	pattern string
	ns      string // the policy's namespace, for a bare service account
}

func (ip identPattern) matches(c AuthzCaller) bool {
	switch ip.field {
	case "principal":
		return matchValue(ip.pattern, c.Principal)
	case "namespace":
		return matchValue(ip.pattern, c.Namespace)
	}
	return serviceAccountMatches([]string{ip.pattern}, c, ip.ns)
}

// identityPatterns lists every value of the policy that is compared with the
// caller's identity (sources' principals, namespaces and service accounts,
// positive and negative, and when conditions on source.principal and
// source.namespace).
func (p *AuthzPolicy) identityPatterns() []identPattern {
	var out []identPattern
	add := func(field string, vals []string) {
		for _, v := range vals {
			out = append(out, identPattern{field: field, pattern: v, ns: p.Namespace})
		}
	}
	for _, r := range p.rules {
		for _, f := range listAt(r, "from") {
			src := mapAt(asMap(f), "source")
			add("principal", strs(src, "principals"))
			add("principal", strs(src, "notPrincipals"))
			add("namespace", strs(src, "namespaces"))
			add("namespace", strs(src, "notNamespaces"))
			add("serviceAccount", strs(src, "serviceAccounts"))
			add("serviceAccount", strs(src, "notServiceAccounts"))
		}
		for _, w := range listAt(r, "when") {
			wm := asMap(w)
			field := ""
			switch str(wm, "key") {
			case "source.principal":
				field = "principal"
			case "source.namespace":
				field = "namespace"
			default:
				continue
			}
			add(field, strs(wm, "values"))
			add(field, strs(wm, "notValues"))
		}
	}
	return out
}

// AuthzCallerClassifier sorts callers into classes that a set of policies
// cannot tell apart: callers of one class get the same EvaluateAuthz
// decision from those policies on every port. Only the identity patterns the
// policies name can distinguish two callers, so a class is the set of
// patterns a caller matches. A caller without identity (plaintext) falls in
// the class of callers that match no pattern, which policies treat alike.
type AuthzCallerClassifier struct {
	pats []identPattern
}

// NewAuthzCallerClassifier prepares the classifier of the policies.
func NewAuthzCallerClassifier(policies ...[]*AuthzPolicy) *AuthzCallerClassifier {
	c := &AuthzCallerClassifier{}
	seen := map[identPattern]bool{}
	for _, list := range policies {
		for _, p := range list {
			for _, ip := range p.identityPatterns() {
				if !seen[ip] {
					seen[ip] = true
					c.pats = append(c.pats, ip)
				}
			}
		}
	}
	return c
}

// Class returns the caller's class. ok is false when the policies name more
// than 64 identity patterns: the class is then not computed and callers must
// be told apart by identity.
func (c *AuthzCallerClassifier) Class(caller AuthzCaller) (class uint64, ok bool) {
	if len(c.pats) > 64 {
		return 0, false
	}
	for i, ip := range c.pats {
		if ip.matches(caller) {
			class |= 1 << uint(i)
		}
	}
	return class, true
}
