package webhook

import (
	"slices"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"

	"github.com/meshguard/meshguard/rules"
)

// TestValidatingConfigurationCoversTheCatalog checks that the API server sends
// meshguard every kind and served version a rule applies to: a kind missing
// from the webhook rules is a rule that never runs.
func TestValidatingConfigurationCoversTheCatalog(t *testing.T) {
	cat, err := rules.DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	cfg := ValidatingConfiguration(cat, ConfigOptions{URL: "https://127.0.0.1:9443", ExcludeNamespaces: []string{"kube-system", "meshguard"}})
	covered := func(group, version, resource string) bool {
		for _, wh := range cfg.Webhooks {
			for _, r := range wh.Rules {
				if slices.Contains(r.APIGroups, group) && slices.Contains(r.APIVersions, version) && slices.Contains(r.Resources, resource) &&
					slices.Contains(r.Operations, admissionregistrationv1.Create) && slices.Contains(r.Operations, admissionregistrationv1.Update) {
					return true
				}
			}
		}
		return false
	}
	for _, k := range cat.Kinds() {
		for _, v := range k.Versions {
			if !covered(k.Group, v, k.Resource) {
				t.Errorf("%s/%s %s is not registered", k.Group, v, k.Resource)
			}
		}
	}
	if !covered("", "v1", "pods/ephemeralcontainers") {
		t.Error("pods/ephemeralcontainers must be registered so kubectl debug is judged")
	}
	for _, wh := range cfg.Webhooks {
		if *wh.SideEffects != admissionregistrationv1.SideEffectClassNoneOnDryRun || *wh.MatchPolicy != admissionregistrationv1.Equivalent ||
			!slices.Equal(wh.AdmissionReviewVersions, []string{"v1"}) || *wh.FailurePolicy != admissionregistrationv1.Fail {
			t.Errorf("%s: want sideEffects NoneOnDryRun, matchPolicy Equivalent, v1 reviews, failurePolicy Fail", wh.Name)
		}
		if wh.ClientConfig.URL == nil || *wh.ClientConfig.URL != "https://127.0.0.1:9443"+ValidatePath {
			t.Errorf("%s: client config %+v", wh.Name, wh.ClientConfig)
		}
	}
	ws := cfg.Webhooks[0].NamespaceSelector
	if len(ws.MatchExpressions) != 1 || ws.MatchExpressions[0].Key != "kubernetes.io/metadata.name" || !slices.Contains(ws.MatchExpressions[0].Values, "meshguard") {
		t.Errorf("the workload webhook must exclude meshguard's own namespace by name: %+v", ws)
	}
	if len(cfg.Webhooks[1].NamespaceSelector.MatchExpressions) != 0 {
		t.Errorf("Istio configuration must be judged in every namespace, istio-system included")
	}
}

func TestNamespaceEnrollerPatch(t *testing.T) {
	n := &NamespaceEnroller{Key: "istio-injection", Value: "enabled", Exclude: []string{"kube-system"}}
	for _, tc := range []struct {
		name, obj string
		patched   bool
		path      string
	}{
		{"a namespace without labels gets a labels map", `{"metadata":{"name":"shop"}}`, true, "/metadata/labels"},
		{"a namespace with labels gets one label added", `{"metadata":{"name":"shop","labels":{"team":"a"}}}`, true, "/metadata/labels/istio-injection"},
		{"a namespace that states its enrollment is left alone", `{"metadata":{"name":"shop","labels":{"istio.io/dataplane-mode":"ambient"}}}`, false, ""},
		{"an excluded namespace is left alone", `{"metadata":{"name":"kube-system"}}`, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := request("CREATE", "Namespace", "", tc.obj, "")
			resp := n.Handle(t.Context(), req)
			if !resp.Allowed {
				t.Fatalf("enrollment never denies: %+v", resp.AdmissionResponse)
			}
			if tc.patched != (len(resp.Patches) == 1) {
				t.Fatalf("patches %+v", resp.Patches)
			}
			if tc.patched && (resp.Patches[0].Operation != "add" || resp.Patches[0].Path != tc.path) {
				t.Fatalf("patch %+v, want add %s", resp.Patches[0], tc.path)
			}
		})
	}
	if got := escapePointer("istio.io/rev"); got != "istio.io~1rev" {
		t.Fatalf("escapePointer: %s", got)
	}
}
