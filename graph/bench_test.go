package graph

import (
	"fmt"
	"testing"

	"github.com/meshguard/meshguard/rules"
)

// syntheticMesh builds namespaces x perNS workloads, each a Deployment with
// a Service on 8080, in sidecar namespaces under mesh-wide STRICT, each
// namespace with allow-nothing, a default-deny NetworkPolicy and an
// ingress allow from the next namespace; each workload with an ALLOW policy
// naming two callers' principals (one path-restricted) and a DENY policy on
// a path; every fifth namespace ambient.
func syntheticMesh(namespaces, perNS int) []rules.Object {
	var objs []rules.Object
	objs = append(objs, rules.Object{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": "istio-system"}},
		rules.Object{"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication", "metadata": map[string]any{"name": "default", "namespace": "istio-system"},
			"spec": map[string]any{"mtls": map[string]any{"mode": "STRICT"}}})
	for n := 0; n < namespaces; n++ {
		ns := fmt.Sprintf("team-%03d", n)
		labels := map[string]any{"istio-injection": "enabled", "team": ns}
		if n%5 == 4 {
			labels = map[string]any{"istio.io/dataplane-mode": "ambient", "team": ns}
		}
		next := fmt.Sprintf("team-%03d", (n+1)%namespaces)
		objs = append(objs,
			rules.Object{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": ns, "labels": labels}},
			rules.Object{"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy", "metadata": map[string]any{"name": "allow-nothing", "namespace": ns}, "spec": map[string]any{}},
			rules.Object{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": map[string]any{"name": "default-deny", "namespace": ns},
				"spec": map[string]any{"podSelector": map[string]any{}, "policyTypes": []any{"Ingress", "Egress"}}},
			rules.Object{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": map[string]any{"name": "allow-neighbours", "namespace": ns},
				"spec": map[string]any{"podSelector": map[string]any{}, "policyTypes": []any{"Ingress", "Egress"},
					"ingress": []any{map[string]any{"from": []any{
						map[string]any{"namespaceSelector": map[string]any{"matchLabels": map[string]any{"team": next}}},
						map[string]any{"podSelector": map[string]any{}},
					}, "ports": []any{map[string]any{"port": "http"}}}},
					"egress": []any{map[string]any{}}}},
		)
		for w := 0; w < perNS; w++ {
			app := fmt.Sprintf("svc-%02d", w)
			caller1 := fmt.Sprintf("cluster.local/ns/%s/sa/svc-%02d", next, (w+1)%perNS)
			caller2 := fmt.Sprintf("cluster.local/ns/%s/sa/svc-%02d", ns, (w+2)%perNS)
			objs = append(objs,
				rules.Object{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": map[string]any{"name": app, "namespace": ns},
					"spec": map[string]any{"template": map[string]any{
						"metadata": map[string]any{"labels": map[string]any{"app": app, "version": "v1"}},
						"spec": map[string]any{"serviceAccountName": app, "containers": []any{map[string]any{"name": "app", "image": "example/app:1",
							"ports": []any{map[string]any{"name": "http", "containerPort": 8080.0}}}}},
					}}},
				rules.Object{"apiVersion": "v1", "kind": "Service", "metadata": map[string]any{"name": app, "namespace": ns},
					"spec": map[string]any{"selector": map[string]any{"app": app}, "ports": []any{map[string]any{"port": 80.0, "targetPort": "http"}}}},
				rules.Object{"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy", "metadata": map[string]any{"name": app, "namespace": ns},
					"spec": map[string]any{"selector": map[string]any{"matchLabels": map[string]any{"app": app}}, "rules": []any{
						map[string]any{"from": []any{map[string]any{"source": map[string]any{"principals": []any{caller1}}}}},
						map[string]any{"from": []any{map[string]any{"source": map[string]any{"principals": []any{caller2}}}}, "to": []any{map[string]any{"operation": map[string]any{"paths": []any{"/api/*"}}}}},
					}}},
				rules.Object{"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy", "metadata": map[string]any{"name": app + "-deny-admin", "namespace": ns},
					"spec": map[string]any{"action": "DENY", "selector": map[string]any{"matchLabels": map[string]any{"app": app}}, "rules": []any{
						map[string]any{"to": []any{map[string]any{"operation": map[string]any{"paths": []any{"/admin*"}}}}},
					}}},
			)
		}
	}
	return objs
}

// BenchmarkGraph2000Workloads computes the graph of 2,000 workloads (100
// namespaces of 20): about 4 million edges.
func BenchmarkGraph2000Workloads(b *testing.B) {
	objs := syntheticMesh(100, 20)
	eng := testEngine(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		g, err := Compute(objs, Options{Engine: eng})
		if err != nil {
			b.Fatal(err)
		}
		if len(g.Edges) < 2000*2000 {
			b.Fatalf("%d edges", len(g.Edges))
		}
	}
}

// BenchmarkGraph200Workloads is the same mesh at a tenth of the size.
func BenchmarkGraph200Workloads(b *testing.B) {
	objs := syntheticMesh(10, 20)
	eng := testEngine(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Compute(objs, Options{Engine: eng}); err != nil {
			b.Fatal(err)
		}
	}
}
