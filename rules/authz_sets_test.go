package rules

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// allPorts returns the YAML list of every port from 1 to 65535, with one
// left out when skip is not 0.
func allPorts(skip int) string {
	var b strings.Builder
	b.WriteString("[")
	for p := 1; p <= 65535; p++ {
		if p == skip {
			continue
		}
		if b.Len() > 1 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "%q", fmt.Sprint(p))
	}
	b.WriteString("]")
	return b.String()
}

func TestRuleMatchesAnyEquivalentSpellings(t *testing.T) {
	tests := []struct {
		name string
		rule string
		want bool
	}{
		// Sources: CIDRs that together cover every address.
		{"two IPv4 halves cover every IPv4 caller", `{from: [{source: {ipBlocks: ["0.0.0.0/1", "128.0.0.0/1"]}}]}`, true},
		{"IPv4 and IPv6 halves cover every caller", `{from: [{source: {ipBlocks: ["0.0.0.0/1", "128.0.0.0/1", "::/1", "8000::/1"]}}]}`, true},
		{"two IPv6 halves cover every IPv6 caller", `{from: [{source: {remoteIpBlocks: ["::/1", "8000::/1"]}}]}`, true},
		{"many overlapping, unordered pieces cover IPv4",
			`{from: [{source: {ipBlocks: ["192.0.0.0/2", "0.0.0.0/2", "64.0.0.0/3", "96.0.0.0/3", "100.0.0.0/8", "128.0.0.0/2"]}}]}`, true},
		{"host bits are masked as Envoy does", `{from: [{source: {ipBlocks: ["10.1.2.3/1", "200.0.0.1/1"]}}]}`, true},
		{"every IPv4 address plus one IPv6 address is unconstrained (all of IPv4 is every caller of a single-stack cluster)",
			`{from: [{source: {ipBlocks: ["0.0.0.0/0", "2001:db8::1"]}}]}`, true},
		{"a catch-all remoteIpBlocks with a catch-all ipBlocks is unconstrained",
			`{from: [{source: {ipBlocks: ["::/0"], remoteIpBlocks: ["0.0.0.0/1", "128.0.0.0/1"]}}]}`, true},
		{"halves with a gap of one address constrain", `{from: [{source: {ipBlocks: ["0.0.0.0/1", "128.0.0.1/32", "128.0.0.2/31", "128.0.0.4/30"]}}]}`, false},
		{"one IPv4 half constrains", `{from: [{source: {ipBlocks: ["0.0.0.0/1"]}}]}`, false},
		{"halves of different families do not add up", `{from: [{source: {ipBlocks: ["0.0.0.0/1", "8000::/1"]}}]}`, false},
		{"a plain address is a /32, not a network", `{from: [{source: {ipBlocks: ["0.0.0.0", "128.0.0.0/1"]}}]}`, false},
		{"IPv4-mapped IPv6 does not cover IPv4", `{from: [{source: {ipBlocks: ["::ffff:0.0.0.0/96"]}}]}`, false},
		{"covering ipBlocks do not help a principal in the same source",
			`{from: [{source: {ipBlocks: ["0.0.0.0/1", "128.0.0.0/1"], principals: ["cluster.local/ns/a/sa/b"]}}]}`, false},
		{"a narrow remoteIpBlocks next to covering ipBlocks constrains",
			`{from: [{source: {ipBlocks: ["0.0.0.0/0"], remoteIpBlocks: ["10.0.0.0/8"]}}]}`, false},
		{"notIpBlocks excluding every address make the source match nothing",
			`{from: [{source: {notIpBlocks: ["0.0.0.0/1", "128.0.0.0/1", "::/0"]}}]}`, false},
		{"notIpBlocks excluding only IPv4 stay a negative-only source",
			`{from: [{source: {notIpBlocks: ["0.0.0.0/0"]}}]}`, true},
		{"principals * is any authenticated peer (MESH0021), not every request", `{from: [{source: {principals: ["*"]}}]}`, false},
		{"namespaces * needs an mTLS identity too", `{from: [{source: {namespaces: ["*"]}}]}`, false},
		{"unparsable CIDRs cover nothing", `{from: [{source: {ipBlocks: ["everything", "0.0.0.0/33"]}}]}`, false},

		// Conditions.
		{"a source.ip condition on both catch-alls constrains nothing", `{when: [{key: source.ip, values: ["0.0.0.0/0", "::/0"]}]}`, true},
		{"a remote.ip condition on IPv4 halves constrains nothing", `{when: [{key: remote.ip, values: ["0.0.0.0/1", "128.0.0.0/1"]}]}`, true},
		{"a destination.ip condition on every address constrains nothing", `{when: [{key: destination.ip, values: ["::/0"]}]}`, true},
		{"a destination.port condition on every port constrains nothing", `{when: [{key: destination.port, values: ` + allPorts(0) + `}]}`, true},
		{"a destination.port condition missing one port constrains", `{when: [{key: destination.port, values: ` + allPorts(443) + `}]}`, false},
		{"a source.ip condition on one half constrains", `{when: [{key: source.ip, values: ["0.0.0.0/1"]}]}`, false},
		{"a header condition on * still constrains (the guard does not judge other keys)", `{when: [{key: "request.headers[x-a]", values: ["*"]}]}`, false},
		{"a source.ip notValues excluding every address matches nothing", `{when: [{key: source.ip, notValues: ["0.0.0.0/0", "::/0"]}]}`, false},
		{"a destination.port notValues of port 0 excludes nothing", `{when: [{key: destination.port, notValues: ["0"]}]}`, true},
		{"a destination.port notValues of every port matches nothing", `{when: [{key: destination.port, notValues: ` + allPorts(0) + `}]}`, false},
		{"catch-all values next to a narrow notValues still admit callers without the attribute",
			`{when: [{key: source.ip, values: ["0.0.0.0/0"], notValues: ["10.0.0.0/8"]}]}`, true},

		// Operations: positive forms.
		{"paths * matches every path", `{to: [{operation: {paths: ["*"]}}]}`, true},
		{"hosts * matches every Host", `{to: [{operation: {hosts: ["*"]}}]}`, true},
		{"a list of every port matches every port", `{to: [{operation: {ports: ` + allPorts(0) + `}}]}`, true},
		{"a list of every port but one constrains", `{to: [{operation: {ports: ` + allPorts(22) + `}}]}`, false},
		{"ports * is not valid Istio and constrains", `{to: [{operation: {ports: ["*"]}}]}`, false},
		{"a path template is not judged and constrains", `{to: [{operation: {paths: ["/{**}"]}}]}`, false},

		// Operations: negative lists that exclude nothing.
		{"notPaths that cannot be a path (no leading slash) exclude nothing", `{to: [{operation: {notPaths: ["nothing"]}}]}`, true},
		{"a notPaths prefix without a leading slash excludes nothing", `{to: [{operation: {notPaths: ["admin*", "internal"]}}]}`, true},
		{"notPaths * excludes every path, so it is not allow-all", `{to: [{operation: {notPaths: ["*"]}}]}`, false},
		{"a notPaths suffix can match a path", `{to: [{operation: {notPaths: ["*admin"]}}]}`, false},
		{"notPaths /admin is a real exclusion", `{to: [{operation: {notPaths: ["nothing", "/admin"]}}]}`, false},
		{"a notPaths template is not judged", `{to: [{operation: {notPaths: ["x/{*}"]}}]}`, false},
		{"notMethods that are not tokens exclude nothing", `{to: [{operation: {notMethods: ["GET POST", "GET,PUT"]}}]}`, true},
		{"notMethods of a well-formed unknown method is a real exclusion", `{to: [{operation: {notMethods: ["FOO"]}}]}`, false},
		{"lower-case get is a method a client may send", `{to: [{operation: {notMethods: ["get"]}}]}`, false},
		{"notMethods * excludes every method", `{to: [{operation: {notMethods: ["*"]}}]}`, false},
		{"a notMethods prefix with a space excludes nothing", `{to: [{operation: {notMethods: ["DELETE *"]}}]}`, true},
		{"notHosts that cannot be a Host exclude nothing", `{to: [{operation: {notHosts: ["admin.example.com/", "a b"]}}]}`, true},
		{"notHosts of a real host is a real exclusion", `{to: [{operation: {notHosts: ["admin.example.com"]}}]}`, false},
		{"notPorts 0 excludes nothing", `{to: [{operation: {notPorts: ["0"]}}]}`, true},
		{"notPorts 00 is port 0 as Istio parses it", `{to: [{operation: {notPorts: ["00"]}}]}`, true},
		{"notPorts 8080 is a real exclusion", `{to: [{operation: {notPorts: ["8080"]}}]}`, false},
		{"notPorts that are not ports are rejected by Istio and do not make allow-all", `{to: [{operation: {notPorts: ["70000", "http"]}}]}`, false},
		{"a no-op negative list does not help a positive method", `{to: [{operation: {methods: ["GET"], notPaths: ["nothing"]}}]}`, false},
		{"every spelling at once is still allow-all",
			`{from: [{source: {ipBlocks: ["0.0.0.0/1", "128.0.0.0/1"]}}], to: [{operation: {methods: ["*"], paths: ["/*"], notPaths: ["x"], notPorts: ["0"]}}],
			  when: [{key: remote.ip, values: ["::/1", "8000::/1"]}]}`, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rule := decode(t, tc.rule)
			if err := checkAuthorizationRule(rule, "spec.rules[0]"); err != nil {
				t.Fatal(err)
			}
			if got := ruleMatchesAny(rule); got != tc.want {
				short := tc.rule
				if len(short) > 200 {
					short = short[:200] + "..."
				}
				t.Errorf("ruleMatchesAny(%s) = %v, want %v", short, got, tc.want)
			}
		})
	}
}

