package chart

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/meshguard/meshguard/test/e2e/framework"
)

// chart is a rendered chart: every document, in order.
type chart struct {
	objs []*unstructured.Unstructured
	raw  string
}

// repoRoot returns the repository root.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := framework.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// helmPath returns bin/helm, skipping the test when it is not built (failing
// with MESHGUARD_E2E=required).
func helmPath(t testing.TB) string {
	t.Helper()
	p := filepath.Join(repoRoot(t), "bin", "helm")
	if _, err := os.Stat(p); err != nil {
		msg := "chart: bin/helm is not built; run `make tools` to build it from source"
		if os.Getenv(framework.EnvE2E) == "required" {
			t.Fatalf("%s (%s=required)", msg, framework.EnvE2E)
		}
		t.Skip(msg)
	}
	return p
}

// helm runs bin/helm with a private home, returning stdout, stderr and the error.
func helm(t testing.TB, args ...string) (string, string, error) {
	t.Helper()
	home := t.TempDir()
	cmd := exec.Command(helmPath(t), args...)
	cmd.Dir = repoRoot(t)
	cmd.Env = []string{
		"HOME=" + home, "PATH=" + os.Getenv("PATH"),
		"HELM_CACHE_HOME=" + filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME=" + filepath.Join(home, "config"),
		"HELM_DATA_HOME=" + filepath.Join(home, "data"),
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

const chartDir = "charts/meshguard"

// render runs helm template for a release in a namespace with extra
// arguments (--set ...) and parses the output.
func render(t testing.TB, release, namespace string, args ...string) *chart {
	t.Helper()
	out, stderr, err := helm(t, append([]string{"template", release, chartDir, "--namespace", namespace}, args...)...)
	if err != nil {
		t.Fatalf("helm template %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return parse(t, out)
}

func parse(t testing.TB, manifests string) *chart {
	t.Helper()
	c := &chart{raw: manifests}
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(manifests), 4096)
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatalf("parse rendered chart: %v", err)
		}
		if m == nil {
			continue
		}
		c.objs = append(c.objs, &unstructured.Unstructured{Object: m})
	}
	return c
}

// get returns the one object of a kind and name, failing when it is missing.
func (c *chart) get(t testing.TB, kind, name string) *unstructured.Unstructured {
	t.Helper()
	if o := c.find(kind, name); o != nil {
		return o
	}
	t.Fatalf("rendered chart has no %s %q; it has %s", kind, name, strings.Join(c.names(), ", "))
	return nil
}

func (c *chart) find(kind, name string) *unstructured.Unstructured {
	for _, o := range c.objs {
		if o.GetKind() == kind && (name == "" || o.GetName() == name) {
			return o
		}
	}
	return nil
}

func (c *chart) names() []string {
	var out []string
	for _, o := range c.objs {
		out = append(out, o.GetKind()+"/"+o.GetName())
	}
	return out
}

// withoutHooks returns the manifests Helm installs (hooks run only at their event).
func (c *chart) withoutHooks() string {
	var b strings.Builder
	for _, o := range c.objs {
		if _, hook := o.GetAnnotations()["helm.sh/hook"]; hook {
			continue
		}
		y, err := yaml.Marshal(o.Object)
		if err != nil {
			panic(err)
		}
		b.WriteString("---\n")
		b.Write(y)
	}
	return b.String()
}

// hooks returns the hook manifests.
func (c *chart) hooks() string {
	var b strings.Builder
	for _, o := range c.objs {
		if _, hook := o.GetAnnotations()["helm.sh/hook"]; !hook {
			continue
		}
		y, _ := yaml.Marshal(o.Object)
		b.WriteString("---\n")
		b.Write(y)
	}
	return b.String()
}

// into converts an object to a typed one.
func into(t testing.TB, o *unstructured.Unstructured, out any) {
	t.Helper()
	b, err := yaml.Marshal(o.Object)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(b, out); err != nil {
		t.Fatalf("%s/%s: %v", o.GetKind(), o.GetName(), err)
	}
}

func deployment(t testing.TB, c *chart, name string) *appsv1.Deployment {
	t.Helper()
	var d appsv1.Deployment
	into(t, c.get(t, "Deployment", name), &d)
	return &d
}
