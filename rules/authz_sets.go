package rules

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// This file judges what the values of an AuthorizationPolicy field admit, as
// Istio compiles them (pilot/pkg/security/authz/model): a list of values is an
// OR, a not* list is NOT(OR), and a value "*" is a presence match, "*x" a
// suffix, "x*" a prefix and anything else an exact match. It lets MESH0020 see
// allow-all spelled with CIDR pieces, all ports, or negative lists that
// exclude nothing, and MESH0022 leave out negative lists that exclude nothing.

// ipFamilies says which address families a list of ipBlocks-style values
// covers entirely. Values are CIDRs or plain addresses (a /32 or /128, as
// Istio's AddrStrToPrefix reads them); host bits are masked as Envoy does.
// Values that do not parse are left out: Istio's validation rejects them, and
// an ALLOW rule holding one is dropped when Envoy config is generated.
// IPv4-mapped IPv6 ranges (::ffff:0:0/96) count as IPv6: Envoy matches a range
// only against addresses of its own family.
type ipFamilies struct{ v4, v6 bool }

// any is true when one family is covered. The guard reads "every IPv4
// address" (or every IPv6 address) as every caller: in a single-stack cluster
// it is, and in a dual-stack one it still admits every caller of that family.
func (f ipFamilies) any() bool { return f.v4 || f.v6 }

// all is true when both families are covered: the list matches every address.
func (f ipFamilies) all() bool { return f.v4 && f.v6 }

func parseIPValue(s string) (netip.Prefix, bool) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err == nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, false
	}
	a = a.WithZone("")
	return netip.PrefixFrom(a, a.BitLen()), true
}

func ipCoverage(values []string) ipFamilies {
	var v4, v6 []netip.Prefix
	for _, s := range values {
		p, ok := parseIPValue(s)
		if !ok {
			continue
		}
		if p.Addr().Is4() {
			v4 = append(v4, p)
		} else {
			v6 = append(v6, p)
		}
	}
	return ipFamilies{v4: coversFamily(v4, netip.IPv4Unspecified()), v6: coversFamily(v6, netip.IPv6Unspecified())}
}

// coversFamily reports whether the union of prefixes (all of the family of
// zero) covers every address of the family.
func coversFamily(prefixes []netip.Prefix, zero netip.Addr) bool {
	rs := make([]addrRange, 0, len(prefixes))
	for _, p := range prefixes {
		rs = append(rs, prefixRange(p))
	}
	return rangesCover(rs, zero.Is4())
}

// lastAddr returns the highest address of a masked prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// parsePort reads a port as Istio does (convertToPort, ValidatePorts): a
// decimal number from 0 to 65535, leading zeros allowed.
func parsePort(s string) (int, bool) {
	p, err := strconv.ParseUint(s, 10, 32)
	if err != nil || p > 65535 {
		return 0, false
	}
	return int(p), true
}

// portsCoverAll reports whether a list of ports names every port from 1 to
// 65535 (port 0 is never a destination). ports: ["*"] is not valid Istio
// (ValidatePorts rejects it, and Envoy config for an ALLOW rule with it is not
// generated), so only the absurd full list counts.
func portsCoverAll(values []string) bool {
	if len(values) < 65535 {
		return false
	}
	seen := make([]bool, 65536)
	n := 0
	for _, s := range values {
		if p, ok := parsePort(s); ok && p > 0 && !seen[p] {
			seen[p] = true
			n++
		}
	}
	return n == 65535
}

// portExcludesNothing: a notPorts value excludes no request when it is port 0,
// which no connection is made to. A value that is not a port (80a, 70000, *)
// is rejected by Istio's validation and drops the ALLOW rule from Envoy's
// config, so it does not make the rule match everything: it is not counted.
func portExcludesNothing(s string) bool {
	p, ok := parsePort(s)
	return ok && p == 0
}

