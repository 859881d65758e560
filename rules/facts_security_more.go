package rules

import (
	"fmt"
	"strings"
)

// Facts for MESH0013, MESH0021, MESH0023, MESH0031 and MESH0032: small
// additions to the DestinationRule, AuthorizationPolicy and
// RequestAuthentication facts, kept apart from the larger computations.

// anyPeerSources lists the ALLOW rules that admit every authenticated peer
// and nothing narrower (MESH0021): every source of the rule sets only
// principals ["*"], namespaces ["*"] or trustDomains ["*"] (any of them, at
// least one), and the rule has no to and no when.
func anyPeerSources(spec map[string]any) []any {
	var out []any
	for i, r := range listAt(spec, "rules") {
		rm := asMap(r)
		if len(listAt(rm, "to")) > 0 || len(listAt(rm, "when")) > 0 {
			continue
		}
		from := listAt(rm, "from")
		if len(from) == 0 {
			continue // no source at all is MESH0020's allow-all
		}
		all := true
		var what []string
		for _, f := range from {
			src := mapAt(asMap(f), "source")
			anyPeer := len(src) > 0
			for k := range src {
				list := strs(src, k)
				switch {
				case len(list) == 0:
				case (k == "principals" || k == "namespaces" || k == "trustDomains") && len(list) == 1 && list[0] == "*":
					what = append(what, k+` ["*"]`)
				default:
					anyPeer = false
				}
			}
			all = all && anyPeer
		}
		if all && len(what) > 0 {
			out = append(out, fmt.Sprintf("spec.rules[%d] allows any authenticated peer (%s) to any operation", i, strings.Join(dedupeStrings(what), ", ")))
		}
	}
	return nonNil(out)
}

// denyPositiveMatches lists the positive paths and hosts of a DENY policy's
// operations that have no not* counterpart in the same operation (MESH0023):
// a request spelled differently (//admin, /admin%2F, a Host with a port or a
// trailing dot) slips past them unless normalisation catches it.
func denyPositiveMatches(spec map[string]any) []any {
	if apAction(spec) != "DENY" {
		return []any{}
	}
	var out []any
	for i, r := range listAt(spec, "rules") {
		for j, t := range listAt(asMap(r), "to") {
			op := mapAt(asMap(t), "operation")
			for _, f := range []string{"paths", "hosts"} {
				list := strs(op, f)
				if len(list) == 0 || len(strs(op, "not"+strings.ToUpper(f[:1])+f[1:])) > 0 {
					continue
				}
				out = append(out, fmt.Sprintf("spec.rules[%d].to[%d].operation.%s %s", i, j, f, quoted(list)))
			}
		}
	}
	return nonNil(out)
}

// jwtRuleFacts lists a RequestAuthentication's JWKS fetched over plain HTTP
// (MESH0031) and the ways its tokens leave the proxy (MESH0032).
func jwtRuleFacts(spec map[string]any) (plaintext, leaks []any) {
	for i, r := range listAt(spec, "jwtRules") {
		rm := asMap(r)
		at := fmt.Sprintf("spec.jwtRules[%d]", i)
		if uri := strings.TrimSpace(str(rm, "jwksUri")); strings.HasPrefix(strings.ToLower(uri), "http://") {
			plaintext = append(plaintext, fmt.Sprintf("%s.jwksUri %s is plain HTTP", at, quote(uri)))
		}
		if boolAt(rm, "forwardOriginalToken") {
			leaks = append(leaks, at+".forwardOriginalToken is true (the token is passed upstream)")
		}
		if h := str(rm, "outputPayloadToHeader"); h != "" {
			leaks = append(leaks, fmt.Sprintf("%s.outputPayloadToHeader copies the token's payload into header %s", at, quote(h)))
		}
		if p := strs(rm, "fromParams"); len(p) > 0 {
			leaks = append(leaks, fmt.Sprintf("%s.fromParams %s takes the token from the URL query (access logs keep it)", at, quoted(p)))
		}
	}
	return nonNil(plaintext), nonNil(leaks)
}

func dedupeStrings(s []string) []string {
	seen := map[string]bool{}
	out := s[:0]
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}
