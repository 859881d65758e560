package rules

import (
	"context"
	"testing"

	"sigs.k8s.io/yaml"
)

// decode turns a YAML snippet into a decoded object, failing the test on error.
func decode(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := yaml.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("bad test YAML: %v\n%s", err, s)
	}
	return m
}

func pa(t *testing.T, ns, name, created, mode string, selector bool) Object {
	t.Helper()
	o := Object{
		"apiVersion": "security.istio.io/v1",
		"kind":       "PeerAuthentication",
		"metadata":   map[string]any{"namespace": ns, "name": name},
		"spec":       map[string]any{},
	}
	if created != "" {
		o["metadata"].(map[string]any)["creationTimestamp"] = created
	}
	if mode != "" {
		o["spec"].(map[string]any)["mtls"] = map[string]any{"mode": mode}
	}
	if selector {
		o["spec"].(map[string]any)["selector"] = map[string]any{"matchLabels": map[string]any{"app": "web"}}
	}
	return o
}

func snapshotOf(objs ...Object) *Snapshot {
	s := NewSnapshot()
	for _, o := range objs {
		s.Add(o, "default")
	}
	return s
}

func TestLevelPolicyAndResolveMtls(t *testing.T) {
	const root = "istio-system"
	tests := []struct {
		name string
		ctx  []Object
		ns   string
		self Object
		want string // resolveMtls(PERMISSIVE, levelPolicy(...))
	}{
		{
			name: "no policy at the level keeps the parent mode",
			ns:   root,
			want: mtlsPermissive,
		},
		{
			name: "the oldest of two mesh-wide policies wins",
			ctx: []Object{
				pa(t, root, "b-newer", "2024-05-01T00:00:00Z", mtlsDisable, false),
				pa(t, root, "z-older", "2024-01-01T00:00:00Z", mtlsStrict, false),
			},
			ns:   root,
			want: mtlsStrict,
		},
		{
			name: "equal timestamps fall back to the name",
			ctx: []Object{
				pa(t, root, "b", "2024-01-01T00:00:00Z", mtlsDisable, false),
				pa(t, root, "a", "2024-01-01T00:00:00Z", mtlsStrict, false),
			},
			ns:   root,
			want: mtlsStrict,
		},
		{
			name: "a manifest without creationTimestamp is newer than a stored policy",
			ctx: []Object{
				pa(t, root, "a-unapplied", "", mtlsDisable, false),
				pa(t, root, "z-stored", "2024-01-01T00:00:00Z", mtlsStrict, false),
			},
			ns:   root,
			want: mtlsStrict,
		},
		{
			name: "UNSET inherits the parent mode",
			ctx:  []Object{pa(t, root, "default", "2024-01-01T00:00:00Z", "", false)},
			ns:   root,
			want: mtlsPermissive,
		},
		{
			name: "a root-namespace policy with a selector is ignored at mesh level",
			ctx:  []Object{pa(t, root, "selected", "2020-01-01T00:00:00Z", mtlsDisable, true)},
			ns:   root,
			want: mtlsPermissive,
		},
		{
			name: "the object under review replaces its stored version",
			ctx:  []Object{pa(t, root, "default", "2024-01-01T00:00:00Z", mtlsStrict, false)},
			ns:   root,
			self: pa(t, root, "default", "2024-01-01T00:00:00Z", mtlsDisable, false),
			want: mtlsDisable,
		},
		{
			name: "another namespace's policy does not count",
			ctx:  []Object{pa(t, "shop", "default", "2024-01-01T00:00:00Z", mtlsDisable, false)},
			ns:   root,
			want: mtlsPermissive,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := resolveMtls(mtlsPermissive, levelPolicy(snapshotOf(tc.ctx...), tc.ns, tc.self))
			if got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestPeerAuthenticationFactsInheritance(t *testing.T) {
	cfg, err := NewConfig().compile()
	if err != nil {
		t.Fatal(err)
	}
	ctx := snapshotOf(
		pa(t, "istio-system", "default", "2024-01-01T00:00:00Z", mtlsStrict, false),
		pa(t, "shop", "default", "2024-01-01T00:00:00Z", "", false),
	)
	e := &engine{cfg: cfg, ctx: ctx}
	tests := []struct {
		name                           string
		obj                            Object
		scope, nsMode, effective, mesh string
	}{
		{"an UNSET workload policy under an UNSET namespace policy inherits the mesh STRICT",
			pa(t, "shop", "web", "", "", true), "workload", mtlsStrict, mtlsStrict, mtlsStrict},
		{"a PERMISSIVE workload policy overrides the inherited mode",
			pa(t, "shop", "web", "", mtlsPermissive, true), "workload", mtlsStrict, mtlsPermissive, mtlsStrict},
		{"a root-namespace policy with a selector is reported as ignored",
			pa(t, "istio-system", "web", "", mtlsDisable, true), "ignored", mtlsStrict, mtlsStrict, mtlsStrict},
		{"a newer mesh-wide policy does not change the mesh mode",
			pa(t, "istio-system", "a-second", "", mtlsDisable, false), "mesh", mtlsStrict, mtlsStrict, mtlsStrict},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := e.peerAuthenticationFacts(tc.obj, str(mapAt(tc.obj, "metadata"), "namespace"))
			if err != nil {
				t.Fatal(err)
			}
			if f["scope"] != tc.scope || f["namespaceMode"] != tc.nsMode || f["effectiveMode"] != tc.effective || f["meshMode"] != tc.mesh {
				t.Errorf("got scope=%v namespaceMode=%v effectiveMode=%v meshMode=%v, want %s %s %s %s",
					f["scope"], f["namespaceMode"], f["effectiveMode"], f["meshMode"], tc.scope, tc.nsMode, tc.effective, tc.mesh)
			}
		})
	}
}

func TestInMeshHost(t *testing.T) {
	tests := []struct {
		name             string
		host             string
		inMesh, wildcard bool
	}{
		{"a short name resolves in the rule's namespace", "reviews", true, false},
		{"a cluster-local FQDN is in the mesh", "reviews.prod.svc.cluster.local", true, false},
		{"a .svc name is in the mesh", "reviews.prod.svc", true, false},
		{"a namespace wildcard is in the mesh but not mesh-wide", "*.prod.svc.cluster.local", true, false},
		{"the bare wildcard covers the whole mesh", "*", true, true},
		{"*.local covers the whole mesh", "*.local", true, true},
		{"*.cluster.local covers the whole mesh", "*.cluster.local", true, true},
		{"*.svc.cluster.local covers the whole mesh", "*.svc.cluster.local", true, true},
		{"hosts are case-insensitive", "Reviews.Prod.SVC.Cluster.Local", true, false},
		{"an external name is not in the mesh", "api.example.com", false, false},
		{"name.namespace is taken literally by Istio, not as a service", "reviews.prod", false, false},
		{"an IPv4 address is not a short name", "10.0.0.1", false, false},
		{"an IPv6 address is not a short name", "fd00::1", false, false},
		{"an empty host is nothing", "", false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in, wild := inMeshHost(tc.host, "prod", "cluster.local")
			if in != tc.inMesh || wild != tc.wildcard {
				t.Errorf("inMeshHost(%q) = %v, %v; want %v, %v", tc.host, in, wild, tc.inMesh, tc.wildcard)
			}
		})
	}
}

