package netpol

import (
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/meshguard/meshguard/rules"
)

func parseObjects(t *testing.T, stream string) []rules.Object {
	t.Helper()
	var out []rules.Object
	for _, doc := range strings.Split(stream, "\n---\n") {
		var o rules.Object
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			t.Fatal(err)
		}
		out = append(out, o)
	}
	return out
}

const intentObjects = `apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio-injection: enabled}}
---
apiVersion: v1
kind: Namespace
metadata: {name: mesh, labels: {istio.io/dataplane-mode: ambient}}
---
apiVersion: v1
kind: Namespace
metadata: {name: plain}
---
apiVersion: v1
kind: Namespace
metadata: {name: edge}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: ingress, namespace: edge}
spec: {template: {metadata: {labels: {istio: ingressgateway}}}}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: edge}
spec: {selector: {istio: ingressgateway}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: shop}
spec:
  gateways: [edge/gw, mesh]
  http:
  - route:
    - destination: {host: web}
    - destination: {host: api.mesh.svc.cluster.local, port: {number: 80}}
    - destination: {host: legacy.plain.svc.cluster.local}
    - destination: {host: cart.shop}
    - destination: {host: example.com}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: internal, namespace: shop}
spec:
  gateways: [mesh]
  http:
  - route:
    - destination: {host: cart}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: public, namespace: edge}
spec:
  gatewayClassName: istio
  listeners: [{name: http, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: shop, namespace: shop}
spec:
  parentRefs: [{name: public, namespace: edge}]
  rules:
  - backendRefs: [{name: web, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: http}
  - {name: alt, port: 8080, targetPort: 9090}
  - {name: dns, port: 53, protocol: UDP}
---
apiVersion: v1
kind: Service
metadata: {name: cart, namespace: shop}
spec:
  selector: {app: cart}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: mesh}
spec:
  selector: {app: api}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: legacy, namespace: plain}
spec:
  selector: {app: legacy}
  ports: [{port: 80}]`

// TestIntentGatewayAllows derives the gateway-to-service policies: named
// and numeric target ports, HBONE in ambient namespaces, Gateway API
// gateways' pods, no policy for mesh-only routes, namespaces without a
// default deny, or hosts that are not Services.
func TestIntentGatewayAllows(t *testing.T) {
	c := NewConfig()
	nps, notes := c.RenderGatewayAllows(parseObjects(t, intentObjects))
	got := map[string]string{}
	for _, np := range nps {
		if np.Labels[LabelManaged] != "true" || np.Spec.PolicyTypes[0] != ingress || len(np.Spec.Egress) > 0 {
			t.Errorf("%s: not a managed ingress-only policy: %+v", np.Name, np)
		}
		var rules []string
		for _, r := range np.Spec.Ingress {
			peer := r.From[0]
			s := strings.Join(peer.NamespaceSelector.MatchExpressions[0].Values, ",") + " " + yamlLine(peer.PodSelector.MatchLabels) + " ->"
			for _, p := range r.Ports {
				s += " " + p.Port.String()
			}
			rules = append(rules, s)
		}
		got[np.Namespace+"/"+np.Name] = yamlLine(np.Spec.PodSelector.MatchLabels) + ": " + strings.Join(rules, "; ")
	}
	want := map[string]string{
		"shop/mesh-allow-gateway-to-web": "app=web: edge gateway.networking.k8s.io/gateway-name=public -> 9090; edge istio=ingressgateway -> 9090 http",
		"mesh/mesh-allow-gateway-to-api": "app=api: edge istio=ingressgateway -> 15008",
	}
	if len(got) != len(want) {
		t.Errorf("got %d policies %v, want %v", len(got), got, want)
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s:\n got  %q\n want %q", k, got[k], w)
		}
	}
	// Istio takes a dotted host literally: cart.shop is not the Service cart.
	if len(notes) != 2 || !strings.Contains(notes[0], `"cart.shop"`) || !strings.Contains(notes[1], `"example.com"`) {
		t.Errorf("notes %q: want two, naming cart.shop and example.com", notes)
	}
}

func yamlLine(m map[string]string) string {
	var parts []string
	for _, k := range sortedNames(m) {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, ",")
}

// TestIntentGatewayAPIAttachment: an HTTPRoute opens a gateway allow only
// where Istio would route it: the Gateway's listeners admit routes from its
// namespace (allowedRoutes: Same by default, Selector on the namespace's
// labels), and a backend in another namespace needs a ReferenceGrant there.
func TestIntentGatewayAPIAttachment(t *testing.T) {
	base := `apiVersion: v1
kind: Namespace
metadata: {name: team-a, labels: {istio-injection: enabled, shared-gateway: "true"}}
---
apiVersion: v1
kind: Namespace
metadata: {name: team-b, labels: {istio-injection: enabled}}
---
apiVersion: v1
kind: Namespace
metadata: {name: infra}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: same, namespace: infra}
spec:
  gatewayClassName: istio
  listeners: [{name: http, port: 80, protocol: HTTP}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: shared, namespace: infra}
spec:
  gatewayClassName: istio
  listeners: [{name: http, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: Selector, selector: {matchLabels: {shared-gateway: "true"}}}}}]
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: team-a}
spec: {selector: {app: api}, ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: team-b}
spec: {selector: {app: db}, ports: [{port: 5432}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: via-same, namespace: team-a}
spec:
  parentRefs: [{name: same, namespace: infra}]
  rules: [{backendRefs: [{name: api, port: 80}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: via-shared, namespace: team-a}
spec:
  parentRefs: [{name: shared, namespace: infra}]
  rules: [{backendRefs: [{name: api, port: 80}, {name: db, namespace: team-b, port: 5432}]}]`
	grant := `
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: from-team-a, namespace: team-b}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: team-a}]
  to: [{group: "", kind: Service, name: db}]`
	render := func(stream string) (map[string]string, []string) {
		nps, notes := NewConfig().RenderGatewayAllows(parseObjects(t, stream))
		got := map[string]string{}
		for _, np := range nps {
			var peers []string
			for _, r := range np.Spec.Ingress {
				peers = append(peers, yamlLine(r.From[0].PodSelector.MatchLabels))
			}
			got[np.Namespace+"/"+np.Name] = strings.Join(peers, "; ")
		}
		return got, notes
	}
	got, notes := render(base)
	want := map[string]string{"team-a/mesh-allow-gateway-to-api": "gateway.networking.k8s.io/gateway-name=shared"}
	if len(got) != len(want) || got["team-a/mesh-allow-gateway-to-api"] != want["team-a/mesh-allow-gateway-to-api"] {
		t.Errorf("without a grant: %v, want %v", got, want)
	}
	for _, w := range []string{
		"HTTPRoute/team-a/via-same is attached to Gateway infra/same, whose listeners do not allow routes from namespace team-a",
		"HTTPRoute/team-a/via-shared routes to Service team-b/db, but no ReferenceGrant in namespace team-b lets HTTPRoutes of namespace team-a refer to it",
	} {
		if !strings.Contains(strings.Join(notes, "\n"), w) {
			t.Errorf("no note %q in %q", w, notes)
		}
	}
	got, _ = render(base + grant)
	if got["team-b/mesh-allow-gateway-to-db"] != "gateway.networking.k8s.io/gateway-name=shared" {
		t.Errorf("with the ReferenceGrant: %v, want team-b/mesh-allow-gateway-to-db from the shared gateway", got)
	}
}
