package rules

import (
	"context"
	"strings"
	"testing"
)

func testEngine(t *testing.T, ctx Context) *engine {
	t.Helper()
	cc, err := NewConfig().compile()
	if err != nil {
		t.Fatal(err)
	}
	if ctx == nil {
		ctx = emptyContext{}
	}
	return &engine{cfg: cc, ctx: ctx}
}

// TestHostOutsideMesh checks the namespace-mode part of the in-mesh decision
// for DestinationRule hosts (MESH0010/0011).
func TestHostOutsideMesh(t *testing.T) {
	snap := NewSnapshot()
	snap.AddNamespace(Namespace{Name: "legacy", Labels: map[string]string{"istio-injection": "disabled"}})
	snap.AddNamespace(Namespace{Name: "plain"})
	snap.AddNamespace(Namespace{Name: "shop", Labels: map[string]string{"istio-injection": "enabled"}})
	snap.AddNamespace(Namespace{Name: "pay", Labels: map[string]string{"istio.io/dataplane-mode": "ambient"}})
	e := testEngine(t, snap)
	tests := []struct {
		name, host, drNS string
		inMesh           bool
		mode, reason     string
	}{
		{"a service in a namespace labelled istio-injection=disabled is outside", "api.legacy.svc.cluster.local", "shop", false, "none", `namespace "legacy" is outside the mesh`},
		{"a short name in an unlabelled namespace is outside", "reports", "plain", false, "none", `namespace "plain" is outside the mesh`},
		{"a system namespace is outside even when the input does not describe it", "kube-dns.kube-system.svc", "shop", false, "none", `namespace "kube-system" is outside the mesh`},
		{"a sidecar namespace is in the mesh", "cart.shop.svc.cluster.local", "shop", true, "sidecar", ""},
		{"an ambient namespace is in the mesh", "ledger.pay.svc.cluster.local", "shop", true, "ambient", ""},
		{"an unknown namespace keeps the conservative answer", "orders.warehouse.svc.cluster.local", "shop", true, "unknown", ""},
		{"istiod in the root namespace is the control plane", "istiod.istio-system.svc.cluster.local", "default", false, "unknown", "Service istiod.istio-system is Istio's control plane, which runs without a sidecar and terminates its own TLS"},
		{"a revisioned istiod is the control plane", "istiod-1-28-0.istio-system.svc", "default", false, "unknown", "Service istiod-1-28-0.istio-system is Istio's control plane, which runs without a sidecar and terminates its own TLS"},
		{"istiod by its short name in the root namespace", "istiod", "istio-system", false, "unknown", "Service istiod.istio-system is Istio's control plane, which runs without a sidecar and terminates its own TLS"},
		{"a Service named istiod elsewhere is not the control plane", "istiod", "shop", true, "sidecar", ""},
		{"a Service named like istiod but not a revision is not the control plane", "istiod-.istio-system.svc.cluster.local", "shop", true, "unknown", ""},
		{"the API server", "kubernetes.default.svc.cluster.local", "shop", false, "unknown", "Service kubernetes.default is the Kubernetes API server, which runs without a sidecar"},
		{"a mesh-wide wildcard names no namespace", "*.svc.cluster.local", "shop", true, "", ""},
		{"a namespace wildcard follows its namespace", "*.legacy.svc.cluster.local", "shop", false, "none", `namespace "legacy" is outside the mesh`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := e.destinationRuleFacts(decode(t, `{spec: {host: "`+tc.host+`", trafficPolicy: {tls: {mode: DISABLE}}}}`), tc.drNS)
			if err != nil {
				t.Fatal(err)
			}
			if f["inMesh"] != tc.inMesh || f["hostNamespaceMode"] != tc.mode || f["outsideMesh"] != tc.reason {
				t.Errorf("inMesh %v, hostNamespaceMode %q, outsideMesh %q; want %v, %q, %q", f["inMesh"], f["hostNamespaceMode"], f["outsideMesh"], tc.inMesh, tc.mode, tc.reason)
			}
		})
	}
	t.Run("--default-namespace-mode none puts unknown namespaces outside", func(t *testing.T) {
		cfg := NewConfig()
		cfg.DefaultNamespaceMode = ModeNone
		cc, err := cfg.compile()
		if err != nil {
			t.Fatal(err)
		}
		e := &engine{cfg: cc, ctx: emptyContext{}}
		f, err := e.destinationRuleFacts(decode(t, `{spec: {host: orders.warehouse.svc.cluster.local, trafficPolicy: {tls: {mode: DISABLE}}}}`), "shop")
		if err != nil || f["inMesh"] != false {
			t.Errorf("inMesh %v, err %v; want false", f["inMesh"], err)
		}
	})
}