func TestRuleMatchesAny(t *testing.T) {
	tests := []struct {
		name string
		rule string
		want bool
	}{
		{"an empty rule matches every request", `{}`, true},
		{"a source on principals needs mTLS, so it does not match plaintext", `{from: [{source: {principals: ["*"]}}]}`, false},
		{"a source on request principals needs a JWT", `{from: [{source: {requestPrincipals: ["*"]}}]}`, false},
		{"a catch-all ipBlocks matches every caller", `{from: [{source: {ipBlocks: ["0.0.0.0/0"]}}]}`, true},
		{"a narrower ipBlocks constrains", `{from: [{source: {ipBlocks: ["10.0.0.0/8"]}}]}`, false},
		{"a negative-only source matches callers without an identity", `{from: [{source: {notNamespaces: ["blocked"]}}]}`, true},
		{"one unconstrained source among several makes the rule match any caller",
			`{from: [{source: {principals: ["cluster.local/ns/a/sa/b"]}}, {source: {notPrincipals: ["x"]}}]}`, true},
		{"a method wildcard matches every request", `{to: [{operation: {methods: ["*"]}}]}`, true},
		{"a path prefix /* matches every path", `{to: [{operation: {paths: ["/*"], hosts: ["*"]}}]}`, true},
		{"a specific path constrains", `{to: [{operation: {paths: ["/api/*"]}}]}`, false},
		{"one unconstrained operation among several makes the rule match any request",
			`{to: [{operation: {paths: ["/api"]}}, {operation: {methods: ["*"]}}]}`, true},
		{"ports constrain", `{to: [{operation: {ports: ["8080"]}}]}`, false},
		{"a notPaths operation constrains", `{to: [{operation: {notPaths: ["/admin"]}}]}`, false},
		{"a condition with values constrains", `{when: [{key: "request.headers[x-token]", values: ["a"]}]}`, false},
		{"a condition with only notValues does not constrain", `{when: [{key: source.namespace, notValues: ["x"]}]}`, true},
		{"an unconstrained source does not help a constrained operation",
			`{from: [{source: {ipBlocks: ["::/0"]}}], to: [{operation: {methods: ["GET"]}}]}`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ruleMatchesAny(decode(t, tc.rule)); got != tc.want {
				t.Errorf("ruleMatchesAny(%s) = %v, want %v", tc.rule, got, tc.want)
			}
		})
	}
}

