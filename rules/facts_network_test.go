package rules

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// netObject decodes a YAML manifest the way the engine sees objects (JSON
// numbers as float64).
func netObject(t *testing.T, manifest string) Object {
	t.Helper()
	var obj map[string]any
	if err := yaml.Unmarshal([]byte(manifest), &obj); err != nil {
		t.Fatalf("bad test manifest: %v", err)
	}
	return obj
}

// netJSON renders a fact value for comparison and failure messages.
func netJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestServiceFacts(t *testing.T) {
	tests := []struct {
		name     string
		spec     string
		external bool
		exposure string
		internal string // JSON of the envoyInternalPorts texts
	}{
		{
			name:     "a ClusterIP service on application ports reports nothing",
			spec:     "ports: [{port: 80, targetPort: 8080}, {port: 9080}]",
			internal: `[]`,
		},
		{
			name:     "a numeric targetPort on the Envoy admin port is reported with its meaning",
			spec:     "ports: [{port: 8000, targetPort: 15000}]",
			internal: `["port 8000 targets 15000 (Envoy admin)"]`,
		},
		{
			name:     "an absent targetPort defaults to the port",
			spec:     "ports: [{port: 15006}]",
			internal: `["port 15006 targets 15006 (inbound capture)"]`,
		},
		{
			name:     "a zero targetPort defaults to the port, as the API server does",
			spec:     "ports: [{port: 15001, targetPort: 0}]",
			internal: `["port 15001 targets 15001 (outbound capture)"]`,
		},
		{
			name:     "an empty string targetPort defaults to the port",
			spec:     `ports: [{port: 15004, targetPort: ""}]`,
			internal: `["port 15004 targets 15004 (debug)"]`,
		},
		{
			name:     "a service port numbered like an Envoy port but targeting the application is not reported",
			spec:     "ports: [{port: 15000, targetPort: 8080}]",
			internal: `[]`,
		},
		{
			name:     "a named targetPort is skipped because resolving it needs the pods",
			spec:     "ports: [{port: 15000, targetPort: envoy-admin}]",
			internal: `[]`,
		},
		{
			name:     "the proxy's reachable ports 15008, 15020, 15021 and 15090 are not pod-internal",
			spec:     "ports: [{port: 15008}, {port: 15020}, {port: 15021}, {port: 15090}]",
			internal: `[]`,
		},
		{
			name:     "every pod-internal port of a service is listed in order",
			spec:     "ports: [{port: 53, targetPort: 15053}, {port: 15002}]",
			internal: `["port 53 targets 15053 (DNS proxy)","port 15002 targets 15002 (failure detection)"]`,
		},
		{
			name:     "a LoadBalancer service is external",
			spec:     "type: LoadBalancer\nports: [{port: 80}]",
			external: true, exposure: "type LoadBalancer", internal: `[]`,
		},
		{
			name:     "a NodePort service is external",
			spec:     "type: NodePort\nports: [{port: 80}]",
			external: true, exposure: "type NodePort", internal: `[]`,
		},
		{
			name:     "a ClusterIP service with externalIPs is external and quotes them",
			spec:     "externalIPs: [203.0.113.10, 198.51.100.7]\nports: [{port: 80}]",
			external: true, exposure: "externalIPs 203.0.113.10, 198.51.100.7", internal: `[]`,
		},
		{
			name:     "an empty externalIPs list is not external",
			spec:     "externalIPs: []\nports: [{port: 80}]",
			internal: `[]`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := "    " + strings.ReplaceAll(tt.spec, "\n", "\n    ")
			f, err := serviceFacts(netObject(t, "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: n}\nspec:\n"+spec))
			if err != nil {
				t.Fatal(err)
			}
			if f["external"] != tt.external || f["exposure"] != tt.exposure {
				t.Errorf("external, exposure = %v, %q; want %v, %q", f["external"], f["exposure"], tt.external, tt.exposure)
			}
			var texts []any
			for _, p := range f["envoyInternalPorts"].([]any) {
				texts = append(texts, p.(map[string]any)["text"])
			}
			if got := netJSON(nonNil(texts)); got != tt.internal {
				t.Errorf("envoyInternalPorts = %s, want %s", got, tt.internal)
			}
		})
	}
}

