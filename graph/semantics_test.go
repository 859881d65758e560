package graph

import (
	"strings"
	"testing"
)

// base is a sidecar namespace "shop" with two workloads: web (sa web) calls
// api (sa api) on 8080; and an unmeshed namespace "legacy" with a job.
const base = `
apiVersion: v1
kind: Namespace
metadata: {name: istio-system}
---
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio-injection: enabled}}
---
apiVersion: v1
kind: Namespace
metadata: {name: legacy, labels: {team: legacy}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  template:
    metadata: {labels: {app: web}}
    spec:
      serviceAccountName: web
      containers: [{name: web, image: example/web:1, ports: [{containerPort: 8000, name: http}]}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: shop}
spec:
  template:
    metadata: {labels: {app: api}}
    spec:
      serviceAccountName: api
      containers: [{name: api, image: example/api:1, ports: [{containerPort: 8080, name: http}, {containerPort: 9090, name: metrics}]}]
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec:
  selector: {app: api}
  ports: [{port: 80, targetPort: http}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: report, namespace: legacy}
spec:
  template:
    metadata: {labels: {app: report}}
    spec:
      serviceAccountName: report
      containers: [{name: report, image: example/report:1}]
`

const (
	web    = "Deployment/shop/web"
	api    = "Deployment/shop/api"
	report = "Job/legacy/report"
)

func graphOf(t *testing.T, extra string) *Graph {
	t.Helper()
	return compute(t, parseObjects(t, base+"\n---\n"+extra), Options{})
}

func wantVerdict(t *testing.T, g *Graph, from, to string, port int, want Verdict, reason string) Edge {
	t.Helper()
	e := findEdge(t, g, from, to, port)
	if e.Verdict != want {
		t.Errorf("%s: want %s; reasons %q conditions %q", edgeLine(g, e), want, e.Why.Reasons, e.Why.Conditions)
	}
	if reason != "" && !strings.Contains(strings.Join(append(append([]string{}, e.Why.Reasons...), e.Why.Conditions...), "\n"), reason) {
		t.Errorf("%s: reasons %q conditions %q lack %q", edgeLine(g, e), e.Why.Reasons, e.Why.Conditions, reason)
	}
	return e
}

const strict = `
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
`

func ap(name, spec string) string {
	return "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: " + name + ", namespace: shop}\nspec: " + spec + "\n"
}

