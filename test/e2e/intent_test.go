package e2e_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/meshguard/meshguard/test/e2e/framework"
)

// bookinfoFiles reads examples/bookinfo/fixed: file name -> content.
func bookinfoFiles(t *testing.T, env *framework.Env) map[string]string {
	t.Helper()
	dir := filepath.Join(env.Root, "examples", "bookinfo", "fixed")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = string(b)
	}
	for _, f := range []string{"40-ratings.yaml", "70-gateway.yaml"} {
		if out[f] == "" {
			t.Fatalf("examples/bookinfo/fixed/%s is missing", f)
		}
	}
	return out
}

// joinManifests joins the files in name order into one stream.
func joinManifests(files map[string]string) string {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	var docs []string
	for _, n := range names {
		docs = append(docs, files[n])
	}
	return strings.Join(docs, "\n---\n")
}

// bookinfoPolicies runs `meshguard netpol render --cluster` and returns the
// names of the policies it renders in namespace bookinfo, in output order.
func bookinfoPolicies(t *testing.T, env *framework.Env) []string {
	t.Helper()
	code, out, errOut := runCLI(t, "netpol", "render", "--cluster", "--kubeconfig", env.KubeconfigPath, "--page-size", "4")
	if code != 0 {
		t.Fatalf("netpol render --cluster: exit %d\n%s", code, errOut)
	}
	var names []string
	for _, doc := range strings.Split(out, "\n---\n") {
		var np struct {
			Kind     string
			Metadata struct{ Name, Namespace string }
		}
		if err := yaml.Unmarshal([]byte(doc), &np); err != nil {
			t.Fatalf("render output is not YAML: %v\n%s", err, doc)
		}
		if np.Kind != "NetworkPolicy" {
			t.Fatalf("rendered a %q:\n%s", np.Kind, doc)
		}
		if np.Metadata.Namespace == "bookinfo" {
			names = append(names, np.Metadata.Name)
		}
	}
	return names
}

// TestIntentRenderClusterFollowsRoutes applies examples/bookinfo/fixed (with
// its ingress Gateway and VirtualService) to the real API server and checks
// that `netpol render --cluster` renders bookinfo's sidecar set plus
// mesh-allow-gateway-to-productpage, and that deleting the VirtualService
// removes the gateway policy from the render.
func TestIntentRenderClusterFollowsRoutes(t *testing.T) {
	env := framework.Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	manifests := bookinfoFiles(t, env)
	vs := manifests["70-gateway.yaml"]
	if _, err := env.Apply(ctx, joinManifests(manifests)); err != nil {
		t.Fatalf("apply examples/bookinfo/fixed: %v", err)
	}
	t.Cleanup(func() {
		// Later tests apply the example as a whole; leave it whole.
		if _, err := env.Apply(context.Background(), vs); err != nil {
			t.Errorf("re-apply the VirtualService: %v", err)
		}
	})
	sidecarSet := []string{"mesh-default-deny", "mesh-allow-dns", "mesh-allow-metrics-scrape", "mesh-allow-istiod"}
	want := append(slices.Clone(sidecarSet), "mesh-allow-gateway-to-productpage")
	if got := bookinfoPolicies(t, env); !slices.Equal(got, want) {
		t.Fatalf("bookinfo policies %v, want %v", got, want)
	}
	if _, err := env.Kubectl(ctx, nil, "delete", "virtualservice", "bookinfo", "-n", "bookinfo"); err != nil {
		t.Fatalf("delete the VirtualService: %v", err)
	}
	if got := bookinfoPolicies(t, env); !slices.Equal(got, sidecarSet) {
		t.Fatalf("after deleting the VirtualService: bookinfo policies %v, want %v", got, sidecarSet)
	}
}
