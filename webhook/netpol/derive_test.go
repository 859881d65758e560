package netpol

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/graph"
	"github.com/meshguard/meshguard/rules"
)

// authzObjects: two sidecar namespaces (front, back), an ambient one (amb)
// and a plain one; STRICT mesh-wide except front, which is PERMISSIVE.
// back/api allows front/web (conditionally, GET only) and back/worker in
// full; back/db allows a principal of a namespace nobody runs (ghost) and
// namespaces matching "team-*"; front/web admits anyone on 8080 (no from:
// plaintext callers included under PERMISSIVE); amb/cache allows back/api.
var authzObjects = `apiVersion: v1
kind: Namespace
metadata: {name: istio-system}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
---
apiVersion: v1
kind: Namespace
metadata: {name: front, labels: {istio-injection: enabled}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: front}
spec: {mtls: {mode: PERMISSIVE}}
---
apiVersion: v1
kind: Namespace
metadata: {name: back, labels: {istio-injection: enabled}}
---
apiVersion: v1
kind: Namespace
metadata: {name: amb, labels: {istio.io/dataplane-mode: ambient}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-nothing, namespace: back}
spec: {}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-nothing, namespace: amb}
spec: {}
` + deployments + `
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: api, namespace: back}
spec:
  selector: {matchLabels: {app: api}}
  rules:
  - from: [{source: {principals: [cluster.local/ns/front/sa/web]}}]
    to: [{operation: {methods: [GET]}}]
  - from: [{source: {principals: [cluster.local/ns/back/sa/worker]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: db, namespace: back}
spec:
  selector: {matchLabels: {app: db}}
  rules:
  - from: [{source: {principals: [cluster.local/ns/ghost/sa/reporter]}}]
  - from: [{source: {namespaces: ["team-*"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: web, namespace: front}
spec:
  selector: {matchLabels: {app: web}}
  rules:
  - to: [{operation: {ports: ["8080"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: cache, namespace: amb}
spec:
  selector: {matchLabels: {app: cache}}
  rules:
  - from: [{source: {principals: [cluster.local/ns/back/sa/api]}}]`

var deployments = func() string {
	var b strings.Builder
	for _, w := range []struct{ ns, app string }{{"front", "web"}, {"back", "api"}, {"back", "worker"}, {"back", "db"}, {"amb", "cache"}} {
		fmt.Fprintf(&b, `---
apiVersion: apps/v1
kind: Deployment
metadata: {name: %[2]s, namespace: %[1]s}
spec:
  selector: {matchLabels: {app: %[2]s}}
  template:
    metadata: {labels: {app: %[2]s, pod-template-hash: abc}}
    spec:
      serviceAccountName: %[2]s
      containers: [{name: app, image: example/%[2]s:1, ports: [{name: http, containerPort: 8080}]}]
---
apiVersion: v1
kind: Service
metadata: {name: %[2]s, namespace: %[1]s}
spec:
  selector: {app: %[2]s}
  ports: [{port: 80, targetPort: http}]
`, w.ns, w.app)
	}
	return strings.TrimSuffix(strings.TrimPrefix(b.String(), "---\n"), "\n")
}()