// matchLiteral splits a value the way Istio's string and header matchers do:
// "*" is a presence match; a leading "*" makes a suffix match, else a trailing
// "*" a prefix match; anything else is an exact match. It returns the literal
// compared with the request and whether the value is the presence match.
func matchLiteral(v string) (literal string, presence bool) {
	switch {
	case v == "*":
		return "", true
	case strings.HasPrefix(v, "*"):
		return v[1:], false
	case strings.HasSuffix(v, "*"):
		return v[:len(v)-1], false
	}
	return v, false
}

// isTchar reports whether c may appear in an HTTP token (RFC 9110 5.6.2), the
// syntax of a request method.
func isTchar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// isAuthorityChar reports whether c may appear in a URI authority
// (RFC 3986 3.2: unreserved, sub-delims, ":", "@", "%" and the IP-literal
// brackets), the characters Envoy's authority check accepts in a Host.
func isAuthorityChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-._~!$&'()*+,;=:@%[]", c) >= 0
}

// methodExcludesNothing: a notMethods value whose literal cannot be part of a
// method token ("GET POST", "GET,POST", "get/put") matches no request. A
// well-formed but unusual method ("FOO", "PURGE", "get") may be sent and
// served, so it is a real exclusion.
func methodExcludesNothing(v string) bool {
	lit, presence := matchLiteral(v)
	if presence || lit == "" {
		return false
	}
	for i := 0; i < len(lit); i++ {
		if !isTchar(lit[i]) {
			return true
		}
	}
	return false
}

// hostExcludesNothing: a notHosts value whose literal holds a character a
// Host cannot hold ("example.com/", "a b") matches no request.
func hostExcludesNothing(v string) bool {
	lit, presence := matchLiteral(v)
	if presence || lit == "" {
		return false
	}
	for i := 0; i < len(lit); i++ {
		if !isAuthorityChar(lit[i]) {
			return true
		}
	}
	return false
}

// pathExcludesNothing: a request path always starts with "/" (Envoy turns an
// absolute-form target into its path; the only other form, "OPTIONS *", is
// "*"), so an exact or prefix value that does not start with "/" ("nothing",
// "admin*") matches no request. A suffix value ("*.php") and a path template
// ("{*}") may match; "*" matches every path and so excludes everything.
func pathExcludesNothing(v string) bool {
	if v == "*" || strings.HasPrefix(v, "*") || strings.ContainsAny(v, "{}") {
		return false
	}
	lit := strings.TrimSuffix(v, "*")
	return lit != "" && !strings.HasPrefix(lit, "/")
}

// excludesNothing reports whether every value of an operation's not* list
// provably matches no request, so the field excludes nothing.
func excludesNothing(field string, values []string) bool {
	var f func(string) bool
	switch field {
	case "notMethods":
		f = methodExcludesNothing
	case "notHosts":
		f = hostExcludesNothing
	case "notPaths":
		f = pathExcludesNothing
	case "notPorts":
		f = portExcludesNothing
	default:
		return false
	}
	for _, v := range values {
		if !f(v) {
			return false
		}
	}
	return len(values) > 0
}

// matchesEverything reports whether a positive list of an operation or source
// field matches every request (HTTP requests for methods, paths and hosts, as
// RULES.md 2.3 has it).
func matchesEverything(field string, values []string) bool {
	switch field {
	case "ipBlocks", "remoteIpBlocks":
		return ipCoverage(values).any()
	case "ports":
		return portsCoverAll(values)
	}
	for _, v := range values {
		switch {
		case v == "*" && (field == "methods" || field == "paths" || field == "hosts"):
			return true
		case v == "/*" && field == "paths":
			return true
		}
	}
	return false
}

// Condition keys whose values are addresses or ports (model.go attrSrcIP,
// attrRemoteIP, attrDestIP, attrDestPort).
func ipConditionKey(key string) bool {
	return key == "source.ip" || key == "remote.ip" || key == "destination.ip"
}