func TestNegativeMatchesLeaveOutNoOps(t *testing.T) {
	tests := []struct {
		name string
		rule string
		want []string
	}{
		{"a notPaths that excludes nothing is not a negative match", `{to: [{operation: {notPaths: ["nothing"]}}]}`, nil},
		{"a notPorts 0 is not a negative match", `{to: [{operation: {notPorts: ["0"]}}]}`, nil},
		{"a destination.port notValues of port 0 is not a negative match", `{when: [{key: destination.port, notValues: ["0"]}]}`, nil},
		{"a real notPaths stays a negative match", `{to: [{operation: {notPaths: ["/admin"]}}]}`,
			[]string{`spec.rules[0].to[0].operation.notPaths ["/admin"] without paths`}},
		{"an unknown method stays a negative match", `{to: [{operation: {notMethods: ["PURGE"]}}]}`,
			[]string{`spec.rules[0].to[0].operation.notMethods ["PURGE"] without methods`}},
		{"invalid notPorts stay a negative match", `{to: [{operation: {notPorts: ["http"]}}]}`,
			[]string{`spec.rules[0].to[0].operation.notPorts ["http"] without ports`}},
		{"covering ipBlocks do not narrow notIpBlocks", `{from: [{source: {ipBlocks: ["0.0.0.0/1", "128.0.0.0/1"], notIpBlocks: ["10.0.0.0/8"]}}]}`,
			[]string{`spec.rules[0].from[0].source.notIpBlocks ["10.0.0.0/8"] without ipBlocks`}},
		{"a narrow ipBlocks narrows notIpBlocks", `{from: [{source: {ipBlocks: ["10.0.0.0/8"], notIpBlocks: ["10.1.0.0/16"]}}]}`, nil},
		{"catch-all condition values do not narrow notValues", `{when: [{key: source.ip, values: ["0.0.0.0/1", "128.0.0.0/1"], notValues: ["10.0.0.0/8"]}]}`,
			[]string{`spec.rules[0].when[0] (source.ip).notValues ["10.0.0.0/8"] without values`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := negativeMatches(decode(t, tc.rule), "spec.rules[0]")
			if fmt.Sprint(got) != fmt.Sprint(nonNil(toAny(tc.want))) && !(len(got) == 0 && len(tc.want) == 0) {
				t.Errorf("negativeMatches = %q, want %q", got, tc.want)
			}
		})
	}
}

