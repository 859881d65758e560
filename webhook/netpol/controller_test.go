package netpol

import (
	"encoding/json"
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
)

// TestDriftNoChurn: a policy read back from the API server (a JSON round
// trip) is not drift, so a restart rewrites nothing; an edit is.
func TestDriftNoChurn(t *testing.T) {
	c := NewConfig()
	for _, p := range Profiles() {
		for _, want := range c.Render("shop", p) {
			data, err := json.Marshal(want)
			if err != nil {
				t.Fatal(err)
			}
			var got networkingv1.NetworkPolicy
			if err := json.Unmarshal(data, &got); err != nil {
				t.Fatal(err)
			}
			got.Labels["cost-center"] = "42" // foreign metadata is not drift
			if d := drift(&got, want); len(d) > 0 {
				t.Errorf("%s/%s: a round trip is drift: %v", p, want.Name, d)
			}
			got.Spec.Ingress = append(got.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{})
			delete(got.Labels, LabelManaged)
			if d := strings.Join(drift(&got, want), ","); d != "spec,label "+LabelManaged {
				t.Errorf("%s/%s: drift %q", p, want.Name, d)
			}
		}
	}
}

func TestRepairOps(t *testing.T) {
	ops := mapOps("/metadata/labels", map[string]string{"a": "b"}, ManagedLabels())
	data, _ := json.Marshal(ops)
	want := `[{"op":"add","path":"/metadata/labels/app.kubernetes.io~1managed-by","value":"meshguard"},{"op":"add","path":"/metadata/labels/meshguard.io~1managed","value":"true"}]`
	if string(data) != want {
		t.Errorf("ops %s\nwant %s", data, want)
	}
	if ops := mapOps("/metadata/annotations", nil, map[string]string{"x": "y"}); len(ops) != 1 || ops[0]["path"] != "/metadata/annotations" {
		t.Errorf("absent map: %v", ops)
	}
}