func TestServiceFactsRejectsWrongTypes(t *testing.T) {
	for _, spec := range []string{"ports: {port: 80}", "ports: [80]", "externalIPs: 203.0.113.10"} {
		if _, err := serviceFacts(netObject(t, "kind: Service\nspec:\n  "+spec)); err == nil {
			t.Errorf("spec %q: want an error, got none", spec)
		}
	}
}

// A Service field of the wrong type is an error naming it, as the API
// server's typed decoding names it, not a port read as 0 or a targetPort as
// absent.
func TestServiceWrongTypeNamesTheField(t *testing.T) {
	for _, tc := range []struct{ spec, want string }{
		{"ports: [{port: \"15000\"}]", "spec.ports[0].port: expected integer, got string"},
		{"ports: [{port: 80, targetPort: 9080}, {port: 81, targetPort: true}]", "spec.ports[1].targetPort: expected integer or string, got boolean"},
		{"ports: [{port: 80, targetPort: 15000.5}]", "spec.ports[0].targetPort: expected integer or string, got number"},
		{"ports: [{port: 80, protocol: [TCP]}]", "spec.ports[0].protocol: expected string, got array"},
		{"type: [NodePort]", "spec.type: expected string, got array"},
		{"selector: app=web", "spec.selector: expected object, got string"},
	} {
		_, err := serviceFacts(netObject(t, "kind: Service\nspec:\n  "+tc.spec))
		if err == nil || err.Error() != tc.want {
			t.Errorf("spec %q: error %v, want %q", tc.spec, err, tc.want)
		}
	}
	f, err := serviceFacts(netObject(t, "kind: Service\nspec:\n  ports: [{port: 80, targetPort: http, protocol: TCP}, {port: 15000, targetPort: null}]"))
	if err != nil || len(f["envoyInternalPorts"].([]any)) != 1 {
		t.Errorf("a named targetPort and a null one are valid: facts %v, error %v", f, err)
	}
}

