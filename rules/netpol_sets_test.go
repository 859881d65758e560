package rules

import "testing"

func TestNetworkPolicyAdmitsEverything(t *testing.T) {
	tests := []struct {
		name, spec             string
		allowAll, anyIP, allNS string
		egressAllowAll         string
	}{
		{"ports that carry only protocols admit every port from every source",
			`{podSelector: {}, ingress: [{ports: [{protocol: TCP}, {protocol: UDP}]}]}`,
			`["spec.ingress[0] (its ports carry no port number, so every port)"]`, `[]`, `[]`, `[]`},
		{"a port-less entry without protocol is TCP and admits every TCP port",
			`{podSelector: {}, ingress: [{ports: [{}]}]}`,
			`["spec.ingress[0] (its ports carry no port number, so every port)"]`, `[]`, `[]`, `[]`},
		{"port ranges with endPort that cover 1-65535 admit every port",
			`{podSelector: {}, ingress: [{ports: [{port: 1, endPort: 30000}, {port: 30001, endPort: 65535}]}]}`,
			`["spec.ingress[0] (its port ranges cover every TCP port 1-65535)"]`, `[]`, `[]`, `[]`},
		{"a gap in the port ranges is not every port",
			`{podSelector: {}, ingress: [{ports: [{port: 1, endPort: 30000}, {port: 30002, endPort: 65535}]}]}`,
			`[]`, `[]`, `[]`, `[]`},
		{"only UDP ports are not every port",
			`{podSelector: {}, ingress: [{ports: [{protocol: UDP}, {protocol: SCTP}]}]}`,
			`[]`, `[]`, `[]`, `[]`},
		{"named ports never cover",
			`{podSelector: {}, ingress: [{ports: [{port: http}, {port: 1, endPort: 79}, {port: 81, endPort: 65535}]}]}`,
			`[]`, `[]`, `[]`, `[]`},
		{"IPv4 halves are every IPv4 address, and with no ports every source",
			`{podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 0.0.0.0/1}}, {ipBlock: {cidr: 128.0.0.0/1}}]}]}`,
			`["spec.ingress[0] (its ipBlocks cover every IPv4 address)"]`,
			`["spec.ingress[0].from[0].ipBlock 0.0.0.0/1 with spec.ingress[0].from[1].ipBlock 128.0.0.0/1 (together every IPv4 address)"]`, `[]`, `[]`},
		{"pieces spread over two rules cover every address of the direction, but neither rule alone",
			`{podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 0.0.0.0/1}}]}, {from: [{ipBlock: {cidr: 128.0.0.0/2}}, {ipBlock: {cidr: 192.0.0.0/2}}]}]}`,
			`[]`, `["spec.ingress[0].from[0].ipBlock 0.0.0.0/1 with spec.ingress[1].from[0].ipBlock 128.0.0.0/2 with spec.ingress[1].from[1].ipBlock 192.0.0.0/2 (together every IPv4 address)"]`, `[]`, `[]`},
		{"IPv6 halves are every IPv6 address",
			`{podSelector: {}, policyTypes: [Egress], egress: [{to: [{ipBlock: {cidr: "::/1"}}, {ipBlock: {cidr: "8000::/1"}}], ports: [{port: 443}]}]}`,
			`[]`, `[]`, `[]`, `[]`},
		{"an except punches a hole: the halves are then not every address",
			`{podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 0.0.0.0/1, except: [10.0.0.0/8]}}, {ipBlock: {cidr: 128.0.0.0/1}}]}]}`,
			`[]`, `[]`, `[]`, `[]`},
		{"one half alone is not every address",
			`{podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 0.0.0.0/1}}]}]}`,
			`[]`, `[]`, `[]`, `[]`},
		{"every address on every port in egress",
			`{podSelector: {}, policyTypes: [Egress], egress: [{to: [{ipBlock: {cidr: 0.0.0.0/1}}, {ipBlock: {cidr: 128.0.0.0/1}}], ports: [{protocol: TCP}]}]}`,
			`[]`, `[]`, `[]`, `["spec.egress[0] (its ipBlocks cover every IPv4 address, and its ports carry no port number, so every port)"]`},
		{"kubernetes.io/metadata.name Exists matches every namespace",
			`{podSelector: {}, ingress: [{from: [{namespaceSelector: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: Exists}]}}]}]}`,
			`[]`, `[]`, `["spec.ingress[0].from[0] (namespaceSelector kubernetes.io/metadata.name Exists matches every namespace)"]`, `[]`},
		{"NotIn a short list and DoesNotExist on another key match every namespace, with an every-pod podSelector",
			`{podSelector: {}, ingress: [{from: [{namespaceSelector: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: NotIn, values: [kube-system]}, {key: quarantine, operator: DoesNotExist}]}, podSelector: {matchExpressions: [{key: quarantine, operator: DoesNotExist}]}}]}]}`,
			`[]`, `[]`, `["spec.ingress[0].from[0] (namespaceSelector kubernetes.io/metadata.name NotIn [kube-system], quarantine DoesNotExist matches every namespace, podSelector quarantine DoesNotExist matches every pod)"]`, `[]`},
		{"In, Exists on another key, matchLabels and DoesNotExist on the name label narrow",
			`{podSelector: {}, ingress: [{from: [{namespaceSelector: {matchExpressions: [{key: team, operator: In, values: [a]}]}}, {namespaceSelector: {matchExpressions: [{key: team, operator: Exists}]}}, {namespaceSelector: {matchLabels: {team: a}}}, {namespaceSelector: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: DoesNotExist}]}}, {namespaceSelector: {}, podSelector: {matchExpressions: [{key: app, operator: Exists}]}}]}]}`,
			`[]`, `[]`, `[]`, `[]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := npFacts(t, tt.spec)
			for k, want := range map[string]string{"ingressAllowAll": tt.allowAll, "ingressAnyIP": tt.anyIP, "ingressAllNamespaces": tt.allNS, "egressAllowAll": tt.egressAllowAll} {
				if got := netJSON(f[k]); got != want {
					t.Errorf("%s = %s, want %s", k, got, want)
				}
			}
		})
	}
}

func TestNetworkPolicySelectsEveryPod(t *testing.T) {
	for spec, want := range map[string]bool{
		`{podSelector: {}}`: true,
		`{podSelector: {matchExpressions: [{key: app, operator: NotIn, values: [legacy]}]}}`: true,
		`{podSelector: {matchExpressions: [{key: quarantined, operator: DoesNotExist}]}}`:    true,
		`{podSelector: {matchLabels: {app: web}}}`:                                           false,
		`{podSelector: {matchExpressions: [{key: app, operator: Exists}]}}`:                  false,
	} {
		if got := npFacts(t, spec)["selectsAllPods"]; got != want {
			t.Errorf("%s: selectsAllPods = %v, want %v", spec, got, want)
		}
	}
}
