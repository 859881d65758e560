package audit

import (
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/meshguard/meshguard/rules"
)

func TestOwnedByTemplateController(t *testing.T) {
	owned := func(kind, apiVersion string, controller bool) rules.Object {
		return rules.Object{"metadata": map[string]any{"ownerReferences": []any{
			map[string]any{"kind": kind, "apiVersion": apiVersion, "name": "x", "controller": controller},
		}}}
	}
	rs := schema.GroupKind{Group: "apps", Kind: "ReplicaSet"}
	job := schema.GroupKind{Group: "batch", Kind: "Job"}
	pod := schema.GroupKind{Kind: "Pod"}
	rc := schema.GroupKind{Kind: "ReplicationController"}
	for _, tc := range []struct {
		name string
		gk   schema.GroupKind
		obj  rules.Object
		want bool
	}{
		{"a ReplicaSet controlled by a Deployment is judged through it", rs, owned("Deployment", "apps/v1", true), true},
		{"a Job controlled by a CronJob is judged through it", job, owned("CronJob", "batch/v1", true), true},
		{"a ReplicaSet without an owner is judged itself", rs, rules.Object{"metadata": map[string]any{}}, false},
		{"a non-controller owner reference does not count", rs, owned("Deployment", "apps/v1", false), false},
		{"a ReplicaSet controlled by an Argo Rollout is judged through it", rs, owned("Rollout", "argoproj.io/v1alpha1", true), true},
		{"a ReplicationController controlled by a DeploymentConfig is judged through it", rc, owned("DeploymentConfig", "apps.openshift.io/v1", true), true},
		{"a ReplicaSet owned by another controller kind is judged itself", rs, owned("Workflow", "argoproj.io/v1alpha1", true), false},
		{"a ReplicaSet owned by a Rollout of another group is judged itself", rs, owned("Rollout", "example.com/v1", true), false},
		{"a Pod is always judged itself: it is seen after injection", pod, owned("ReplicaSet", "apps/v1", true), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ownedByTemplateController(tc.gk, tc.obj); got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}