func toAny(s []string) []any {
	var out []any
	for _, x := range s {
		out = append(out, x)
	}
	return out
}

func TestAuthorizationPolicyScopeOfUniversalSelectors(t *testing.T) {
	cfg, err := NewConfig().compile()
	if err != nil {
		t.Fatal(err)
	}
	e := &engine{cfg: cfg, ctx: NewSnapshot()}
	tests := []struct {
		name, ns, spec    string
		scope, target     string
		wantScopeReason   bool
		wantMatchAllRules int
	}{
		{"a tlsMode=istio selector is namespace-wide", "shop", `{selector: {matchLabels: {security.istio.io/tlsMode: istio}}, rules: [{}]}`,
			"namespace", `every workload in namespace "shop" (selector security.istio.io/tlsMode=istio selects every injected pod)`, true, 1},
		{"a tlsMode=istio selector in the root namespace is mesh-wide", "istio-system", `{selector: {matchLabels: {security.istio.io/tlsMode: istio}}, rules: [{}]}`,
			"mesh", `every workload in the mesh (selector security.istio.io/tlsMode=istio selects every injected pod)`, true, 1},
		{"tlsMode with another label selects workloads", "shop", `{selector: {matchLabels: {security.istio.io/tlsMode: istio, app: web}}}`,
			"workload", "workloads app=web,security.istio.io/tlsMode=istio", false, 0},
		{"tlsMode=disabled is a pod's own opt-out value, not every pod", "shop", `{selector: {matchLabels: {security.istio.io/tlsMode: disabled}}}`,
			"workload", "workloads security.istio.io/tlsMode=disabled", false, 0},
		{"a specific canonical-name is one workload", "shop", `{selector: {matchLabels: {service.istio.io/canonical-name: web}}}`,
			"workload", "workloads service.istio.io/canonical-name=web", false, 0},
		{"canonical-revision latest is only the pods without a version label", "shop", `{selector: {matchLabels: {service.istio.io/canonical-revision: latest}}}`,
			"workload", "workloads service.istio.io/canonical-revision=latest", false, 0},
		{"targetRefs are left as they are", "shop", `{targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: public}]}`,
			"workload", "targetRefs Gateway/public", false, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			obj := decode(t, `{apiVersion: security.istio.io/v1, kind: AuthorizationPolicy, metadata: {name: p, namespace: `+tc.ns+`}, spec: `+tc.spec+`}`)
			f, err := e.authorizationPolicyFacts(obj, tc.ns)
			if err != nil {
				t.Fatal(err)
			}
			if f["scope"] != tc.scope || f["target"] != tc.target || (f["scopeReason"] != "") != tc.wantScopeReason ||
				len(f["matchAllRules"].([]any)) != tc.wantMatchAllRules {
				t.Errorf("got scope %v, target %q, scopeReason %q, matchAllRules %v", f["scope"], f["target"], f["scopeReason"], f["matchAllRules"])
			}
		})
	}
}