func TestGraphAuthorizationPrecedence(t *testing.T) {
	webP := `cluster.local/ns/shop/sa/web`
	for _, c := range []struct {
		name     string
		policies []string
		want     Verdict
		reason   string
	}{
		{"no policy: allowed by default", nil, AllowedByDefault, "no ALLOW AuthorizationPolicy applies"},
		{"an ALLOW naming the caller's principal allows", []string{ap("a", `{selector: {matchLabels: {app: api}}, rules: [{from: [{source: {principals: ["`+webP+`"]}}]}]}`)}, AllowedMTLS, "AuthorizationPolicy shop/a allows"},
		{"an ALLOW naming another principal denies the rest", []string{ap("a", `{selector: {matchLabels: {app: api}}, rules: [{from: [{source: {principals: ["cluster.local/ns/shop/sa/other"]}}]}]}`)}, DeniedAuthz, "no rule of ALLOW AuthorizationPolicy shop/a matches"},
		{"an ALLOW by namespace allows", []string{ap("a", `{rules: [{from: [{source: {namespaces: ["shop"]}}]}]}`)}, AllowedMTLS, ""},
		{"notPrincipals excluding the caller denies", []string{ap("a", `{rules: [{from: [{source: {notPrincipals: ["`+webP+`"]}}]}]}`)}, DeniedAuthz, ""},
		{"an ALLOW on another port does not match", []string{ap("a", `{rules: [{to: [{operation: {ports: ["9090"]}}]}]}`)}, DeniedAuthz, ""},
		{"an ALLOW on the port matches", []string{ap("a", `{rules: [{to: [{operation: {ports: ["8080"]}}]}]}`)}, AllowedMTLS, ""},
		{"a path makes it conditional", []string{ap("a", `{rules: [{from: [{source: {principals: ["`+webP+`"]}}], to: [{operation: {paths: ["/api/*"]}}]}]}`)}, Conditional, `allowed when shop/a rules[0]: paths ["/api/*"]`},
		{"a JWT condition makes it conditional", []string{ap("a", `{rules: [{when: [{key: "request.auth.claims[groups]", values: ["admin"]}]}]}`)}, Conditional, `request.auth.claims[groups] in ["admin"]`},
		{"a DENY matching everything wins over an ALLOW", []string{
			ap("allow", `{rules: [{}]}`),
			ap("deny", `{action: DENY, rules: [{from: [{source: {principals: ["`+webP+`"]}}]}]}`)}, DeniedAuthz, "DENY AuthorizationPolicy shop/deny denies"},
		{"a DENY on a path leaves the edge conditional", []string{ap("deny", `{action: DENY, rules: [{to: [{operation: {paths: ["/admin"]}}]}]}`)}, Conditional, `denied when shop/deny rules[0]: paths ["/admin"]`},
		{"a CUSTOM policy hands requests to its provider", []string{ap("ext", `{action: CUSTOM, provider: {name: opa}, rules: [{}]}`)}, Conditional, "CUSTOM provider opa decides"},
		{"a dry-run DENY is not enforced", []string{strings.Replace(ap("deny", `{action: DENY, rules: [{}]}`), "namespace: shop}", "namespace: shop, annotations: {istio.io/dry-run: \"true\"}}", 1)}, AllowedByDefault, ""},
		{"a root-namespace ALLOW applies mesh-wide", []string{strings.Replace(ap("mesh", `{rules: [{from: [{source: {namespaces: ["other"]}}]}]}`), "namespace: shop", "namespace: istio-system", 1)}, DeniedAuthz, "istio-system/mesh"},
		{"a selector for another workload does not apply", []string{ap("a", `{selector: {matchLabels: {app: web}}, rules: [{from: [{source: {principals: ["nobody"]}}]}]}`)}, AllowedByDefault, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := graphOf(t, strict+"\n---\n"+strings.Join(c.policies, "\n---\n"))
			wantVerdict(t, g, web, api, 8080, c.want, c.reason)
		})
	}
	t.Run("a plaintext caller has no principal: principal rules do not match it", func(t *testing.T) {
		g := graphOf(t, ap("a", `{rules: [{from: [{source: {principals: ["*"]}}]}]}`))
		wantVerdict(t, g, report, api, 8080, DeniedAuthz, "")
		wantVerdict(t, g, web, api, 8080, AllowedMTLS, "")
	})
	t.Run("a broken policy is an error naming it and the field", func(t *testing.T) {
		_, err := Compute(parseObjects(t, base+"\n---\n"+ap("bad", `{rules: [{from: [{source: {principals: "x"}}]}]}`)), Options{Engine: testEngine(t)})
		if err == nil || !strings.Contains(err.Error(), "AuthorizationPolicy shop/bad: spec.rules[0].from[0].source.principals") {
			t.Fatalf("want an error naming the policy and field, got %v", err)
		}
	})
}

func TestGraphAmbientAuthorization(t *testing.T) {
	ambient := `
apiVersion: v1
kind: Namespace
metadata: {name: mesh2, labels: {istio.io/dataplane-mode: ambient}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: db, namespace: mesh2}
spec:
  template:
    metadata: {labels: {app: db}}
    spec: {serviceAccountName: db, containers: [{name: db, image: example/db:1, ports: [{containerPort: 5432}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: mesh2}
spec: {selector: {app: db}, ports: [{port: 5432}]}
`
	t.Run("ztunnel drops an ALLOW rule with an HTTP attribute", func(t *testing.T) {
		g := graphOf(t, ambient+"\n---\n"+strings.Replace(ap("a", `{selector: {matchLabels: {app: db}}, rules: [{to: [{operation: {methods: ["GET"]}}]}]}`), "shop", "mesh2", 1))
		wantVerdict(t, g, web, "Deployment/mesh2/db", 5432, DeniedAuthz, "enforced by ztunnel at L4")
		if n := g.Nodes[g.NodeIndex("Deployment/mesh2/db")]; n.MeshMode != "ambient" {
			t.Errorf("db mesh mode %s", n.MeshMode)
		}
	})
	t.Run("ztunnel enforces a DENY rule without its HTTP attributes", func(t *testing.T) {
		g := graphOf(t, ambient+"\n---\n"+strings.Replace(ap("d", `{action: DENY, rules: [{to: [{operation: {paths: ["/admin"]}}]}]}`), "shop", "mesh2", 1))
		wantVerdict(t, g, web, "Deployment/mesh2/db", 5432, DeniedAuthz, "DENY AuthorizationPolicy mesh2/d denies")
	})
	t.Run("a waypoint enforces targetRefs policies in full", func(t *testing.T) {
		wp := strings.Replace(ambient, "{name: mesh2, labels: {istio.io/dataplane-mode: ambient}}", "{name: mesh2, labels: {istio.io/dataplane-mode: ambient, istio.io/use-waypoint: waypoint}}", 1)
		g := graphOf(t, wp+"\n---\n"+strings.Replace(ap("a", `{targetRefs: [{kind: Service, group: "", name: db}], rules: [{to: [{operation: {methods: ["GET"]}}]}]}`), "shop", "mesh2", 1))
		wantVerdict(t, g, web, "Deployment/mesh2/db", 5432, Conditional, `methods ["GET"]`)
	})
	t.Run("a sidecar source reaches an ambient destination over mTLS", func(t *testing.T) {
		g := graphOf(t, ambient)
		e := wantVerdict(t, g, web, "Deployment/mesh2/db", 5432, AllowedByDefault, "HBONE")
		if e.Transport != TransportMTLS {
			t.Errorf("transport %s", e.Transport)
		}
	})
}