func testEngine(t testing.TB) *rules.Engine {
	t.Helper()
	cat, err := rules.DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	ev, err := rules.New(cat, rules.NewConfig())
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// policyLines describes derived policies one line per rule: "ns/name
// selector: in|out peer -> ports".
func policyLines(nps []*networkingv1.NetworkPolicy) []string {
	var out []string
	peerText := func(p networkingv1.NetworkPolicyPeer) string {
		var parts []string
		if p.IPBlock != nil {
			parts = append(parts, "ip "+p.IPBlock.CIDR)
		}
		if p.NamespaceSelector != nil {
			sel := yamlLine(p.NamespaceSelector.MatchLabels)
			for _, r := range p.NamespaceSelector.MatchExpressions {
				sel += r.Key + " " + string(r.Operator)
			}
			parts = append(parts, "ns "+sel)
		}
		if p.PodSelector != nil {
			sel := yamlLine(p.PodSelector.MatchLabels)
			if len(p.PodSelector.MatchExpressions) != 1 || p.PodSelector.MatchExpressions[0].Key != LabelQuarantined {
				sel += " (quarantined pods not excluded)"
			}
			parts = append(parts, "pods "+sel)
		}
		return strings.Join(parts, " ")
	}
	portText := func(ps []networkingv1.NetworkPolicyPort) string {
		var s []string
		for _, p := range ps {
			s = append(s, p.Port.String())
		}
		return strings.Join(s, ",")
	}
	for _, np := range nps {
		head := np.Namespace + "/" + np.Name + " " + yamlLine(np.Spec.PodSelector.MatchLabels)
		if len(np.Spec.PodSelector.MatchExpressions) != 1 || np.Spec.PodSelector.MatchExpressions[0].Key != LabelQuarantined {
			out = append(out, head+": does not exclude quarantined pods")
		}
		for _, r := range np.Spec.Ingress {
			for _, p := range r.From {
				out = append(out, head+": in "+peerText(p)+" -> "+portText(r.Ports))
			}
		}
		for _, r := range np.Spec.Egress {
			for _, p := range r.To {
				out = append(out, head+": out "+peerText(p)+" -> "+portText(r.Ports))
			}
		}
	}
	sort.Strings(out)
	return out
}

// TestIntentFromAuthz derives the AuthorizationPolicy allows: pairs across
// namespaces, stable pod labels, L7 conditions noted, unmatched sources
// opened to their namespace (or every namespace), plaintext callers to
// every address, nothing for ambient destinations or for namespaces not
// opted in, and under the whole managed set exactly the edges the ALLOW
// policies authorize stay open.
func TestIntentFromAuthz(t *testing.T) {
	objs := parseObjects(t, authzObjects)
	c := NewConfig()
	c.FromAuthz = true
	in, err := c.Intent(objs, IntentOptions{Engine: testEngine(t), FromAuthz: c.FromAuthzEnabled()})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"back/mesh-allow-authz-from-api app=api: out ns kubernetes.io/metadata.name=amb pods app=cache -> 8080",
		"back/mesh-allow-authz-from-api app=api: out ns kubernetes.io/metadata.name=front pods app=web -> 8080",
		"back/mesh-allow-authz-from-db app=db: out ns kubernetes.io/metadata.name=front pods app=web -> 8080",
		"back/mesh-allow-authz-from-worker app=worker: out ns kubernetes.io/metadata.name=back pods app=api -> 8080",
		"back/mesh-allow-authz-from-worker app=worker: out ns kubernetes.io/metadata.name=front pods app=web -> 8080",
		"back/mesh-allow-authz-to-api app=api: in ns kubernetes.io/metadata.name=back pods app=worker -> 8080",
		"back/mesh-allow-authz-to-api app=api: in ns kubernetes.io/metadata.name=front pods app=web -> 8080",
		// Sources no workload matches: their namespace, or every mesh namespace.
		"back/mesh-allow-authz-to-db app=db: in ns istio-injection=enabled -> 8080",
		"back/mesh-allow-authz-to-db app=db: in ns istio.io/dataplane-mode=ambient -> 8080",
		"back/mesh-allow-authz-to-db app=db: in ns istio.io/rev Exists -> 8080",
		"back/mesh-allow-authz-to-db app=db: in ns kubernetes.io/metadata.name=ghost -> 8080",
		"back/mesh-allow-authz-to-db app=db: in ns kubernetes.io/metadata.name=istio-ingress -> 8080",
		"front/mesh-allow-authz-from-web app=web: out ns kubernetes.io/metadata.name=back pods app=api -> 8080",
		// Anyone, plaintext included (PERMISSIVE): every mesh namespace (never
		// every address), and no per-caller peers from mesh namespaces.
		"front/mesh-allow-authz-to-web app=web: in ns istio-injection=enabled -> 8080",
		"front/mesh-allow-authz-to-web app=web: in ns istio.io/dataplane-mode=ambient -> 8080",
		"front/mesh-allow-authz-to-web app=web: in ns istio.io/rev Exists -> 8080",
		"front/mesh-allow-authz-to-web app=web: in ns kubernetes.io/metadata.name=istio-ingress -> 8080",
	}
	if got := policyLines(in.Policies); !slices.Equal(got, want) {
		t.Errorf("derived:\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	for _, np := range in.Policies {
		if np.Namespace == "amb" {
			t.Errorf("derived %s in an ambient namespace (its HBONE allow admits mesh callers)", np.Name)
		}
		if !strings.Contains(np.Annotations[AnnotationIntent], "AuthorizationPolicy/") {
			t.Errorf("%s: derived-from %q names no AuthorizationPolicy", np.Name, np.Annotations[AnnotationIntent])
		}
	}
	for _, w := range []string{
		`AuthorizationPolicy back/api allows Deployment/front/web only some requests to Deployment/back/api on port 8080 (allowed when back/api rules[0]: methods ["GET"])`,
		`AuthorizationPolicy back/db allows namespace "team-*", which matches no workload meshguard sees: its pods and ports are opened to every mesh namespace`,
		`AuthorizationPolicy back/db allows principal "cluster.local/ns/ghost/sa/reporter", which matches no workload meshguard sees: its pods and ports are opened to namespace ghost`,
		`AuthorizationPolicy front/web allows any caller, without a mesh identity too, to Deployment/front/web on port 8080: the derived NetworkPolicy admits every mesh namespace on that port; callers outside the mesh stay cut`,
	} {
		if !slices.ContainsFunc(in.Notes, func(n string) bool { return strings.HasPrefix(n, w) }) {
			t.Errorf("no note starting %q in\n  %s", w, strings.Join(in.Notes, "\n  "))
		}
	}
	if n := in.NotesByNamespace["back"]; len(n) != 3 {
		t.Errorf("notes of back: %q, want the three about back's policies", n)
	}
	// meshguard's own output never trips its NetworkPolicy rules.
	var docs []audit.Document
	for _, np := range in.Policies {
		o, err := withPolicies(nil, []*networkingv1.NetworkPolicy{np})
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, audit.Document{Object: o[0]})
	}
	rep := audit.Run(context.Background(), testEngine(t), docs, audit.Options{})
	if rep.Evaluated != len(docs) {
		t.Errorf("evaluated %d of %d policies", rep.Evaluated, len(docs))
	}
	for _, f := range rep.Findings {
		if f.Code >= "MESH0210" && f.Code <= "MESH0214" {
			t.Errorf("%s fires on derived %s: %s", f.Code, f.Object, f.Message)
		}
	}

	// Never more: every edge the managed set leaves open was allowed
	// before; and every edge an explicit ALLOW authorizes between
	// sidecar-profile workloads stays open.
	eng := testEngine(t)
	base, err := graph.Compute(objs, graph.Options{Engine: eng})
	if err != nil {
		t.Fatal(err)
	}
	managed, _, err := c.RenderAll(objs, IntentOptions{Engine: eng})
	if err != nil {
		t.Fatal(err)
	}
	withAll, err := withPolicies(objs, managed)
	if err != nil {
		t.Fatal(err)
	}
	after, err := graph.Compute(withAll, graph.Options{Engine: eng})
	if err != nil {
		t.Fatal(err)
	}
	before := map[string]graph.Edge{}
	for _, e := range base.Edges {
		before[fmt.Sprintf("%s -> %s:%d", base.Node(e.From).ID, base.Node(e.To).ID, e.Port)] = e
	}
	open := map[string]bool{}
	for _, e := range after.Edges {
		k := fmt.Sprintf("%s -> %s:%d", after.Node(e.From).ID, after.Node(e.To).ID, e.Port)
		if e.Verdict.Allowed() {
			open[k] = true
			if !before[k].Verdict.Allowed() {
				t.Errorf("%s is open under the managed set but was %s before", k, before[k].Verdict)
			}
		}
	}
	sidecarNS := map[string]bool{"front": true, "back": true}
	for k, e := range before {
		src, dst := base.Node(e.From), base.Node(e.To)
		if e.Verdict.Allowed() && len(e.Why.Allowing) > 0 && src.Kind == graph.NodeWorkload && sidecarNS[src.Namespace] && sidecarNS[dst.Namespace] && !open[k] {
			t.Errorf("%s is authorized by %v but cut by the managed set", k, e.Why.Allowing)
		}
	}
	// What stays cut is reported: the sidecar <-> ambient edges, and the
	// callers outside the mesh.
	wantCut := map[string][]string{
		"amb":   {"Deployment/amb/cache -> Deployment/front/web:8080", "Deployment/back/api -> Deployment/amb/cache:8080"},
		"back":  {"Deployment/back/api -> Deployment/amb/cache:8080"},
		"front": {"Deployment/amb/cache -> Deployment/front/web:8080", "outside -> Deployment/front/web:8080"},
	}
	if len(in.Cut) != len(wantCut) {
		t.Errorf("cut %v, want %v", in.Cut, wantCut)
	}
	for ns, w := range wantCut {
		if !slices.Equal(in.Cut[ns], w) {
			t.Errorf("cut in %s: %v, want %v", ns, in.Cut[ns], w)
		}
	}
}

