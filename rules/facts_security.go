package rules

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// This file holds the facts of MESH0007, MESH0013, MESH0021, MESH0023,
// MESH0031 and MESH0032: competing PeerAuthentications, unpinned TLS
// origination, ALLOW any mTLS peer, DENY on positive paths and hosts, JWKS
// over HTTP and tokens passed on.

// winnerText names the PeerAuthentication Istio applies among competing
// ones (the oldest by creationTimestamp; ComposePeerAuthentication keeps the
// first of equal ones). Objects without a creationTimestamp (manifests not
// yet applied) are ordered by when they will be created, which the input
// cannot tell.
func winnerText(objs []Object) string {
	w := oldest(objs)
	if str(mapAt(w, "metadata"), "creationTimestamp") == "" {
		return "whichever is created first"
	}
	_, name := objKey(w)
	if len(objs) == 2 {
		return fmt.Sprintf("the older of the two, %q", name)
	}
	return fmt.Sprintf("the oldest, %q", name)
}

// peerAuthenticationConflicts lists, for MESH0007, the other
// PeerAuthentications of the object's namespace that compete with it
// (ComposePeerAuthentication, policy_applier.go): at mesh or namespace level
// every other policy without a selector, since Istio applies only the oldest;
// at workload level every policy whose selector may select a pod this one
// selects (no label required with two values), since each pod gets only the
// oldest workload policy. A root-namespace policy with a selector is ignored
// by Istio and competes with nothing. The object under review replaces its
// stored version (same name).
func (e *engine) peerAuthenticationConflicts(obj Object, ns, scope string) []any {
	if scope != "mesh" && scope != "namespace" && scope != "workload" {
		return []any{}
	}
	_, self := objKey(obj)
	labels := selectorLabels(mapAt(obj, "spec"))
	var out []any
	var level []Object
	for _, pa := range e.ctx.PeerAuthentications(ns) {
		_, name := objKey(pa)
		if name == self {
			continue
		}
		sel := hasSelector(mapAt(pa, "spec"), "selector")
		switch {
		case scope != "workload" && !sel:
			level = append(level, pa)
		case scope == "workload" && sel:
			other := selectorLabels(mapAt(pa, "spec"))
			if overlaps(labels, other) {
				out = append(out, fmt.Sprintf("PeerAuthentication %q (selector %s) may select the same pods, which get only %s",
					name, labelsText(other), winnerText([]Object{obj, pa})))
			}
		}
	}
	if len(level) > 0 {
		all := append([]Object{obj}, level...)
		what := fmt.Sprintf("namespace-wide in namespace %q", ns)
		if scope == "mesh" {
			what = fmt.Sprintf("mesh-wide in root namespace %q", ns)
		}
		win := winnerText(all)
		for _, pa := range level {
			_, name := objKey(pa)
			out = append(out, fmt.Sprintf("PeerAuthentication %q is also %s, and Istio applies only %s", name, what, win))
		}
	}
	return nonNil(out)
}

// tlsNoCAText explains, for MESH0013, a SIMPLE or MUTUAL tls block that
// verifies the server against no CA of its own, as Istio builds it
// (cluster_tls.go): without caCertificates the proxy trusts its OS bundle
// ("system"); a credentialName supplies the CA only with a workloadSelector
// on the DestinationRule (istioctl's IST0128/IST0129 condition), except a
// configmap:// credentialName, which sidecars read too. Without a
// workloadSelector, sidecars drop a tls block whose credentialName names a
// Secret and send that traffic without TLS; gateways use the Secret.
// insecureSkipVerify is MESH0012's. Returns "" when the block is fine.
func tlsNoCAText(t map[string]any, mode, at string, workloadSelector bool) string {
	if mode != "SIMPLE" && mode != "MUTUAL" || boolAt(t, "insecureSkipVerify") || str(t, "caCertificates") != "" {
		return ""
	}
	cred := str(t, "credentialName")
	switch {
	case cred == "":
		return fmt.Sprintf("%s sets mode %s without caCertificates, so the proxy accepts any server certificate its OS trust bundle accepts", at, mode)
	case strings.HasPrefix(cred, "configmap://") || workloadSelector:
		return ""
	}
	return fmt.Sprintf("%s sets mode %s with credentialName %q but the DestinationRule has no workloadSelector: gateways verify with that Secret, while sidecars ignore the tls block and connect without TLS", at, mode, cred)
}