func TestGraphMTLS(t *testing.T) {
	t.Run("PERMISSIVE by default: an unmeshed caller is allowed in plaintext", func(t *testing.T) {
		g := graphOf(t, "")
		wantVerdict(t, g, report, api, 8080, AllowedPlaintext, "PERMISSIVE (Istio's default")
		wantVerdict(t, g, OutsideID, api, 8080, AllowedPlaintext, "")
		e := wantVerdict(t, g, web, api, 8080, AllowedByDefault, "auto mTLS")
		if e.Transport != TransportMTLS {
			t.Errorf("web -> api transport %s", e.Transport)
		}
	})
	t.Run("mesh STRICT rejects plaintext callers", func(t *testing.T) {
		g := graphOf(t, strict)
		wantVerdict(t, g, report, api, 8080, RejectedMTLS, "STRICT (PeerAuthentication istio-system/default, mesh level): rejected")
		wantVerdict(t, g, OutsideID, api, 8080, RejectedMTLS, "")
	})
	t.Run("a namespace PERMISSIVE overrides mesh STRICT", func(t *testing.T) {
		g := graphOf(t, strict+"\n---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: ns, namespace: shop}\nspec: {mtls: {mode: PERMISSIVE}}")
		wantVerdict(t, g, report, api, 8080, AllowedPlaintext, "PERMISSIVE (PeerAuthentication shop/ns, namespace level)")
	})
	t.Run("a workload DISABLE makes auto mTLS send plaintext", func(t *testing.T) {
		g := graphOf(t, strict+"\n---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: api, namespace: shop}\nspec: {selector: {matchLabels: {app: api}}, mtls: {mode: DISABLE}}")
		wantVerdict(t, g, web, api, 8080, AllowedPlaintext, "auto mTLS sends plaintext: the destination's mode on port 8080 is DISABLE (PeerAuthentication shop/api, workload level)")
	})
	t.Run("a port-level PERMISSIVE opens one port only", func(t *testing.T) {
		g := graphOf(t, strict+"\n---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: api, namespace: shop}\nspec: {selector: {matchLabels: {app: api}}, portLevelMtls: {\"9090\": {mode: PERMISSIVE}}}")
		wantVerdict(t, g, report, api, 9090, AllowedPlaintext, "PERMISSIVE (PeerAuthentication shop/api, port level)")
		wantVerdict(t, g, report, api, 8080, RejectedMTLS, "mesh level")
	})
	t.Run("a DestinationRule disabling TLS under STRICT is rejected", func(t *testing.T) {
		dr := "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: api, namespace: shop}\nspec: {host: api, trafficPolicy: {tls: {mode: DISABLE}}}"
		g := graphOf(t, strict+"\n---\n"+dr)
		wantVerdict(t, g, web, api, 8080, RejectedMTLS, "DestinationRule shop/api spec.trafficPolicy.tls sets tls.mode DISABLE")
		// The rule names the Service's host: the port no Service leads to keeps auto mTLS.
		wantVerdict(t, g, web, api, 9090, AllowedByDefault, "auto mTLS")
		g = graphOf(t, dr)
		wantVerdict(t, g, web, api, 8080, AllowedPlaintext, "sets tls.mode DISABLE: no Istio mTLS")
	})
	t.Run("a DestinationRule exported to its own namespace only does not apply to others", func(t *testing.T) {
		dr := "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: api, namespace: legacy}\nspec: {host: api.shop.svc.cluster.local, exportTo: [\".\"], trafficPolicy: {tls: {mode: DISABLE}}}"
		g := graphOf(t, dr)
		wantVerdict(t, g, web, api, 8080, AllowedByDefault, "auto mTLS")
	})
	t.Run("an excluded inbound port bypasses the sidecar", func(t *testing.T) {
		objs := strings.Replace(base, "metadata: {labels: {app: api}}", "metadata: {labels: {app: api}, annotations: {traffic.sidecar.istio.io/excludeInboundPorts: \"8080\"}}", 1)
		g := compute(t, parseObjects(t, objs+"\n---\n"+strict+"\n---\n"+ap("deny", `{action: DENY, rules: [{}]}`)), Options{})
		wantVerdict(t, g, OutsideID, api, 8080, AllowedPlaintext, "excludeInboundPorts names port 8080")
		wantVerdict(t, g, OutsideID, api, 9090, RejectedMTLS, "")
	})
}

