// Package hostile builds the oversized AdmissionReviews of issue 10: a
// Deployment with thousands of containers, every one of which violates
// several rules (NET_ADMIN, NET_RAW, privileged, the proxy's UID), as an
// UPDATE whose old object is the same, so the review carries the object
// twice. The webhook's resilience tests and `make bench`'s hostile-load
// measurement send them.
package hostile

import (
	"encoding/json"
	"fmt"
)

// containerBytes is about what one container adds to a review (object and
// oldObject together), used to pick the container count for a size.
const containerBytes = 2 * 160

// Review returns an admission.k8s.io/v1 UPDATE AdmissionReview of about size
// bytes for the Deployment "flood" in namespace, with uid as its request UID.
// Every container has findings.
func Review(size int, namespace, uid string) []byte {
	n := max(1, (size-1024)/containerBytes)
	return ReviewWithContainers(n, namespace, uid)
}

// ReviewWithContainers is Review with an explicit container count.
func ReviewWithContainers(n int, namespace, uid string) []byte {
	containers := make([]any, n)
	for i := range containers {
		containers[i] = map[string]any{
			"name":  fmt.Sprintf("c%06d", i),
			"image": "registry.example.com/app:1.0",
			"securityContext": map[string]any{
				"privileged": true,
				"runAsUser":  1337,
				"capabilities": map[string]any{
					"add": []any{"NET_ADMIN", "NET_RAW"},
				},
			},
		}
	}
	obj := map[string]any{
		"apiVersion": "apps/v1",
		"kind":       "Deployment",
		"metadata":   map[string]any{"name": "flood", "namespace": namespace, "labels": map[string]any{"app": "flood"}},
		"spec": map[string]any{
			"replicas": 1,
			"selector": map[string]any{"matchLabels": map[string]any{"app": "flood"}},
			"template": map[string]any{
				"metadata": map[string]any{"labels": map[string]any{"app": "flood"}},
				"spec":     map[string]any{"containers": containers},
			},
		},
	}
	review := map[string]any{
		"apiVersion": "admission.k8s.io/v1",
		"kind":       "AdmissionReview",
		"request": map[string]any{
			"uid":       uid,
			"kind":      map[string]any{"group": "apps", "version": "v1", "kind": "Deployment"},
			"resource":  map[string]any{"group": "apps", "version": "v1", "resource": "deployments"},
			"name":      "flood",
			"namespace": namespace,
			"operation": "UPDATE",
			"userInfo":  map[string]any{"username": "attacker", "groups": []any{"system:authenticated"}},
			"object":    obj,
			"oldObject": obj,
			"dryRun":    false,
			"options":   map[string]any{"apiVersion": "meta.k8s.io/v1", "kind": "UpdateOptions"},
		},
	}
	b, err := json.Marshal(review)
	if err != nil {
		panic(err) // only maps, slices, strings and numbers
	}
	return b
}