func TestRequestAuthenticationFacts(t *testing.T) {
	cfg, err := NewConfig().compile()
	if err != nil {
		t.Fatal(err)
	}
	ra := func(spec string) Object {
		return decode(t, "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: jwt, namespace: shop}\nspec: "+spec)
	}
	ap := func(ns, name, spec string, extraMeta string) Object {
		return decode(t, "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: "+name+", namespace: "+ns+extraMeta+"}\nspec: "+spec)
	}
	const requireAny = `{action: ALLOW, rules: [{from: [{source: {requestPrincipals: ["*"]}}]}]}`
	tests := []struct {
		name string
		ra   Object
		aps  []Object
		want bool
	}{
		{"no authorization policy leaves tokens optional",
			ra(`{selector: {matchLabels: {app: web}}}`), nil, false},
		{"an ALLOW requiring a request principal for the same workloads makes the token mandatory",
			ra(`{selector: {matchLabels: {app: web}}}`),
			[]Object{ap("shop", "require-jwt", `{selector: {matchLabels: {app: web}}, action: ALLOW, rules: [{from: [{source: {requestPrincipals: ["*"]}}]}]}`, "")}, true},
		{"a namespace-wide ALLOW requiring a principal covers a workload RA",
			ra(`{selector: {matchLabels: {app: web}}}`), []Object{ap("shop", "ns", requireAny, "")}, true},
		{"an ALLOW for other workloads does not cover the RA's workloads",
			ra(`{selector: {matchLabels: {app: web}}}`),
			[]Object{ap("shop", "other", `{selector: {matchLabels: {app: db}}, rules: [{from: [{source: {requestPrincipals: ["*"]}}]}]}`, "")}, false},
		{"a second ALLOW admitting tokenless requests to the same workloads reopens them",
			ra(`{selector: {matchLabels: {app: web}}}`),
			[]Object{ap("shop", "ns", requireAny, ""), ap("shop", "health", `{selector: {matchLabels: {app: web}}, rules: [{to: [{operation: {paths: ["/healthz"]}}]}]}`, "")}, false},
		{"an allow-nothing ALLOW covering the workloads rejects tokenless requests",
			ra(`{}`), []Object{ap("shop", "allow-nothing", `{}`, "")}, true},
		{"a condition on a JWT claim requires a token",
			ra(`{}`), []Object{ap("shop", "claims", `{rules: [{when: [{key: "request.auth.claims[groups]", values: ["admins"]}]}]}`, "")}, true},
		{"a DENY on notRequestPrincipals * makes the token mandatory",
			ra(`{}`), []Object{ap("shop", "deny", `{action: DENY, rules: [{from: [{source: {notRequestPrincipals: ["*"]}}]}]}`, "")}, true},
		{"a dry-run DENY is not enforced",
			ra(`{}`), []Object{ap("shop", "deny", `{action: DENY, rules: [{from: [{source: {notRequestPrincipals: ["*"]}}]}]}`, `, annotations: {"istio.io/dry-run": "true"}`)}, false},
		{"a root-namespace ALLOW with a selector covers matching workloads in every namespace",
			ra(`{selector: {matchLabels: {app: web}}}`),
			[]Object{ap("istio-system", "mesh-web", `{selector: {matchLabels: {app: web}}, rules: [{from: [{source: {requestPrincipals: ["*"]}}]}]}`, "")}, true},
		{"a policy in another non-root namespace does not apply",
			ra(`{}`), []Object{ap("other", "ns", requireAny, "")}, false},
		{"an ALLOW on a different targetRef does not cover the RA's gateway",
			ra(`{targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: public}]}`),
			[]Object{ap("shop", "gw", `{targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: internal}], rules: [{from: [{source: {requestPrincipals: ["*"]}}]}]}`, "")}, false},
		{"an ALLOW on the same targetRef covers the RA's gateway",
			ra(`{targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: public}]}`),
			[]Object{ap("shop", "gw", `{targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: public}], rules: [{from: [{source: {requestPrincipals: ["*"]}}]}]}`, "")}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := &engine{cfg: cfg, ctx: snapshotOf(tc.aps...)}
			f, err := e.requestAuthenticationFacts(tc.ra, "shop")
			if err != nil {
				t.Fatal(err)
			}
			if f["tokenRequired"] != tc.want {
				t.Errorf("tokenRequired = %v, want %v (facts %v)", f["tokenRequired"], tc.want, f)
			}
		})
	}
}