func TestPeerAuthenticationConflicts(t *testing.T) {
	const ns = "foo"
	a := pa(t, ns, "a", "2025-01-01T00:00:00Z", "STRICT", false)
	b := pa(t, ns, "b", "2025-02-01T00:00:00Z", "PERMISSIVE", false)
	web := pa(t, ns, "web", "2025-01-01T00:00:00Z", "STRICT", true) // app=web
	other := decode(t, `{apiVersion: security.istio.io/v1, kind: PeerAuthentication, metadata: {namespace: foo, name: db}, spec: {selector: {matchLabels: {app: db}}}}`)
	webV2 := decode(t, `{apiVersion: security.istio.io/v1, kind: PeerAuthentication, metadata: {namespace: foo, name: web-v2}, spec: {selector: {matchLabels: {app: web, version: v2}}}}`)
	elsewhere := pa(t, "bar", "c", "2024-01-01T00:00:00Z", "DISABLE", false)
	e := testEngine(t, snapshotOf(a, b, web, other, webV2, elsewhere))
	tests := []struct {
		name  string
		obj   Object
		scope string
		want  []string
	}{
		{"a younger namespace-wide policy competes with the older", b, "namespace", []string{`PeerAuthentication "a" is also namespace-wide in namespace "foo", and Istio applies only the older of the two, "a"`}},
		{"the stored version of the object under review is not a competitor", a, "namespace", []string{`PeerAuthentication "b" is also namespace-wide in namespace "foo", and Istio applies only the older of the two, "a"`}},
		{"a new policy competes with every stored one and wins only if created first", pa(t, ns, "new", "", "STRICT", false), "namespace",
			[]string{`PeerAuthentication "a" is also namespace-wide in namespace "foo", and Istio applies only the oldest, "a"`, `PeerAuthentication "b" is also namespace-wide in namespace "foo", and Istio applies only the oldest, "a"`}},
		{"overlapping selectors compete, disjoint ones do not", web, "workload", []string{`PeerAuthentication "web-v2" (selector app=web,version=v2) may select the same pods, which get only the older of the two, "web"`}},
		{"ignored policies compete with nothing", web, "ignored", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := e.peerAuthenticationConflicts(tc.obj, ns, tc.scope)
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("[%d] = %q, want %q", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestRuleAnyPeer(t *testing.T) {
	tests := []struct {
		name, rule, want string
	}{
		{"principals * is any peer", `{from: [{source: {principals: ["*"]}}]}`, `r (from[0].source.principals ["*"])`},
		{"a trust-domain prefix is any peer", `{from: [{source: {principals: ["cluster.local/ns/*"]}}]}`, `r (from[0].source.principals ["cluster.local/ns/*"])`},
		{"trustDomains * is any peer", `{from: [{source: {trustDomains: ["*"], ipBlocks: ["0.0.0.0/0"]}}]}`, `r (from[0].source.trustDomains ["*"])`},
		{"a presence condition on the peer is any peer", `{when: [{key: source.namespace, values: ["*"]}]}`, `r (when[0] source.namespace ["*"])`},
		{"a named namespace narrows", `{from: [{source: {namespaces: ["prod"]}}]}`, ``},
		{"a namespace prefix narrows", `{from: [{source: {namespaces: ["prod-*"]}}]}`, ``},
		{"a not* list beside the wildcard narrows", `{from: [{source: {principals: ["*"], notNamespaces: ["dev"]}}]}`, ``},
		{"a path narrows", `{from: [{source: {principals: ["*"]}}], to: [{operation: {paths: ["/metrics"]}}]}`, ``},
		{"a condition narrows", `{from: [{source: {principals: ["*"]}}], when: [{key: "request.headers[x-a]", values: ["b"]}]}`, ``},
		{"an operation that matches everything does not narrow", `{from: [{source: {principals: ["*"]}}], to: [{operation: {methods: ["*"]}}]}`, `r (from[0].source.principals ["*"])`},
		{"a request principal is not a peer", `{from: [{source: {requestPrincipals: ["*"]}}]}`, ``},
		{"an allow-all rule is MESH0020's", `{}`, ``},
		{"one narrow and one any-peer source admit any peer", `{from: [{source: {namespaces: ["prod"]}}, {source: {namespaces: ["*"]}}]}`, `r (from[1].source.namespaces ["*"])`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ruleAnyPeer(decode(t, tc.rule), "r"); got != tc.want {
				t.Errorf("ruleAnyPeer(%s) = %q, want %q", tc.rule, got, tc.want)
			}
		})
	}
}

func TestDenyPositiveMatches(t *testing.T) {
	tests := []struct {
		name, rule string
		want       int
	}{
		{"positive paths", `{to: [{operation: {paths: ["/admin"]}}]}`, 1},
		{"positive hosts and paths in two operations", `{to: [{operation: {hosts: ["a.example"]}}, {operation: {paths: ["/x*"]}}]}`, 2},
		{"paths with notPaths", `{to: [{operation: {paths: ["/admin/*"], notPaths: ["/admin/ok"]}}]}`, 0},
		{"paths that match everything", `{to: [{operation: {paths: ["/*"]}}]}`, 0},
		{"methods only", `{to: [{operation: {methods: ["DELETE"]}}]}`, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := denyPositiveMatches(decode(t, tc.rule), "r"); len(got) != tc.want {
				t.Errorf("got %v, want %d items", got, tc.want)
			}
		})
	}
}

func TestTLSNoCA(t *testing.T) {
	tests := []struct {
		name, tls, mode string
		selector        bool
		want            string
	}{
		{"SIMPLE without a CA", `{mode: SIMPLE}`, "SIMPLE", false, "without caCertificates"},
		{"MUTUAL with a CA file", `{mode: MUTUAL, caCertificates: /etc/ca.pem}`, "MUTUAL", false, ""},
		{"a Secret with a workloadSelector", `{mode: MUTUAL, credentialName: c}`, "MUTUAL", true, ""},
		{"a Secret without a workloadSelector", `{mode: SIMPLE, credentialName: c}`, "SIMPLE", false, "sidecars ignore the tls block"},
		{"a configmap CA without a workloadSelector", `{mode: SIMPLE, credentialName: "configmap://ca"}`, "SIMPLE", false, ""},
		{"insecureSkipVerify is MESH0012's", `{mode: SIMPLE, insecureSkipVerify: true}`, "SIMPLE", false, ""},
		{"ISTIO_MUTUAL uses Istio's CA", `{mode: ISTIO_MUTUAL}`, "ISTIO_MUTUAL", false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tlsNoCAText(decode(t, tc.tls), tc.mode, "at", tc.selector)
			if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
				t.Errorf("tlsNoCAText(%s) = %q, want %q", tc.tls, got, tc.want)
			}
		})
	}
}