// TestIntentFromAuthzNamespaces: only the listed destination namespaces'
// AuthorizationPolicies are derived (their callers' egress included).
func TestIntentFromAuthzNamespaces(t *testing.T) {
	c := NewConfig()
	c.FromAuthzNamespaces = []string{"back"}
	in, err := c.Intent(parseObjects(t, authzObjects), IntentOptions{Engine: testEngine(t), FromAuthz: c.FromAuthzEnabled()})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, np := range in.Policies {
		names = append(names, np.Namespace+"/"+np.Name)
	}
	want := []string{"back/mesh-allow-authz-from-worker", "back/mesh-allow-authz-to-api", "back/mesh-allow-authz-to-db", "front/mesh-allow-authz-from-web"}
	if !slices.Equal(names, want) {
		t.Errorf("derived %v, want %v", names, want)
	}
}

// TestIntentMaxWorkloads: above the bound only the gateway allows are
// derived, and the result says why the rest is unknown.
func TestIntentMaxWorkloads(t *testing.T) {
	c := NewConfig()
	c.FromAuthz = true
	objs := append(parseObjects(t, authzObjects), parseObjects(t, `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: front}
spec: {selector: {istio: ingressgateway}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: front}
spec:
  gateways: [gw]
  http: [{route: [{destination: {host: web}}]}]`)...)
	in, err := c.Intent(objs, IntentOptions{Engine: testEngine(t), FromAuthz: c.FromAuthzEnabled(), MaxWorkloads: 4})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(in.Skipped, "5 workloads exceed the bound of 4") || len(in.Cut) != 0 {
		t.Errorf("skipped %q, cut %v", in.Skipped, in.Cut)
	}
	if len(in.Policies) != 1 || in.Policies[0].Name != "mesh-allow-gateway-to-web" {
		t.Errorf("derived %d policies, want only the gateway allow", len(in.Policies))
	}
}

