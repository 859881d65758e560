package rules_test

import (
	"slices"
	"testing"

	"github.com/meshguard/meshguard/rules"
)

func TestCompareNetpols(t *testing.T) {
	for _, tc := range []struct {
		name, profile string
		present       []string
		known         bool
		status        string
		missing       []string
		extra         []string
	}{
		{"complete", "sidecar", []string{"mesh-allow-istiod", "mesh-allow-metrics-scrape", "mesh-allow-dns", "mesh-default-deny"}, true, rules.NetpolComplete, nil, nil},
		{"partial", "ambient", []string{"mesh-default-deny", "mesh-allow-dns"}, true, rules.NetpolPartial, []string{"mesh-allow-metrics-scrape", "mesh-allow-hbone", "mesh-allow-waypoint-istiod"}, nil},
		{"missing", "gateway", nil, true, rules.NetpolMissing, []string{"mesh-ingressgateway-lockdown"}, nil},
		{"none with a stale policy", "none", []string{"mesh-default-deny"}, true, rules.NetpolNone, nil, []string{"mesh-default-deny"}},
		{"a profile change leaves extras", "gateway", []string{"mesh-ingressgateway-lockdown", "mesh-allow-dns"}, true, rules.NetpolComplete, nil, []string{"mesh-allow-dns"}},
		{"unknown", "sidecar", nil, false, rules.NetpolUnknown, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := rules.CompareNetpols(tc.profile, "why", tc.present, tc.known)
			if got.Status != tc.status || !slices.Equal(got.Missing, append([]string{}, tc.missing...)) || !slices.Equal(got.Extra, append([]string{}, tc.extra...)) {
				t.Errorf("got %+v, want status %s missing %v extra %v", got, tc.status, tc.missing, tc.extra)
			}
		})
	}
}

func TestNamespaceNetpolUsesTheConfiguredNamespaces(t *testing.T) {
	cat, err := rules.DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	cfg := rules.NewConfig()
	cfg.NetpolExcludeNamespaces = append(cfg.NetpolExcludeNamespaces, "tools")
	cfg.NetpolGatewayNamespaces = []string{"edge"}
	e, err := rules.New(cat, cfg)
	if err != nil {
		t.Fatal(err)
	}
	snap := rules.NewSnapshot()
	snap.Add(map[string]any{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": map[string]any{
		"name": "mesh-ingressgateway-lockdown", "namespace": "edge", "labels": map[string]any{"meshguard.io/managed": "true"}}}, "")
	// Not managed: does not count.
	snap.Add(map[string]any{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": map[string]any{
		"name": "mesh-default-deny", "namespace": "shop"}}, "")
	enrolled := map[string]string{"istio-injection": "enabled"}
	for _, tc := range []struct {
		ns, profile, status string
	}{
		{"tools", "none", rules.NetpolNone},
		{"edge", "gateway", rules.NetpolComplete},
		{"istio-ingress", "sidecar", rules.NetpolMissing},
		{"shop", "sidecar", rules.NetpolMissing},
	} {
		got := e.NamespaceNetpol(snap, rules.Namespace{Name: tc.ns, Labels: enrolled})
		if got.Profile != tc.profile || got.Status != tc.status {
			t.Errorf("%s: got %+v, want %s %s", tc.ns, got, tc.profile, tc.status)
		}
	}
	snap.NetworkPoliciesUnknown()
	if got := e.NamespaceNetpol(snap, rules.Namespace{Name: "shop", Labels: enrolled}); got.Status != rules.NetpolUnknown {
		t.Errorf("after NetworkPoliciesUnknown: %+v", got)
	}
}
