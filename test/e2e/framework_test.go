package e2e_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/meshguard/meshguard/test/e2e/framework"
)

// TestControlPlane checks the framework's wiring: the real kubectl reaches the
// API server through the written kubeconfig, Istio's CRDs are established, and
// kubectl's failures come back as exit codes with stderr.
func TestControlPlane(t *testing.T) {
	env := framework.Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	res, err := env.Kubectl(ctx, nil, "get", "crd", "-o", "name")
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("kubectl get crd: %v\n%s", err, res)
	}
	for _, crd := range []string{
		"peerauthentications.security.istio.io",
		"authorizationpolicies.security.istio.io",
		"requestauthentications.security.istio.io",
		"destinationrules.networking.istio.io",
		"envoyfilters.networking.istio.io",
		"sidecars.networking.istio.io",
	} {
		if !strings.Contains(res.Stdout, "customresourcedefinition.apiextensions.k8s.io/"+crd+"\n") {
			t.Errorf("CRD %s is not installed; kubectl printed:\n%s", crd, res.Stdout)
		}
	}

	res, err = env.Kubectl(ctx, nil, "get", "namespace", "does-not-exist")
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 1 || !strings.Contains(res.Stderr, `namespaces "does-not-exist" not found`) {
		t.Errorf("kubectl get of a missing namespace: want exit 1 and NotFound on stderr, got\n%s", res)
	}
}
