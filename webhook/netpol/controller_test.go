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

// TestKeepUnderived: derived policies survive a restart until the first
// derivation, and the AuthorizationPolicy-derived ones survive a derivation
// over the workload bound; the profile set and gone routes do not.
func TestKeepUnderived(t *testing.T) {
	derived := &Intent{}
	skipped := &Intent{Skipped: "2001 workloads exceed the bound of 2000"}
	for _, tc := range []struct {
		name  string
		in    *Intent
		ready bool
		keep  bool
	}{
		{PrefixAuthzTo + "api", nil, false, true},
		{PrefixGatewayAllow + "web", nil, false, true},
		{NameDefaultDeny, nil, false, false},
		{PrefixAuthzTo + "api", derived, true, false},
		{PrefixGatewayAllow + "web", derived, true, false},
		{PrefixAuthzTo + "api", skipped, true, true},
		{PrefixAuthzFrom + "web", skipped, true, true},
		{PrefixGatewayAllow + "web", skipped, true, false},
		{"someone-elses", skipped, true, false},
	} {
		if got := keepUnderived(tc.name, tc.in, tc.ready); got != tc.keep {
			t.Errorf("keepUnderived(%s, ready %v, skipped %v) = %v, want %v", tc.name, tc.ready, tc.in != nil && tc.in.Skipped != "", got, tc.keep)
		}
	}
}