func TestDestinationRuleTLSWithoutMode(t *testing.T) {
	cfg, err := NewConfig().compile()
	if err != nil {
		t.Fatal(err)
	}
	e := &engine{cfg: cfg, ctx: NewSnapshot()}
	dr := decode(t, `{apiVersion: networking.istio.io/v1, kind: DestinationRule, metadata: {name: r, namespace: shop},
spec: {host: reviews, trafficPolicy: {tls: {sni: reviews}}, subsets: [{name: v1, trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}}]}}`)
	f, err := e.destinationRuleFacts(dr, "shop")
	if err != nil {
		t.Fatal(err)
	}
	tls := f["tls"].([]any)
	if len(tls) != 2 {
		t.Fatalf("want 2 tls entries, got %v", tls)
	}
	first, second := tls[0].(map[string]any), tls[1].(map[string]any)
	if first["mode"] != "" || first["effectiveMode"] != "DISABLE" {
		t.Errorf("a tls block without a mode must read as DISABLE, got %v", first)
	}
	if second["effectiveMode"] != "ISTIO_MUTUAL" || second["at"] != "spec.subsets[v1].trafficPolicy.tls" {
		t.Errorf("a subset's tls keeps its mode and names the subset, got %v", second)
	}
}

func TestPortExceptionSeverityFollowsAllowList(t *testing.T) {
	c, err := DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	cfg := NewConfig()
	cfg.AllowedExcludedInboundPorts = []string{"15020", "9091"}
	e, err := New(c, cfg)
	if err != nil {
		t.Fatal(err)
	}
	obj := func(ports string) Object {
		return decode(t, `{apiVersion: security.istio.io/v1, kind: PeerAuthentication, metadata: {name: web, namespace: shop},
spec: {selector: {matchLabels: {app: web}}, portLevelMtls: `+ports+`}}`)
	}
	tests := []struct {
		name  string
		ports string
		want  Severity
		msg   string
	}{
		{"only admin-allowed ports are Low", `{"9091": {mode: PERMISSIVE}}`, SeverityLow,
			`PeerAuthentication "web" for workloads app=web: port 9091 is PERMISSIVE (admin-allowed port)`},
		{"one port outside the allow-list makes it Medium", `{"9091": {mode: DISABLE}, "8080": {mode: DISABLE}}`, SeverityMedium,
			`PeerAuthentication "web" for workloads app=web: port 8080 is DISABLE; port 9091 is DISABLE (admin-allowed port)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs, err := e.Evaluate(context.Background(), &Request{Object: obj(tc.ports)})
			if err != nil {
				t.Fatal(err)
			}
			var found bool
			for _, f := range fs {
				if f.Code != "MESH0006" {
					continue
				}
				found = true
				if f.Severity != tc.want || f.Message != tc.msg {
					t.Errorf("got %s %q, want %s %q", f.Severity, f.Message, tc.want, tc.msg)
				}
			}
			if !found {
				t.Errorf("no MESH0006 finding in %v", fs)
			}
		})
	}
}
