package netpol

import (
	"fmt"
	"testing"

	"github.com/meshguard/meshguard/rules"
)

// intentMesh builds namespaces x perNS workloads in sidecar namespaces
// under mesh-wide STRICT, each namespace with allow-nothing and an ingress
// Gateway route to its first Service, each workload a Deployment with a
// Service on a named port and an ALLOW policy for two callers (one in the
// next namespace, one in its own with a path condition).
func intentMesh(namespaces, perNS int) []rules.Object { return intentMeshWith(namespaces, perNS, true) }

// intentMeshWith builds intentMesh, without any AuthorizationPolicy when
// authz is false (every edge allowed by default, and cut by default deny).
func intentMeshWith(namespaces, perNS int, authz bool) []rules.Object {
	obj := func(apiVersion, kind, ns, name string, spec map[string]any) rules.Object {
		md := map[string]any{"name": name}
		if ns != "" {
			md["namespace"] = ns
		}
		return rules.Object{"apiVersion": apiVersion, "kind": kind, "metadata": md, "spec": spec}
	}
	objs := []rules.Object{
		obj("v1", "Namespace", "", "istio-system", nil),
		obj("security.istio.io/v1", "PeerAuthentication", "istio-system", "default", map[string]any{"mtls": map[string]any{"mode": "STRICT"}}),
		obj("networking.istio.io/v1", "Gateway", "istio-ingress", "public", map[string]any{"selector": map[string]any{"istio": "ingressgateway"}}),
	}
	for n := 0; n < namespaces; n++ {
		ns := fmt.Sprintf("app-%03d", n)
		next := fmt.Sprintf("app-%03d", (n+1)%namespaces)
		nsObj := obj("v1", "Namespace", "", ns, nil)
		nsObj["metadata"].(map[string]any)["labels"] = map[string]any{"istio-injection": "enabled"}
		objs = append(objs, nsObj,
			obj("networking.istio.io/v1", "VirtualService", ns, "front", map[string]any{"gateways": []any{"istio-ingress/public"},
				"http": []any{map[string]any{"route": []any{map[string]any{"destination": map[string]any{"host": "w-00"}}}}}}),
		)
		if authz {
			objs = append(objs, obj("security.istio.io/v1", "AuthorizationPolicy", ns, "allow-nothing", map[string]any{}))
		}
		for w := 0; w < perNS; w++ {
			app := fmt.Sprintf("w-%02d", w)
			objs = append(objs,
				obj("apps/v1", "Deployment", ns, app, map[string]any{"template": map[string]any{
					"metadata": map[string]any{"labels": map[string]any{"app": app}},
					"spec": map[string]any{"serviceAccountName": app, "containers": []any{map[string]any{"name": "app", "image": "example/app:1",
						"ports": []any{map[string]any{"name": "http", "containerPort": 8080.0}}}}},
				}}),
				obj("v1", "Service", ns, app, map[string]any{"selector": map[string]any{"app": app}, "ports": []any{map[string]any{"port": 80.0, "targetPort": "http"}}}),
			)
			if !authz {
				continue
			}
			objs = append(objs,
				obj("security.istio.io/v1", "AuthorizationPolicy", ns, app, map[string]any{"selector": map[string]any{"matchLabels": map[string]any{"app": app}}, "rules": []any{
					map[string]any{"from": []any{map[string]any{"source": map[string]any{"principals": []any{fmt.Sprintf("cluster.local/ns/%s/sa/w-%02d", next, (w+1)%perNS)}}}}},
					map[string]any{"from": []any{map[string]any{"source": map[string]any{"principals": []any{fmt.Sprintf("cluster.local/ns/%s/sa/w-%02d", ns, (w+2)%perNS)}}}},
						"to": []any{map[string]any{"operation": map[string]any{"paths": []any{"/api/*"}}}}},
				}}),
			)
		}
	}
	return objs
}

func benchIntent(b *testing.B, namespaces, perNS int) {
	benchIntentObjs(b, intentMesh(namespaces, perNS))
}

func benchIntentObjs(b *testing.B, objs []rules.Object) {
	eng := testEngine(b)
	c := NewConfig()
	c.FromAuthz = true
	c.IntentMaxWorkloads = 0
	b.ReportAllocs()
	b.ResetTimer()
	var policies int
	for i := 0; i < b.N; i++ {
		in, err := c.Intent(objs, IntentOptions{Engine: eng, FromAuthz: c.FromAuthzEnabled(), NoRestored: true})
		if err != nil {
			b.Fatal(err)
		}
		policies = len(in.Policies)
	}
	b.ReportMetric(float64(policies), "policies")
}

// BenchmarkIntent2000Workloads derives, as the controller does, the
// policies and cut edges of 2,000 workloads (100 namespaces of 20).
func BenchmarkIntent2000Workloads(b *testing.B) { benchIntent(b, 100, 20) }

// BenchmarkIntent200Workloads is the same mesh with 10 namespaces.
func BenchmarkIntent200Workloads(b *testing.B) { benchIntent(b, 10, 20) }

// BenchmarkIntent2000WorkloadsOpen is the mesh without AuthorizationPolicies:
// all 4 million edges are allowed by default and cut by default deny, and
// only the first MaxListedEdges per namespace are turned into text.
func BenchmarkIntent2000WorkloadsOpen(b *testing.B) {
	benchIntentObjs(b, intentMeshWith(100, 20, false))
}
