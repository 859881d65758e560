package rules

import "testing"

func TestWorkloadMeshModeTemplateKinds(t *testing.T) {
	c, err := DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := map[string]any{"metadata": map[string]any{"labels": map[string]any{"sidecar.istio.io/inject": "true"}}, "spec": map[string]any{}}
	for _, tc := range []struct {
		name     string
		obj      Object
		workload bool
	}{
		{"a Rollout with a template", Object{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": map[string]any{"name": "r", "namespace": "shop"},
			"spec": map[string]any{"template": tmpl}}, true},
		{"a DeploymentConfig", Object{"apiVersion": "apps.openshift.io/v1", "kind": "DeploymentConfig", "metadata": map[string]any{"name": "d", "namespace": "shop"},
			"spec": map[string]any{"template": tmpl}}, true},
		{"a Rollout with workloadRef has no pods of its own", Object{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": map[string]any{"name": "r", "namespace": "shop"},
			"spec": map[string]any{"workloadRef": map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "name": "r"}}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, workload := e.WorkloadMeshMode(nil, tc.obj, "shop", false)
			if workload != tc.workload {
				t.Fatalf("workload %v, want %v", workload, tc.workload)
			}
		})
	}
}