func np(name, spec string) string {
	return "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: " + name + ", namespace: shop}\nspec: " + spec + "\n"
}

func TestGraphNetworkPolicies(t *testing.T) {
	t.Run("no policy: allowed", func(t *testing.T) {
		g := graphOf(t, "")
		wantVerdict(t, g, report, api, 8080, AllowedPlaintext, "")
	})
	t.Run("default-deny ingress denies even where Istio allows", func(t *testing.T) {
		g := graphOf(t, np("deny", `{podSelector: {}, policyTypes: [Ingress]}`))
		wantVerdict(t, g, web, api, 8080, DeniedNetpol, "ingress to the destination is restricted by NetworkPolicy shop/deny: none admits this source on port 8080")
	})
	t.Run("a podSelector peer admits its pods only", func(t *testing.T) {
		g := graphOf(t, np("deny", `{podSelector: {}, policyTypes: [Ingress]}`)+"---\n"+np("web", `{podSelector: {matchLabels: {app: api}}, ingress: [{from: [{podSelector: {matchLabels: {app: web}}}]}]}`))
		wantVerdict(t, g, web, api, 8080, AllowedByDefault, "ingress admitted by NetworkPolicy shop/web")
		wantVerdict(t, g, report, api, 8080, DeniedNetpol, "shop/deny, shop/web")
		wantVerdict(t, g, OutsideID, api, 8080, DeniedNetpol, "")
	})
	t.Run("a named port admits the container port of that name", func(t *testing.T) {
		g := graphOf(t, np("named", `{podSelector: {matchLabels: {app: api}}, ingress: [{ports: [{port: metrics}]}]}`))
		wantVerdict(t, g, web, api, 9090, AllowedByDefault, "")
		wantVerdict(t, g, web, api, 8080, DeniedNetpol, "")
	})
	t.Run("endPort admits a range", func(t *testing.T) {
		g := graphOf(t, np("range", `{podSelector: {matchLabels: {app: api}}, ingress: [{ports: [{port: 9000, endPort: 9100}]}]}`))
		wantVerdict(t, g, web, api, 9090, AllowedByDefault, "")
		wantVerdict(t, g, web, api, 8080, DeniedNetpol, "")
	})
	t.Run("a UDP port does not admit TCP", func(t *testing.T) {
		g := graphOf(t, np("udp", `{podSelector: {matchLabels: {app: api}}, ingress: [{ports: [{port: 8080, protocol: UDP}]}]}`))
		wantVerdict(t, g, web, api, 8080, DeniedNetpol, "")
	})
	t.Run("a namespaceSelector admits the namespace's pods, not outside", func(t *testing.T) {
		g := graphOf(t, np("ns", `{podSelector: {}, ingress: [{from: [{namespaceSelector: {matchLabels: {team: legacy}}}]}]}`))
		wantVerdict(t, g, report, api, 8080, AllowedPlaintext, "ingress admitted by NetworkPolicy shop/ns")
		wantVerdict(t, g, web, api, 8080, DeniedNetpol, "")
		wantVerdict(t, g, OutsideID, api, 8080, DeniedNetpol, "")
	})
	t.Run("an empty namespaceSelector and an ipBlock admit outside", func(t *testing.T) {
		g := graphOf(t, np("all-ns", `{podSelector: {}, ingress: [{from: [{namespaceSelector: {}}]}]}`))
		wantVerdict(t, g, OutsideID, api, 8080, AllowedPlaintext, "")
		g = graphOf(t, np("cidr", `{podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8}}]}]}`))
		wantVerdict(t, g, OutsideID, api, 8080, AllowedPlaintext, "")
		wantVerdict(t, g, web, api, 8080, DeniedNetpol, "") // no pod address known from manifests
	})
	t.Run("egress on the source", func(t *testing.T) {
		g := graphOf(t, np("web-egress", `{podSelector: {matchLabels: {app: web}}, policyTypes: [Egress], egress: [{ports: [{port: 9090}]}]}`))
		wantVerdict(t, g, web, api, 8080, DeniedNetpol, "egress of the source is restricted by NetworkPolicy shop/web-egress: none admits this destination on port 8080")
		wantVerdict(t, g, web, api, 9090, AllowedByDefault, "egress admitted by NetworkPolicy shop/web-egress")
		wantVerdict(t, g, report, api, 8080, AllowedPlaintext, "")
	})
	t.Run("a bad selector is an error naming the policy", func(t *testing.T) {
		_, err := Compute(parseObjects(t, base+"\n---\n"+np("bad", `{podSelector: {matchExpressions: [{key: app, operator: Bogus}]}}`)), Options{Engine: testEngine(t)})
		if err == nil || !strings.Contains(err.Error(), "NetworkPolicy shop/bad: spec.podSelector") {
			t.Fatalf("want an error naming the policy, got %v", err)
		}
	})
}

