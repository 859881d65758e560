package e2e_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/meshguard/meshguard/test/e2e/framework"
)

// istiod126 is istiod 1.26 as its chart deploys it (no injector webhook
// configuration labels the revision with its release).
const istiod126 = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: istiod
  namespace: %s
  labels: {app: istiod, istio: pilot}
spec:
  replicas: 0
  selector:
    matchLabels: {app: istiod}
  template:
    metadata:
      labels: {app: istiod, istio: pilot}
    spec:
      containers:
      - name: discovery
        image: docker.io/istio/pilot:1.26.3
`

// TestIstioReleaseFromIstiod: meshguard serve reads istiod's Deployments
// for the Istio release of the default revision. sidecar.istio.io/inject
// "False" opts a pod out of injection under Istio 1.26 (MESH0110 denies it)
// but means "the namespace default" since 1.27; the same request is decided
// by the istiod in istio-system, and a Deployment labelled app=istiod in a
// tenant's namespace changes nothing.
func TestIstioReleaseFromIstiod(t *testing.T) {
	env := framework.Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const ns = "e2e-istiod-release"
	mustKubectl(t, ctx, env, namespaceYAML(ns, map[string]string{"istio-injection": "enabled"})+"---\n"+namespaceYAML("istio-system", nil), "apply", "-f", "-")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		kubectl(t, ctx, env, "", "delete", "deployment", "istiod", "-n", "istio-system", "--ignore-not-found")
		kubectl(t, ctx, env, "", "delete", "namespace", ns, "--wait=false")
	})
	mg := startMeshguard(t, env, "mode: enforce\n")
	mg.register(t, env)
	falseValue := deploymentYAML(ns, "capital-false", deploymentOpts{PodLabels: map[string]string{"sidecar.istio.io/inject": "False"}})
	try := func() framework.KubectlResult {
		return kubectl(t, ctx, env, falseValue, "apply", "--dry-run=server", "-f", "-")
	}
	if res := try(); res.ExitCode != 0 {
		t.Fatalf("newest semantics (no istiod): \"False\" is the namespace default and admitted, got:\n%s", res)
	}
	// A tenant's look-alike does not count.
	mustKubectl(t, ctx, env, fmt.Sprintf(istiod126, ns), "apply", "-f", "-")
	// istiod 1.26 in istio-system does.
	mustKubectl(t, ctx, env, fmt.Sprintf(istiod126, "istio-system"), "apply", "-f", "-")
	var last framework.KubectlResult
	if !poll(60*time.Second, 200*time.Millisecond, func() bool {
		last = try()
		return last.ExitCode != 0
	}) {
		t.Fatalf("with istiod 1.26 in istio-system, \"False\" is an opt-out: want a MESH0110 denial within 60s, got:\n%s", last)
	}
	assertDenied(t, last, "MESH0110")
	// Removing istiod 1.26 from istio-system leaves only the tenant's: the
	// newest semantics again.
	mustKubectl(t, ctx, env, "", "delete", "deployment", "istiod", "-n", "istio-system")
	if !poll(60*time.Second, 200*time.Millisecond, func() bool {
		last = try()
		return last.ExitCode == 0
	}) {
		t.Fatalf("after istiod 1.26 is gone the tenant's look-alike must not keep 1.26 semantics, got:\n%s", last)
	}
}