// conditionUnconstrained reports whether a when condition admits every
// request: its values (if any) cover every address or port of an address or
// port key, and its notValues (if any) exclude nothing. A notValues list
// admits every request that lacks the attribute (RULES.md 2.3), except when it
// excludes every address or port, when the condition matches nothing. Values
// on any other key constrain.
func conditionUnconstrained(key string, values, notValues []string) bool {
	if len(values) > 0 {
		switch {
		case ipConditionKey(key) && ipCoverage(values).any():
		case key == "destination.port" && portsCoverAll(values):
		default:
			return false
		}
	}
	if len(notValues) > 0 {
		switch {
		case ipConditionKey(key) && ipCoverage(notValues).all():
			return false
		case key == "destination.port" && portsCoverAll(notValues):
			return false
		}
	}
	return true
}

// conditionValuesMatchEverything is matchesEverything for a when condition's
// values: they do not narrow its notValues.
func conditionValuesMatchEverything(key string, values []string) bool {
	return ipConditionKey(key) && ipCoverage(values).any() || key == "destination.port" && portsCoverAll(values)
}

// universalPodLabels are labels the sidecar injector puts on every pod it
// injects (injection-template.yaml), with the value it gives them unless the
// pod sets its own. A selector made only of them is namespace-wide in effect.
// service.istio.io/canonical-name and canonical-revision are also set on every
// pod, but their values follow the workload (canonical-revision defaults to
// "latest" only for pods without a version label), so they select workloads.
// Gateway and waypoint pods do not get tlsMode; ambient pods get no label from
// istio-cni or ztunnel (only the ambient.istio.io/redirection annotation).
var universalPodLabels = map[string]string{"security.istio.io/tlsMode": "istio"}

// universalSelector returns, for a policy whose selector matches only labels
// every injected pod carries, why it does, e.g. "selector
// security.istio.io/tlsMode=istio selects every injected pod"; "" otherwise.
func universalSelector(spec map[string]any) string {
	sel := mapAt(spec, "selector")
	if len(listAt(sel, "matchExpressions")) > 0 || len(mapAt(sel, "labels")) > 0 {
		return ""
	}
	labels := selectorLabels(spec)
	if len(labels) == 0 || len(labels) != len(mapAt(sel, "matchLabels")) {
		return ""
	}
	for k, v := range labels {
		if want, ok := universalPodLabels[k]; !ok || v != want {
			return ""
		}
	}
	return "selector " + labelsText(labels) + " selects every injected pod"
}

// stringList returns the strings of a list field, or an error naming the
// field (at.key[i]) for a value that is not a list of strings.
func stringList(m map[string]any, at, key string) ([]string, error) {
	v, ok := m[key]
	if !ok || v == nil {
		return nil, nil
	}
	list, ok := v.([]any)
	if !ok {
		return nil, typeError(at, key, "array", v)
	}
	out := make([]string, 0, len(list))
	for i, x := range list {
		s, ok := x.(string)
		if !ok {
			return nil, fmt.Errorf("%s%s[%d]: expected string, got %s", prefixPath(at), key, i, jsonType(x))
		}
		out = append(out, s)
	}
	return out, nil
}

// checkAuthorizationRule checks the shape of one rule of an AuthorizationPolicy
// (at is e.g. "spec.rules[0]"): every from, to and when entry an object, every
// source, operation and condition field a list of strings, and a condition key
// a string. Bad input is an error naming the field, before any fact is judged.
func checkAuthorizationRule(rule map[string]any, at string) error {
	for _, f := range []struct{ list, inner string }{{"from", "source"}, {"to", "operation"}} {
		for j, x := range listAt(rule, f.list) {
			where := fmt.Sprintf("%s.%s[%d]", at, f.list, j)
			xm, ok := x.(map[string]any)
			if !ok {
				return fmt.Errorf("%s: expected object, got %s", where, jsonType(x))
			}
			if err := checkType(xm, where, f.inner, "object"); err != nil {
				return err
			}
			inner := mapAt(xm, f.inner)
			for _, k := range sortedKeys(inner) {
				if _, err := stringList(inner, where+"."+f.inner, k); err != nil {
					return err
				}
			}
		}
	}
	for j, w := range listAt(rule, "when") {
		where := fmt.Sprintf("%s.when[%d]", at, j)
		wm, ok := w.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: expected object, got %s", where, jsonType(w))
		}
		if err := checkType(wm, where, "key", "string"); err != nil {
			return err
		}
		for _, k := range []string{"values", "notValues"} {
			if _, err := stringList(wm, where, k); err != nil {
				return err
			}
		}
	}
	return nil
}