// TestSourceNamespace: the namespace an ALLOW source pattern pins.
func TestSourceNamespace(t *testing.T) {
	for _, tc := range []struct {
		field, pattern, ns string
		ok                 bool
	}{
		{"principal", "cluster.local/ns/a/sa/b", "a", true},
		{"principal", "*/ns/a/sa/b", "a", true},
		{"principal", "cluster.local/ns/a/sa/*", "a", true},
		{"principal", "cluster.local/ns/a*", "", false},
		{"principal", "*", "", false},
		{"namespace", "a", "a", true},
		{"namespace", "team-*", "", false},
		{"serviceAccount", "a/b", "a", true},
		{"serviceAccount", "b", "pol", true},
	} {
		ns, ok := rules.AuthzSource{Field: tc.field, Pattern: tc.pattern, PolicyNamespace: "pol"}.Namespace()
		if ns != tc.ns || ok != tc.ok {
			t.Errorf("%s %q: %q %v, want %q %v", tc.field, tc.pattern, ns, ok, tc.ns, tc.ok)
		}
	}
}

// TestIntentManyCallers: a destination more than maxCallerPeers workloads
// may call admits the mesh namespaces instead of naming each caller.
func TestIntentManyCallers(t *testing.T) {
	var b strings.Builder
	b.WriteString(`apiVersion: v1
kind: Namespace
metadata: {name: many, labels: {istio-injection: enabled}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: api, namespace: many}
spec:
  selector: {matchLabels: {app: api}}
  rules: [{from: [{source: {principals: ["cluster.local/ns/many/sa/*"]}}]}]
`)
	for i := 0; i <= maxCallerPeers+1; i++ {
		app := "api"
		if i > 0 {
			app = fmt.Sprintf("c-%02d", i)
		}
		fmt.Fprintf(&b, `---
apiVersion: apps/v1
kind: Deployment
metadata: {name: %[1]s, namespace: many}
spec:
  template:
    metadata: {labels: {app: %[1]s}}
    spec:
      serviceAccountName: %[1]s
      containers: [{name: app, image: example/app:1, ports: [{containerPort: 8080}]}]
`, app)
	}
	c := NewConfig()
	c.FromAuthz = true
	in, err := c.Intent(parseObjects(t, b.String()), IntentOptions{Engine: testEngine(t), FromAuthz: c.FromAuthzEnabled()})
	if err != nil {
		t.Fatal(err)
	}
	var to *networkingv1.NetworkPolicy
	from := 0
	for _, np := range in.Policies {
		switch {
		case np.Name == "mesh-allow-authz-to-api":
			to = np
		case strings.HasPrefix(np.Name, PrefixAuthzFrom):
			from++
		}
	}
	if to == nil {
		t.Fatal("no mesh-allow-authz-to-api")
	}
	got := policyLines([]*networkingv1.NetworkPolicy{to})
	want := []string{
		"many/mesh-allow-authz-to-api app=api: in ns istio-injection=enabled -> 8080",
		"many/mesh-allow-authz-to-api app=api: in ns istio.io/dataplane-mode=ambient -> 8080",
		"many/mesh-allow-authz-to-api app=api: in ns istio.io/rev Exists -> 8080",
		"many/mesh-allow-authz-to-api app=api: in ns kubernetes.io/metadata.name=istio-ingress -> 8080",
	}
	if !slices.Equal(got, want) {
		t.Errorf("mesh-allow-authz-to-api:\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	if from != maxCallerPeers+1 {
		t.Errorf("%d egress policies, want one per caller (%d)", from, maxCallerPeers+1)
	}
	if !slices.ContainsFunc(in.Notes, func(n string) bool { return strings.Contains(n, "may be called by 65 workloads") }) {
		t.Errorf("no note about the collapse: %q", in.Notes)
	}
}

// TestIntentCutListBounded: a namespace without AuthorizationPolicies has
// every edge allowed by default and cut by default deny; the Intent counts
// them all and lists MaxListedEdges, sorted.
func TestIntentCutListBounded(t *testing.T) {
	objs := intentMeshWith(1, 12, false)
	c := NewConfig()
	in, err := c.Intent(objs, IntentOptions{Engine: testEngine(t)})
	if err != nil {
		t.Fatal(err)
	}
	// 12 destinations, each reached by the 11 others and the outside node
	// (the gateway's edge to w-00 is kept open by its route).
	if got, want := in.CutCount["app-000"], 12*12-1; got != want {
		t.Errorf("CutCount = %d, want %d", got, want)
	}
	if l := in.Cut["app-000"]; len(l) != MaxListedEdges || !slices.IsSorted(l) {
		t.Errorf("Cut lists %d edges (sorted %v), want %d", len(l), slices.IsSorted(l), MaxListedEdges)
	}
}

// TestIntentLongWorkloadName: a workload whose name is as long as a policy
// name may be still gets valid, distinct policy names.
func TestIntentLongWorkloadName(t *testing.T) {
	long := func(c string) string { return strings.Repeat(c, 240) }
	stream := `apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio-injection: enabled}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: api, namespace: shop}
spec:
  selector: {matchLabels: {app: api}}
  rules: [{from: [{source: {principals: ["cluster.local/ns/shop/sa/caller"]}}]}]`
	for _, w := range []struct{ name, app, sa string }{{long("a") + "-x", "api", "api"}, {long("a") + "-y", "caller", "caller"}} {
		stream += fmt.Sprintf(`
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: %s, namespace: shop}
spec:
  template:
    metadata: {labels: {app: %s}}
    spec:
      serviceAccountName: %s
      containers: [{name: app, image: example/app:1, ports: [{containerPort: 8080}]}]`, w.name, w.app, w.sa)
	}
	c := NewConfig()
	c.FromAuthz = true
	in, err := c.Intent(parseObjects(t, stream), IntentOptions{Engine: testEngine(t), FromAuthz: c.FromAuthzEnabled()})
	if err != nil {
		t.Fatal(err)
	}
	if len(in.Policies) != 2 {
		t.Fatalf("derived %d policies, want the pair", len(in.Policies))
	}
	for _, np := range in.Policies {
		if errs := validation.IsDNS1123Subdomain(np.Name); len(errs) > 0 {
			t.Errorf("%s: %v", np.Name, errs)
		}
	}
	if in.Policies[0].Name == in.Policies[1].Name {
		t.Error("two policies share a name")
	}
}