// TestGraphLivePods: in a cluster, Pods are grouped into their workload
// through their ReplicaSet, judged by what they run (the sidecar they
// have), and their addresses meet ipBlocks.
func TestGraphLivePods(t *testing.T) {
	live := `
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: web-5d8f
  namespace: shop
  ownerReferences: [{apiVersion: apps/v1, kind: Deployment, name: web, controller: true, uid: u1}]
spec: {template: {metadata: {labels: {app: web}}, spec: {containers: [{name: web, image: example/web:1}]}}}
---
apiVersion: v1
kind: Pod
metadata:
  name: web-5d8f-abcde
  namespace: shop
  labels: {app: web}
  ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: web-5d8f, controller: true, uid: u2}]
spec: {serviceAccountName: web, containers: [{name: web, image: example/web:1}]}
status: {podIP: 10.1.2.3}
`
	objs := parseObjects(t, base+"\n---\n"+live+"\n---\n"+np("cidr", `{podSelector: {matchLabels: {app: api}}, ingress: [{from: [{ipBlock: {cidr: 10.1.0.0/16}}]}]}`))
	g := compute(t, objs, Options{Live: true})
	n := g.Nodes[g.NodeIndex(web)]
	if n.Pods != 1 || n.MeshMode != "none" {
		t.Fatalf("web: want its 1 live pod, without a sidecar (it has no istio-proxy container), got %+v", n)
	}
	if g.NodeIndex("ReplicaSet/shop/web-5d8f") >= 0 || g.NodeIndex("Pod/shop/web-5d8f-abcde") >= 0 {
		t.Error("the ReplicaSet and the Pod must be grouped into the Deployment")
	}
	wantVerdict(t, g, web, api, 8080, AllowedPlaintext, "ingress admitted by NetworkPolicy shop/cidr")
	wantVerdict(t, g, report, api, 8080, DeniedNetpol, "")
}

// TestGraphFindingsCounted: findings are counted on their workload's node.
func TestGraphFindingsCounted(t *testing.T) {
	g := compute(t, readDir(t, "../examples/bookinfo/insecure"), Options{Findings: auditFindings(t, "../examples/bookinfo/insecure")})
	n := g.Nodes[g.NodeIndex(reviews)]
	if n.Findings["High"] == 0 && n.Findings["Critical"] == 0 {
		t.Errorf("reviews (NET_ADMIN) must carry its findings, got %v", n.Findings)
	}
}
