package e2e_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/meshguard/meshguard/test/e2e/framework"
)

// TestDemo runs `make demo`'s program (test/demo) with a freshly built
// meshguard and -short output: it starts its own control plane and the real
// `meshguard serve`, must show the insecure examples denied and the fixed ones
// admitted, and must remove everything it started. Skipped with -short.
func TestDemo(t *testing.T) {
	env := framework.Shared(t) // skip rules: the demo needs the same binaries
	if testing.Short() {
		t.Skip("the demo starts a second control plane; skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	dir := t.TempDir()
	demo, meshguard := filepath.Join(dir, "demo"), filepath.Join(dir, "meshguard")
	for pkg, out := range map[string]string{"./test/demo": demo, "./cmd/meshguard": meshguard} {
		build := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
		build.Dir = env.Root
		if b, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, b)
		}
	}
	cmd := exec.CommandContext(ctx, demo, "-short", "-bin", env.BinDir, "-meshguard", meshguard)
	cmd.Dir = env.Root
	began := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("demo ran in %s:\n%s", time.Since(began).Round(100*time.Millisecond), out)
	if err != nil {
		t.Fatalf("the demo failed: %v", err)
	}
	text := string(out)
	for _, want := range []string{
		"== 1. Start the control plane",
		"== 2. Start meshguard serve",
		"== 3. Register the webhook configurations",
		"validatingwebhookconfiguration.admissionregistration.k8s.io/meshguard created",
		"== 4. Apply examples/bookinfo/insecure",
		"examples/bookinfo/insecure/30-reviews.yaml",
		"MESH0150",
		"MESH0001",
		"== 5. Apply examples/bookinfo/fixed",
		"fixed:    every object admitted (8 files)",
		"stopped meshguard serve",
		"stopped kube-apiserver and etcd",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the demo output lacks %q", want)
		}
	}
	m := regexp.MustCompile(`removed (\S*meshguard-demo-\S+)`).FindStringSubmatch(text)
	if m == nil {
		t.Fatal("the demo did not report removing its temporary directory")
	}
	if _, err := os.Stat(m[1]); !os.IsNotExist(err) {
		t.Errorf("the demo left %s behind", m[1])
	}
}
