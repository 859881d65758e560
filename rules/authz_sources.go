package rules

import "strings"

// AuthzSource is one caller pattern an ALLOW rule names positively: a value
// of from.source.principals, namespaces or serviceAccounts.
type AuthzSource struct {
	// Field is "principal", "namespace" or "serviceAccount".
	Field string
	// Pattern is the value as written (Istio's exact, prefix*, *suffix or *).
	Pattern string
	// PolicyNamespace is the policy's namespace (a bare service account's).
	PolicyNamespace string
}

// AllowedSources lists the positive caller patterns of the policy's rules
// (principals, namespaces and serviceAccounts of from.source), in order,
// without duplicates. Negations and when conditions narrow a rule and are
// not callers.
func (p *AuthzPolicy) AllowedSources() []AuthzSource {
	var out []AuthzSource
	seen := map[AuthzSource]bool{}
	for _, r := range p.rules {
		for _, f := range listAt(r, "from") {
			src := mapAt(asMap(f), "source")
			for _, fv := range []struct{ field, key string }{{"principal", "principals"}, {"namespace", "namespaces"}, {"serviceAccount", "serviceAccounts"}} {
				for _, v := range strs(src, fv.key) {
					s := AuthzSource{Field: fv.field, Pattern: v, PolicyNamespace: p.Namespace}
					if !seen[s] {
						seen[s] = true
						out = append(out, s)
					}
				}
			}
		}
	}
	return out
}

// Matches reports whether a caller with a mesh identity matches the pattern,
// as Istio compares it.
func (s AuthzSource) Matches(c AuthzCaller) bool {
	return identPattern{field: s.Field, pattern: s.Pattern, ns: s.PolicyNamespace}.matches(c)
}

// Namespace is the one namespace every caller the pattern matches is in,
// when the pattern names it exactly ("td/ns/NS/sa/SA", a namespace without
// wildcard, "NS/SA" or a bare service account); ok is false when the
// pattern can match callers of several namespaces.
func (s AuthzSource) Namespace() (string, bool) {
	if strings.Contains(s.Pattern, "*") && s.Field != "principal" {
		return "", false
	}
	switch s.Field {
	case "namespace":
		return s.Pattern, s.Pattern != ""
	case "serviceAccount":
		if ns, _, ok := strings.Cut(s.Pattern, "/"); ok {
			return ns, ns != ""
		}
		return s.PolicyNamespace, true
	}
	// A principal: trust-domain/ns/NS/sa/SA; a wildcard may stand only
	// outside the namespace segment (a prefix "td/ns/NS/sa/*" or a suffix
	// "*/ns/NS/sa/SA") for the namespace to be known.
	i := strings.Index(s.Pattern, "/ns/")
	if i < 0 {
		return "", false
	}
	rest := s.Pattern[i+len("/ns/"):]
	ns, _, ok := strings.Cut(rest, "/sa/")
	if !ok || ns == "" || strings.Contains(ns, "*") || strings.Contains(ns, "/") {
		return "", false
	}
	return ns, true
}