func TestAuthorizationPolicyBadInputNamesTheField(t *testing.T) {
	cfg, err := NewConfig().compile()
	if err != nil {
		t.Fatal(err)
	}
	e := &engine{cfg: cfg, ctx: NewSnapshot()}
	tests := []struct{ name, spec, want string }{
		{"ipBlocks as a string", `{rules: [{from: [{source: {ipBlocks: "0.0.0.0/0"}}]}]}`,
			"spec.rules[0].from[0].source.ipBlocks: expected array, got string"},
		{"a port as a number", `{rules: [{to: [{operation: {notPorts: [0]}}]}]}`,
			"spec.rules[0].to[0].operation.notPorts[0]: expected string, got number"},
		{"a from entry that is not an object", `{rules: [{from: ["x"]}]}`, "spec.rules[0].from[0]: expected object, got string"},
		{"a source that is a list", `{rules: [{from: [{source: []}]}]}`, "spec.rules[0].from[0].source: expected object, got array"},
		{"an operation that is a string", `{rules: [{to: [{operation: "GET"}]}]}`, "spec.rules[0].to[0].operation: expected object, got string"},
		{"a condition key that is a number", `{rules: [{when: [{key: 1, values: ["a"]}]}]}`, "spec.rules[0].when[0].key: expected string, got number"},
		{"condition values that hold an object", `{rules: [{when: [{key: source.ip, values: [{}]}]}]}`,
			"spec.rules[0].when[0].values[0]: expected string, got object"},
		{"a when entry that is a list", `{rules: [{when: [[]]}]}`, "spec.rules[0].when[0]: expected object, got array"},
		{"a selector that is a string", `{selector: "app=web"}`, "spec.selector: expected object, got string"},
		{"a label value that is a boolean", `{selector: {matchLabels: {security.istio.io/tlsMode: true}}}`,
			"spec.selector.matchLabels.security.istio.io/tlsMode: expected string, got boolean"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			obj := decode(t, `{apiVersion: security.istio.io/v1, kind: AuthorizationPolicy, metadata: {name: p, namespace: shop}, spec: `+tc.spec+`}`)
			_, err := e.authorizationPolicyFacts(obj, "shop")
			if err == nil || err.Error() != tc.want {
				t.Errorf("got error %v, want %q", err, tc.want)
			}
		})
	}
	// The engine turns the error into an evaluation error, not a panic.
	c, err := DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	eng, err := New(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	obj := decode(t, `{apiVersion: security.istio.io/v1, kind: AuthorizationPolicy, metadata: {name: p, namespace: shop}, spec: {rules: [{from: [{source: {ipBlocks: [1]}}]}]}}`)
	if _, err := eng.Evaluate(context.Background(), &Request{Object: obj}); err == nil || !strings.Contains(err.Error(), "ipBlocks[0]") {
		t.Errorf("want an evaluation error naming ipBlocks[0], got %v", err)
	}
}

func TestCoversFamilyEdges(t *testing.T) {
	tests := []struct {
		name   string
		values []string
		v4, v6 bool
	}{
		{"nothing covers nothing", nil, false, false},
		{"0.0.0.0/0 covers IPv4", []string{"0.0.0.0/0"}, true, false},
		{"::/0 covers IPv6", []string{"::/0"}, false, true},
		{"the top address alone does not cover", []string{"255.255.255.255"}, false, false},
		{"256 /8 pieces cover IPv4", eightBitPieces(), true, false},
		{"255 /8 pieces leave the last one out", eightBitPieces()[:255], false, false},
		{"a zone on an address is ignored", []string{"fe80::1%eth0"}, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := ipCoverage(tc.values)
			if got.v4 != tc.v4 || got.v6 != tc.v6 {
				t.Errorf("ipCoverage = %+v, want v4 %v v6 %v", got, tc.v4, tc.v6)
			}
		})
	}
}

func eightBitPieces() []string {
	var out []string
	for i := 0; i < 256; i++ {
		out = append(out, fmt.Sprintf("%d.0.0.0/8", i))
	}
	return out
}
