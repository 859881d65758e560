package rules

import (
	"reflect"
	"testing"
)

func istiodDeployment(labels map[string]any, image string) Object {
	return Object{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": "istiod", "namespace": "istio-system", "labels": labels},
		"spec": map[string]any{"template": map[string]any{"spec": map[string]any{"containers": []any{
			map[string]any{"name": "discovery", "image": image},
		}}}},
	}
}

func TestVersionsFromIstiod(t *testing.T) {
	deps := []Object{
		// The image tag, with a variant, when no version label is set.
		istiodDeployment(map[string]any{"app": "istiod"}, "docker.io/istio/pilot:1.26.3-distroless"),
		// The chart's version label beats the tag.
		istiodDeployment(map[string]any{"app": "istiod", "istio.io/rev": "canary", "app.kubernetes.io/version": "1.28.1"}, "registry.example.com/pilot:custom"),
		// A digest after the tag, on a registry with a port.
		istiodDeployment(map[string]any{"app": "istiod", "istio.io/rev": "stable"}, "registry.example.com:5000/istio/pilot:1.27.2@sha256:0123"),
		// Nothing readable: a custom tag and no label.
		istiodDeployment(map[string]any{"app": "istiod", "istio.io/rev": "custom"}, "registry.example.com:5000/istio/pilot"),
		istiodDeployment(map[string]any{"app": "istiod", "istio.io/rev": "latest"}, "docker.io/istio/pilot:latest"),
		// Not istiod.
		istiodDeployment(map[string]any{"app": "web"}, "docker.io/istio/pilot:1.22.0"),
	}
	got := VersionsFromIstiod(deps)
	want := map[string]string{"default": "1.26.3-distroless", "canary": "1.28.1", "stable": "1.27.2"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("VersionsFromIstiod = %v, want %v", got, want)
	}
	if txt := IstioVersionsText(got); txt != "canary=1.28, default=1.26, stable=1.27" {
		t.Errorf("IstioVersionsText = %q", txt)
	}
}

// The injector webhook configuration's version label wins over istiod's for
// the same revision; istiod fills the revisions no configuration labels.
func TestSnapshotInjectorVersionsPrecedence(t *testing.T) {
	snap := NewSnapshot()
	snap.Add(istiodDeployment(map[string]any{"app": "istiod"}, "docker.io/istio/pilot:1.26.3"), "")
	snap.Add(istiodDeployment(map[string]any{"app": "istiod", "istio.io/rev": "canary"}, "docker.io/istio/pilot:1.25.0"), "")
	snap.Add(Object{
		"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
		"metadata": map[string]any{"name": "istio-sidecar-injector", "labels": map[string]any{
			"app": "sidecar-injector", "istio.io/rev": "default", "app.kubernetes.io/version": "1.28.2",
		}},
	}, "")
	// A tenant's Deployment labelled app=istiod, outside the control-plane
	// and root namespaces, never sets the release.
	fake := istiodDeployment(map[string]any{"app": "istiod", "istio.io/rev": "tenant"}, "docker.io/istio/pilot:1.29.0")
	fake["metadata"].(map[string]any)["namespace"] = "shop"
	snap.Add(fake, "")
	cc, err := NewConfig().compile()
	if err != nil {
		t.Fatal(err)
	}
	got := injectorVersions(cc, snap)
	want := map[string]string{"default": "1.28.2", "canary": "1.25.0"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("InjectorVersions = %v, want %v", got, want)
	}
	// And the engine applies them per revision: "no" opts out under 1.25 only.
	e := &engine{cfg: cc, ctx: snap}
	if v := e.istioVersionFor("canary"); v.Minor != 25 {
		t.Errorf("canary judged as %v, want 1.25 from istiod", v)
	}
	if v := e.istioVersionFor("default"); v.Minor != 28 {
		t.Errorf("default judged as %v, want 1.28 from the webhook configuration", v)
	}
}