// principalDomainRE matches principals prefixes that cover a whole trust
// domain: "cluster.local/*", "cluster.local/ns/*".
var principalDomainRE = regexp.MustCompile(`^[^/*]+/(ns/)?\*$`)

// identityWildcard reports whether a source field's values admit every mTLS
// peer of the mesh: "*" for principals, namespaces and trustDomains (Istio's
// presence match, which requires a peer identity), and for principals a
// prefix covering a whole trust domain. serviceAccounts take no wildcard.
func identityWildcard(field string, values []string) bool {
	for _, v := range values {
		switch field {
		case "principals":
			if v == "*" || principalDomainRE.MatchString(v) {
				return true
			}
		case "namespaces", "trustDomains":
			if v == "*" {
				return true
			}
		}
	}
	return false
}

// sourceAnyPeer returns, for a source that admits every mTLS peer and
// nothing narrower (MESH0021), its identity wildcards, e.g.
// `from[0].source.principals ["*"]`; nil when the source narrows the callers
// (a named identity, a request principal, a not* list, an address range) or
// asks for no identity at all (MESH0020's business).
func sourceAnyPeer(src map[string]any, at string) []string {
	var out []string
	for _, k := range sortedKeys(src) {
		vals := strs(src, k)
		if len(vals) == 0 {
			continue
		}
		switch {
		case identityWildcard(k, vals):
			out = append(out, fmt.Sprintf("%s.%s %s", at, k, quoted(vals)))
		case (k == "ipBlocks" || k == "remoteIpBlocks") && matchesEverything(k, vals):
		default:
			return nil
		}
	}
	return out
}

// identityConditionKeys are when keys whose presence match ("*") requires a
// peer identity.
var identityConditionKeys = map[string]bool{"source.principal": true, "source.namespace": true}

// ruleAnyPeer explains, for MESH0021, an ALLOW rule that admits every
// authenticated workload of the mesh and nothing narrower: some source is
// unconstrained or only identity wildcards, some operation is unconstrained,
// every condition is unconstrained or a presence match on the peer's
// identity, and at least one identity wildcard makes mTLS the only
// requirement. A rule that matches every request (ruleMatchesAny) is
// MESH0020's. Returns e.g. `spec.rules[0] (from[0].source.principals ["*"])`
// or "".
func ruleAnyPeer(rule map[string]any, at string) string {
	if ruleMatchesAny(rule) {
		return ""
	}
	to := listAt(rule, "to")
	opOK := len(to) == 0
	for _, x := range to {
		opOK = opOK || operationUnconstrained(mapAt(asMap(x), "operation"))
	}
	if !opOK {
		return ""
	}
	var evidence []string
	for j, w := range listAt(rule, "when") {
		wm := asMap(w)
		key, vals, nots := str(wm, "key"), strs(wm, "values"), strs(wm, "notValues")
		switch {
		case identityConditionKeys[key] && len(nots) == 0 && slices.Contains(vals, "*"):
			evidence = append(evidence, fmt.Sprintf("when[%d] %s %s", j, key, quoted(vals)))
		case conditionUnconstrained(key, vals, nots):
		default:
			return ""
		}
	}
	from := listAt(rule, "from")
	srcOK := len(from) == 0
	var srcEvidence []string
	for j, f := range from {
		src := mapAt(asMap(f), "source")
		if sourceUnconstrained(src) {
			srcOK, srcEvidence = true, nil
			break
		}
		if ev := sourceAnyPeer(src, fmt.Sprintf("from[%d].source", j)); ev != nil && !srcOK {
			srcOK, srcEvidence = true, ev
		}
	}
	if !srcOK {
		return ""
	}
	evidence = append(srcEvidence, evidence...)
	if len(evidence) == 0 {
		return ""
	}
	return fmt.Sprintf("%s (%s)", at, strings.Join(evidence, ", "))
}

