package rules

import (
	"strings"
	"testing"
)

func TestGatewayOpenPorts(t *testing.T) {
	for _, tc := range []struct {
		name, spec string
		on         bool
		want       []string
	}{
		{"serving ports from anywhere are the lock-down", `{podSelector: {matchLabels: {istio: ingressgateway}}, ingress: [{ports: [{port: 443}, {port: 15021}]}]}`, true, nil},
		{"a range reaching past the serving ports is reported once",
			`{podSelector: {matchLabels: {istio: ingressgateway}}, ingress: [{from: [{ipBlock: {cidr: 0.0.0.0/0}}], ports: [{port: 8080, endPort: 8443}]}]}`, true,
			[]string{"spec.ingress[0] allows spec.ingress[0].from[0].ipBlock 0.0.0.0/0 to ports 8080-8443, beyond the serving ports"}},
		{"in-cluster sources are not outside the cluster",
			`{podSelector: {matchLabels: {app: istio-ingressgateway}}, ingress: [{from: [{namespaceSelector: {}}]}]}`, true, nil},
		{"named ports resolve per pod and are not judged",
			`{podSelector: {matchLabels: {istio: ingressgateway}}, ingress: [{ports: [{port: http-envoy-prom}]}]}`, true, nil},
		{"a policy without Ingress in effect admits nothing",
			`{podSelector: {matchLabels: {istio: ingressgateway}}, ingress: [{}]}`, false, nil},
		{"an east-west gateway is not an ingress gateway here",
			`{podSelector: {matchLabels: {istio: eastwestgateway}}, ingress: [{}]}`, true, nil},
		{"a Gateway API gateway open on every port",
			`{podSelector: {matchLabels: {gateway.networking.k8s.io/gateway-name: public}}, ingress: [{}]}`, true,
			[]string{"spec.ingress[0] allows any source (no from) to every port"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, it := range gatewayOpenPorts(nil, decode(t, tc.spec), tc.on) {
				got = append(got, it.Text)
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("gatewayOpenPorts = %q, want %q", got, tc.want)
			}
		})
	}
}