func TestNetworkPolicyFacts(t *testing.T) {
	tests := []struct {
		name           string
		spec           string
		ingress, egres []string
		selectsAll     bool
	}{
		{
			name:       "an empty ingress rule allows everything to every pod",
			spec:       "podSelector: {}\ningress: [{}]",
			ingress:    []string{"spec.ingress[0]"},
			selectsAll: true,
		},
		{
			name:    "an empty from list and absent ports allow everything",
			spec:    "podSelector: {matchLabels: {app: web}}\ningress: [{from: []}]",
			ingress: []string{"spec.ingress[0]"},
		},
		{
			name:    "empty from and empty ports lists allow everything",
			spec:    "podSelector: {matchLabels: {app: web}}\ningress: [{from: [], ports: []}]",
			ingress: []string{"spec.ingress[0]"},
		},
		{
			name:    "a null ingress rule is an empty rule",
			spec:    "podSelector: {matchLabels: {app: web}}\ningress: [null]",
			ingress: []string{"spec.ingress[0]"},
		},
		{
			name:       "a rule that names peers is not allow-all",
			spec:       "podSelector: {}\ningress: [{from: [{podSelector: {matchLabels: {app: a}}}]}]",
			selectsAll: true,
		},
		{
			name:       "a rule with ports only is not allow-all",
			spec:       "podSelector: {}\ningress: [{ports: [{port: 8080}]}]",
			selectsAll: true,
		},
		{
			name:       "only the allow-all rules of a policy are listed",
			spec:       "podSelector: {}\ningress: [{from: [{ipBlock: {cidr: 10.0.0.0/8}}]}, {}]",
			ingress:    []string{"spec.ingress[1]"},
			selectsAll: true,
		},
		{
			name:  "without policyTypes, egress is in effect when egress rules are present",
			spec:  "podSelector: {matchLabels: {app: web}}\negress: [{}]",
			egres: []string{"spec.egress[0]"},
		},
		{
			name: "without policyTypes, an empty egress list leaves egress out of effect",
			spec: "podSelector: {matchLabels: {app: web}}\negress: []",
		},
		{
			name: "policyTypes Ingress alone ignores egress rules",
			spec: "podSelector: {matchLabels: {app: web}}\npolicyTypes: [Ingress]\negress: [{}]",
		},
		{
			name:  "policyTypes Egress alone ignores ingress rules",
			spec:  "podSelector: {matchLabels: {app: web}}\npolicyTypes: [Egress]\ningress: [{}]\negress: [{}]",
			egres: []string{"spec.egress[0]"},
		},
		{
			name:    "an empty policyTypes list is defaulted like an absent one",
			spec:    "podSelector: {matchLabels: {app: web}}\npolicyTypes: []\ningress: [{}]\negress: [{to: []}]",
			ingress: []string{"spec.ingress[0]"},
			egres:   []string{"spec.egress[0]"},
		},
		{
			name:  "an egress rule with an empty to list and empty ports allows everything",
			spec:  "podSelector: {matchLabels: {app: web}}\npolicyTypes: [Ingress, Egress]\negress: [{to: [{podSelector: {}}]}, {to: [], ports: []}]",
			egres: []string{"spec.egress[1]"},
		},
		{
			name:       "an absent podSelector selects every pod",
			spec:       "policyTypes: [Ingress]",
			selectsAll: true,
		},
		{
			name:       "a podSelector with empty matchLabels and matchExpressions selects every pod",
			spec:       "podSelector: {matchLabels: {}, matchExpressions: []}",
			selectsAll: true,
		},
		{
			name: "a podSelector with only matchExpressions selects some pods",
			spec: "podSelector: {matchExpressions: [{key: app, operator: Exists}]}",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := "    " + strings.ReplaceAll(tt.spec, "\n", "\n    ")
			f, err := networkPolicyFacts(netObject(t, "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: n}\nspec:\n"+spec))
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]any{
				"ingressAllowAll": toAnyList(tt.ingress),
				"egressAllowAll":  toAnyList(tt.egres),
				"selectsAllPods":  tt.selectsAll,
			}
			// The other NetworkPolicy facts are covered in facts_more_network_test.go.
			got := map[string]any{}
			for k := range want {
				got[k] = f[k]
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("facts = %s\nwant    %s", netJSON(f), netJSON(want))
			}
		})
	}
}

func TestNetworkPolicyFactsRejectsWrongTypes(t *testing.T) {
	for _, spec := range []string{
		"ingress: {}",
		"ingress: [allow]",
		"ingress: [{from: {podSelector: {}}}]",
		"egress: [{ports: {port: 53}}]",
		// Wrong types are errors even when the direction is not in effect.
		"policyTypes: [Ingress]\n  egress: [{to: {}}]",
	} {
		if _, err := networkPolicyFacts(netObject(t, "kind: NetworkPolicy\nspec:\n  "+spec)); err == nil {
			t.Errorf("spec %q: want an error, got none", spec)
		}
	}
}