func TestJWTRuleFacts(t *testing.T) {
	tests := []struct {
		name, spec       string
		plaintext, leaks int
		err              string
	}{
		{"https jwksUri", `{jwtRules: [{issuer: a, jwksUri: "https://a/keys"}]}`, 0, 0, ""},
		{"http jwksUri", `{jwtRules: [{issuer: a, jwksUri: "http://a/keys"}]}`, 1, 0, ""},
		{"the jwks_uri alias in upper case", `{jwtRules: [{issuer: a, jwks_uri: "HTTP://a/keys"}]}`, 1, 0, ""},
		{"discovery from an http issuer", `{jwtRules: [{issuer: "http://a"}]}`, 1, 0, ""},
		{"inline keys are not fetched", `{jwtRules: [{issuer: "http://a", jwks: "{}"}]}`, 0, 0, ""},
		{"an issuer that is no URL is not fetched", `{jwtRules: [{issuer: "testing@secure.istio.io"}]}`, 0, 0, ""},
		{"every leak", `{jwtRules: [{issuer: a, forwardOriginalToken: true, outputPayloadToHeader: x, fromParams: [t]}]}`, 0, 3, ""},
		{"forwardOriginalToken false", `{jwtRules: [{issuer: a, forwardOriginalToken: false, fromParams: []}]}`, 0, 0, ""},
		{"a jwksUri of the wrong type", `{jwtRules: [{jwksUri: [http://a]}]}`, 0, 0, "spec.jwtRules[0].jwksUri: expected string, got array"},
		{"fromParams of the wrong type", `{jwtRules: [{fromParams: token}]}`, 0, 0, "spec.jwtRules[0].fromParams: expected array, got string"},
		{"a jwtRule that is no object", `{jwtRules: [x]}`, 0, 0, "spec.jwtRules[0]: expected object, got string"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, l, err := jwtRuleFacts(decode(t, tc.spec), nil, nil)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || len(p) != tc.plaintext || len(l) != tc.leaks {
				t.Errorf("plaintext %v, leaks %v, err %v; want %d, %d", p, l, err, tc.plaintext, tc.leaks)
			}
		})
	}
}