// strings of a list field whose shape checkAuthorizationRule has checked.
func strs(m map[string]any, key string) []string {
	l, _ := stringList(m, "", key)
	return l
}

// familiesText names the families an address list covers.
func familiesText(f ipFamilies) string {
	switch {
	case f.all():
		return "every IPv4 and IPv6 address"
	case f.v4:
		return "every IPv4 address"
	}
	return "every IPv6 address"
}

// literalCatchAll reports whether an address list holds 0.0.0.0/0 or ::/0
// as written: the plain spelling of allow-all, which needs no explanation.
func literalCatchAll(values []string) bool {
	for _, v := range values {
		if v == "0.0.0.0/0" || v == "::/0" {
			return true
		}
	}
	return false
}

func quoted(values []string) string {
	b, _ := json.Marshal(values)
	return string(b)
}

// allowAllNotes explains an allow-all rule (ruleMatchesAny) spelled in a way
// that does not read as one: for the first unconstrained source and
// operation, and every condition, the lists that cover every address or port
// or that exclude nothing, e.g. `spec.rules[0].to[0].operation.notPaths
// ["nothing"] match no request path`. The plain forms ({}, "*", "/*", a
// source's 0.0.0.0/0 or ::/0, notValues) need none; a condition's values on
// addresses are always explained, since values usually constrain.
func allowAllNotes(rule map[string]any, at string) []string {
	var notes []string
	for j, f := range listAt(rule, "from") {
		src := mapAt(asMap(f), "source")
		if !sourceUnconstrained(src) {
			continue
		}
		where := fmt.Sprintf("%s.from[%d].source", at, j)
		for _, k := range []string{"ipBlocks", "remoteIpBlocks"} {
			if vals := strs(src, k); len(vals) > 0 && !literalCatchAll(vals) {
				notes = append(notes, fmt.Sprintf("%s.%s %s cover %s", where, k, quoted(vals), familiesText(ipCoverage(vals))))
			}
		}
		break
	}
	for j, t := range listAt(rule, "to") {
		op := mapAt(asMap(t), "operation")
		if !operationUnconstrained(op) {
			continue
		}
		where := fmt.Sprintf("%s.to[%d].operation", at, j)
		for _, k := range sortedKeys(op) {
			vals := strs(op, k)
			switch {
			case len(vals) == 0:
			case k == "ports":
				notes = append(notes, where+".ports name every port")
			case k == "notPaths":
				notes = append(notes, fmt.Sprintf("%s.notPaths %s match no request path", where, quoted(vals)))
			case k == "notMethods":
				notes = append(notes, fmt.Sprintf("%s.notMethods %s match no method", where, quoted(vals)))
			case k == "notHosts":
				notes = append(notes, fmt.Sprintf("%s.notHosts %s match no Host", where, quoted(vals)))
			case k == "notPorts":
				notes = append(notes, fmt.Sprintf("%s.notPorts %s match no port", where, quoted(vals)))
			}
		}
		break
	}
	for j, w := range listAt(rule, "when") {
		wm := asMap(w)
		key := str(wm, "key")
		where := fmt.Sprintf("%s.when[%d] (%s)", at, j, key)
		if vals := strs(wm, "values"); len(vals) > 0 {
			switch {
			case ipConditionKey(key):
				notes = append(notes, fmt.Sprintf("%s.values %s cover %s", where, quoted(vals), familiesText(ipCoverage(vals))))
			case key == "destination.port":
				notes = append(notes, where+".values name every port")
			}
		}
		if vals := strs(wm, "notValues"); key == "destination.port" && len(vals) > 0 && excludesNothing("notPorts", vals) {
			notes = append(notes, fmt.Sprintf("%s.notValues %s match no port", where, quoted(vals)))
		}
	}
	return notes
}