// A field of the wrong type is an error naming it, as the API server's
// typed decoding names it, not a value read as absent.
func TestNetworkPolicyWrongTypeNamesTheField(t *testing.T) {
	for _, tc := range []struct{ spec, want string }{
		{"ingress: [{ports: [{port: true}]}]", "spec.ingress[0].ports[0].port: expected integer or string, got boolean"},
		{"ingress: [{ports: [{port: 80.5}]}]", "spec.ingress[0].ports[0].port: expected integer or string, got number"},
		{"ingress: [{ports: [{port: [80]}]}]", "spec.ingress[0].ports[0].port: expected integer or string, got array"},
		{"egress: [{ports: [{port: 53}, {port: 32000, endPort: \"32768\"}]}]", "spec.egress[0].ports[1].endPort: expected integer, got string"},
		{"ingress: [{ports: [{port: 80, protocol: 6}]}]", "spec.ingress[0].ports[0].protocol: expected string, got number"},
		{"ingress: [{ports: [80]}]", "spec.ingress[0].ports[0]: expected object, got number"},
		{"ingress: [{from: [{ipBlock: 0.0.0.0/0}]}]", "spec.ingress[0].from[0].ipBlock: expected object, got string"},
		{"ingress: [{from: [{ipBlock: {cidr: [10.0.0.0/8]}}]}]", "spec.ingress[0].from[0].ipBlock.cidr: expected string, got array"},
		{"podSelector: [app]", "spec.podSelector: expected object, got array"},
		// Checked whether or not the direction is in effect.
		{"policyTypes: [Ingress]\n  egress: [{to: [{namespaceSelector: all}]}]", "spec.egress[0].to[0].namespaceSelector: expected object, got string"},
	} {
		_, err := networkPolicyFacts(netObject(t, "kind: NetworkPolicy\nspec:\n  "+tc.spec))
		if err == nil || err.Error() != tc.want {
			t.Errorf("spec %q: error %v, want %q", tc.spec, err, tc.want)
		}
	}
	// Named ports, port ranges, an explicit null and well-formed peers stay valid.
	for _, spec := range []string{
		"ingress: [{ports: [{port: http, protocol: TCP}, {port: 8000, endPort: 9000}, {port: null}]}]",
		"ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}}, {namespaceSelector: {}, podSelector: {}}]}]",
	} {
		if _, err := networkPolicyFacts(netObject(t, "kind: NetworkPolicy\nspec:\n  "+spec)); err != nil {
			t.Errorf("spec %q: %v", spec, err)
		}
	}
}

func toAnyList(s []string) []any {
	out := []any{}
	for _, v := range s {
		out = append(out, v)
	}
	return out
}

// An Endpoints or EndpointSlice port of the wrong type is an error naming
// it, not a port read as absent; well-formed ports are judged as before.
func TestEndpointsWrongTypeNamesTheField(t *testing.T) {
	for _, tc := range []struct{ kind, doc, want string }{
		{"EndpointSlice", `ports: [{port: "15000"}]`, `ports[0].port: expected integer, got string`},
		{"EndpointSlice", `ports: [{port: 80}, 15000]`, `ports[1]: expected object, got number`},
		{"Endpoints", `subsets: [{ports: [{port: 80}, {port: 15000, protocol: 6}]}]`, `subsets[0].ports[1].protocol: expected string, got number`},
		{"Endpoints", `subsets: [{ports: {port: 15000}}]`, `subsets[0].ports: expected array, got object`},
		{"Endpoints", `subsets: [web]`, `subsets[0]: expected object, got string`},
	} {
		_, err := endpointsFacts(netObject(t, "kind: "+tc.kind+"\n"+tc.doc), tc.kind, nil)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s %q: error %v, want %q", tc.kind, tc.doc, err, tc.want)
		}
	}
	for _, tc := range []struct{ kind, doc, want string }{
		{"EndpointSlice", `ports: [{port: 80}, {port: 15000, protocol: TCP}, {port: null}]`, `ports[1] sends port 15000 (Envoy admin) straight to the endpoints' pods`},
		{"Endpoints", `subsets: [{ports: [{port: 80}]}, {ports: [{port: 15006}]}]`, `subsets[1].ports[0] sends port 15006 (inbound capture) straight to the endpoints' pods`},
	} {
		f, err := endpointsFactsTyped(netObject(t, "kind: "+tc.kind+"\n"+tc.doc), tc.kind, nil)
		if err != nil || len(f.EnvoyInternalPorts) != 1 || f.EnvoyInternalPorts[0].Text != tc.want {
			t.Errorf("%s %q: facts %+v, error %v; want one port %q", tc.kind, tc.doc, f, err, tc.want)
		}
	}
}
