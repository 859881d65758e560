package rules

import (
	"reflect"
	"testing"
)

func npFacts(t *testing.T, spec string) map[string]any {
	t.Helper()
	f, err := networkPolicyFacts(decode(t, `{apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {name: p, namespace: n}, spec: `+spec+`}`))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestNetworkPolicyAnyIPAndAllNamespaces(t *testing.T) {
	tests := []struct {
		name                       string
		spec                       string
		ingressAny, egressAny, all string
	}{
		{"a /0 ipBlock in either direction, with except, and any /0 spelling",
			`{podSelector: {}, policyTypes: [Ingress, Egress], ingress: [{from: [{ipBlock: {cidr: 0.0.0.0/0, except: [10.0.0.0/8]}}]}], egress: [{to: [{ipBlock: {cidr: "::/0"}}, {ipBlock: {cidr: 10.0.0.0/0}}]}]}`,
			`["spec.ingress[0].from[0].ipBlock.cidr 0.0.0.0/0"]`, `["spec.egress[0].to[0].ipBlock.cidr ::/0","spec.egress[0].to[1].ipBlock.cidr 10.0.0.0/0"]`, `[]`},
		{"narrow ranges and malformed CIDRs are not catch-alls",
			`{podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 203.0.113.0/24}}, {ipBlock: {cidr: bogus}}]}]}`,
			`[]`, `[]`, `[]`},
		{"a direction not in effect is ignored",
			`{podSelector: {}, policyTypes: [Egress], ingress: [{from: [{ipBlock: {cidr: 0.0.0.0/0}}, {namespaceSelector: {}}]}], egress: [{to: [{ipBlock: {cidr: 0.0.0.0/0}}]}]}`,
			`[]`, `["spec.egress[0].to[0].ipBlock.cidr 0.0.0.0/0"]`, `[]`},
		{"an empty namespaceSelector with no or an empty podSelector admits every pod",
			`{podSelector: {}, ingress: [{from: [{namespaceSelector: {}}, {namespaceSelector: {matchLabels: {}}, podSelector: {}}, {namespaceSelector: {}, podSelector: {matchLabels: {app: prometheus}}}, {namespaceSelector: {matchLabels: {team: a}}}]}]}`,
			`[]`, `[]`, `["spec.ingress[0].from[0]","spec.ingress[0].from[1]"]`},
		{"a podSelector alone stays in the policy's namespace",
			`{podSelector: {}, ingress: [{from: [{podSelector: {}}]}]}`,
			`[]`, `[]`, `[]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := npFacts(t, tt.spec)
			for k, want := range map[string]string{"ingressAnyIP": tt.ingressAny, "egressAnyIP": tt.egressAny, "ingressAllNamespaces": tt.all} {
				if got := netJSON(f[k]); got != want {
					t.Errorf("%s = %s, want %s", k, got, want)
				}
			}
		})
	}
}

func TestNetworkPolicyEnvoyInternalPorts(t *testing.T) {
	tests := []struct{ name, spec, want string }{
		{"a single internal port", `{podSelector: {}, ingress: [{ports: [{port: 15000}]}]}`,
			`["spec.ingress[0].ports[0] opens port 15000, covering 15000 (Envoy admin)"]`},
		{"a range covering several", `{podSelector: {}, ingress: [{ports: [{port: 8080}, {port: 15001, endPort: 15006}]}]}`,
			`["spec.ingress[0].ports[1] opens ports 15001-15006, covering 15001 (outbound capture), 15004 (debug), 15006 (inbound capture)"]`},
		{"15002, public proxy ports, named ports, a port-less entry and a short range are not reported",
			`{podSelector: {}, ingress: [{ports: [{port: 15002}, {port: 15020}, {port: 15021}, {port: 15090}, {port: http-admin}, {protocol: TCP}, {port: 14000, endPort: 14999}]}]}`, `[]`},
		{"egress rules and ingress rules not in effect are not reported",
			`{podSelector: {}, policyTypes: [Egress], ingress: [{ports: [{port: 15000}]}], egress: [{ports: [{port: 15000}]}]}`, `[]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var texts []any
			for _, p := range npFacts(t, tt.spec)["ingressEnvoyInternalPorts"].([]any) {
				texts = append(texts, p.(map[string]any)["text"])
			}
			if got := netJSON(nonNil(texts)); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestGatewaySelector(t *testing.T) {
	for _, tt := range []struct {
		labels map[string]string
		want   string
	}{
		{map[string]string{"istio": "ingressgateway"}, "ingress"},
		{map[string]string{"app": "istio-ingressgateway"}, "ingress"},
		{map[string]string{"istio": "eastwestgateway"}, "ingress"},
		{map[string]string{"gateway.networking.k8s.io/gateway-name": "public"}, "ingress"},
		{map[string]string{"istio": "egressgateway"}, "egress"},
		{map[string]string{"app": "web"}, ""},
		{nil, ""},
	} {
		if got := gatewaySelector(tt.labels); got != tt.want {
			t.Errorf("gatewaySelector(%v) = %q, want %q", tt.labels, got, tt.want)
		}
	}
}

func TestServiceControlPlanePorts(t *testing.T) {
	tests := []struct{ name, spec, want string }{
		{"istiod's ports, 8080 counting on istiod", `{selector: {app: istiod}, ports: [{port: 15010}, {port: 15012}, {port: 443, targetPort: 15017}, {port: 15014}, {port: 80, targetPort: 8080}]}`,
			`[{"istiod":true,"port":15010,"target":15010,"text":"port 15010 targets 15010 (istiod plaintext xDS)"},{"istiod":true,"port":15014,"target":15014,"text":"port 15014 targets 15014 (control-plane metrics)"},{"istiod":true,"port":80,"target":8080,"text":"port 80 targets 8080 (istiod debug)"}]`},
		{"8080 elsewhere is an application port; proxy metrics are not istiod's", `{selector: {app: web}, ports: [{port: 80, targetPort: 8080}, {port: 9090, targetPort: 15090}, {port: 15020, targetPort: metrics}]}`,
			`[{"istiod":false,"port":9090,"target":15090,"text":"port 9090 targets 15090 (Envoy Prometheus stats)"}]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := serviceFacts(decode(t, `{apiVersion: v1, kind: Service, metadata: {name: s, namespace: n}, spec: `+tt.spec+`}`))
			if err != nil {
				t.Fatal(err)
			}
			if got := netJSON(f["controlPlanePorts"]); got != tt.want {
				t.Errorf("got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestNegativeMatches(t *testing.T) {
	tests := []struct{ name, rule, want string }{
		{"a negative field alone", `{to: [{operation: {notPaths: ["/admin"]}}]}`,
			`["spec.rules[0].to[0].operation.notPaths [\"/admin\"] without paths"]`},
		{"a negative field next to its positive list only subtracts", `{from: [{source: {principals: [a], notPrincipals: [b]}}], to: [{operation: {paths: ["/api/*"], notPaths: ["/api/x"]}}], when: [{key: k, values: [x], notValues: [y]}]}`,
			`[]`},
		{"a wildcard positive list does not narrow", `{from: [{source: {ipBlocks: [0.0.0.0/0], notIpBlocks: [10.0.0.0/8]}}], to: [{operation: {paths: ["*"], notPaths: ["/x"]}}]}`,
			`["spec.rules[0].from[0].source.notIpBlocks [\"10.0.0.0/8\"] without ipBlocks","spec.rules[0].to[0].operation.notPaths [\"/x\"] without paths"]`},
		{"a positive list of another field does not pair", `{from: [{source: {namespaces: [a], notPrincipals: [b]}}], when: [{key: "request.headers[x]", notValues: [v]}]}`,
			`["spec.rules[0].from[0].source.notPrincipals [\"b\"] without principals","spec.rules[0].when[0] (request.headers[x]).notValues [\"v\"] without values"]`},
		{"empty negative lists are absent", `{to: [{operation: {notPaths: [], methods: [GET]}}]}`, `[]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := netJSON(nonNilStrings(negativeMatches(decode(t, tt.rule), "spec.rules[0]"))); got != tt.want {
				t.Errorf("got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestDestinationRuleHostNamespace(t *testing.T) {
	for _, tt := range []struct{ host, want string }{
		{"reviews", "shop"},
		{"ratings.prod.svc.cluster.local", "prod"},
		{"ratings.prod.svc", "prod"},
		{"*.prod.svc.cluster.local", "prod"},
		{"*.local", ""},
		{"*", ""},
		{"ratings.prod", ""},
		{"edition.cnn.com", ""},
		{"10.0.0.1", ""},
	} {
		if got := hostNamespace(tt.host, "shop", "cluster.local"); got != tt.want {
			t.Errorf("hostNamespace(%q) = %q, want %q", tt.host, got, tt.want)
		}
	}

	cfg, err := NewConfig().compile()
	if err != nil {
		t.Fatal(err)
	}
	snap := NewSnapshot()
	snap.AddNamespace(Namespace{Name: "prod"})
	snap.AddNamespace(Namespace{Name: "shop", Labels: map[string]string{"istio-injection": "enabled"}})
	e := &engine{cfg: cfg, ctx: snap}
	for _, tt := range []struct{ host, ns, mode string }{
		{"ratings.prod.svc.cluster.local", "prod", ModeNone},
		{"reviews", "shop", ModeSidecar},
		{"db.other.svc.cluster.local", "other", ModeUnknown},
		{"*.local", "", ""},
	} {
		f, err := e.destinationRuleFacts(decode(t, `{apiVersion: networking.istio.io/v1, kind: DestinationRule, metadata: {name: r, namespace: shop}, spec: {host: "`+tt.host+`"}}`), "shop")
		if err != nil {
			t.Fatal(err)
		}
		if got := []any{f["hostNamespace"], f["hostNamespaceMode"]}; !reflect.DeepEqual(got, []any{tt.ns, tt.mode}) {
			t.Errorf("host %q: hostNamespace, hostNamespaceMode = %v, want [%s %s]", tt.host, got, tt.ns, tt.mode)
		}
	}
}