// TestAuditOnlyRulesSkippedAtAdmission checks that MESH0008 reports the root
// namespace of an audit and never an admission request.
func TestAuditOnlyRulesSkippedAtAdmission(t *testing.T) {
	cat, err := DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	r, ok := cat.Rule("MESH0008")
	if !ok || !r.AuditOnly {
		t.Fatalf("MESH0008 must be loaded as audit-only: %v", r)
	}
	eng, err := New(cat, nil)
	if err != nil {
		t.Fatal(err)
	}
	root := decode(t, `{apiVersion: v1, kind: Namespace, metadata: {name: istio-system}}`)
	has := func(admission bool) bool {
		fs, err := eng.Evaluate(context.Background(), &Request{Object: root, Admission: admission, Context: NewSnapshot()})
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fs {
			if f.Code == "MESH0008" {
				return true
			}
		}
		return false
	}
	if !has(false) {
		t.Error("an audit of the root namespace without a mesh-wide policy must report MESH0008")
	}
	if has(true) {
		t.Error("admission must not evaluate MESH0008")
	}
	if _, err := ParseRule("MESH9999-x", []byte(strings.Replace(mesh0008Policy(t), "meshguard.io/audit-only: \"true\"", "meshguard.io/audit-only: \"yes\"", 1))); err == nil || !strings.Contains(err.Error(), "meshguard.io/audit-only") {
		t.Errorf("a malformed audit-only annotation must be an error naming it, got %v", err)
	}
}

func mesh0008Policy(t *testing.T) string {
	t.Helper()
	b, err := embedded.ReadFile("catalog/MESH0008-pa-mesh-strict-missing/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(strings.ReplaceAll(string(b), "MESH0008-pa-mesh-strict-missing", "MESH9999-x"), "meshguard.io/code: MESH0008", "meshguard.io/code: MESH9999")
}