// denyPositiveMatches lists, for MESH0023, each DENY operation's paths or
// hosts list without the same field's not* list, e.g.
// `spec.rules[0].to[0].operation.paths ["/admin"]`: a request spelled another
// way (`//admin`, `/admin%2F`, another case or port in the Host) may escape a
// positive DENY match. A list that matches everything ("*", "/*") escapes
// nothing.
func denyPositiveMatches(rule map[string]any, at string) []string {
	var out []string
	for j, t := range listAt(rule, "to") {
		op := mapAt(asMap(t), "operation")
		for _, f := range []string{"paths", "hosts"} {
			vals := strs(op, f)
			if len(vals) == 0 || matchesEverything(f, vals) || len(strs(op, "not"+strings.ToUpper(f[:1])+f[1:])) > 0 {
				continue
			}
			out = append(out, fmt.Sprintf("%s.to[%d].operation.%s %s", at, j, f, quoted(vals)))
		}
	}
	return out
}

// jwtRuleFacts judges, appending to plaintext and leaks, the jwtRules of a RequestAuthentication: where istiod
// (or Envoy, with PILOT_JWT_ENABLE_REMOTE_JWKS) fetches the keys over plain
// HTTP (MESH0031), and where the token or its claims travel on or sit in a
// URL (MESH0032). jwksUri has the alias jwks_uri in the CRD. Without jwksUri
// and jwks, istiod discovers the keys from <issuer>/.well-known/openid-configuration
// (jwks_resolver.go), so an http:// issuer is fetched over HTTP too. The CRD
// admits only one of jwksUri and jwks.
func jwtRuleFacts(spec map[string]any, plaintext, leaks []string) ([]string, []string, error) {
	if err := checkType(spec, "spec", "jwtRules", "array"); err != nil {
		return nil, nil, err
	}
	for i, r := range listAt(spec, "jwtRules") {
		at := fmt.Sprintf("spec.jwtRules[%d]", i)
		rm, ok := r.(map[string]any)
		if !ok {
			return nil, nil, fmt.Errorf("%s: expected object, got %s", at, jsonType(r))
		}
		for _, f := range []string{"issuer", "jwksUri", "jwks_uri", "jwks", "outputPayloadToHeader"} {
			if err := checkType(rm, at, f, "string"); err != nil {
				return nil, nil, err
			}
		}
		if err := checkType(rm, at, "forwardOriginalToken", "boolean"); err != nil {
			return nil, nil, err
		}
		params, err := stringList(rm, at, "fromParams")
		if err != nil {
			return nil, nil, err
		}
		issuer := str(rm, "issuer")
		who := at
		if issuer != "" {
			who = fmt.Sprintf("%s (issuer %q)", at, issuer)
		}
		uriField, uri := "jwksUri", str(rm, "jwksUri")
		if uri == "" {
			uriField, uri = "jwks_uri", str(rm, "jwks_uri")
		}
		switch {
		case uri != "" && httpURL(uri):
			plaintext = append(plaintext, fmt.Sprintf("%s fetches its signing keys from %s %q over plain HTTP", who, uriField, uri))
		case uri == "" && str(rm, "jwks") == "" && httpURL(issuer):
			plaintext = append(plaintext, fmt.Sprintf("%s sets neither jwksUri nor jwks, so istiod discovers its signing keys from issuer %q over plain HTTP", at, issuer))
		}
		if boolAt(rm, "forwardOriginalToken") {
			leaks = append(leaks, fmt.Sprintf("%s sets forwardOriginalToken, so the application receives the bearer token", who))
		}
		if h := str(rm, "outputPayloadToHeader"); h != "" {
			leaks = append(leaks, fmt.Sprintf("%s copies the token's payload to header %q for the application", who, h))
		}
		if len(params) > 0 {
			leaks = append(leaks, fmt.Sprintf("%s reads the token from query parameters %s, which end up in access logs", who, quoted(params)))
		}
	}
	return plaintext, leaks, nil
}

// httpURL reports whether a URL's scheme is http (any case, as the CRD's
// url() and Go's HTTP client read it).
func httpURL(u string) bool {
	return len(u) >= 7 && strings.EqualFold(u[:7], "http://")
}
