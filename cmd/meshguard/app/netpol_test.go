package app

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/rules"
)

// renderNetpols runs `meshguard netpol render` over the files and returns
// its stdout.
func renderNetpols(t *testing.T, files ...string) []byte {
	out, _ := renderNetpolsErr(t, files...)
	return out
}

// renderNetpolsErr returns stdout and stderr.
func renderNetpolsErr(t *testing.T, files ...string) ([]byte, string) {
	t.Helper()
	var out, errb bytes.Buffer
	o := NewNetpolRenderOptions()
	o.Filenames = files
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := RunNetpolRender(context.Background(), Streams{Out: &out, Err: &errb}, o); err != nil {
		t.Fatalf("render: %v\n%s", err, errb.String())
	}
	return out.Bytes(), errb.String()
}

// TestIntentRenderBookinfo renders the policies for the fixed Bookinfo
// example, checks the set, and judges the output with the catalog:
// MESH0210-0214 must never fire on meshguard's own policies.
func TestIntentRenderBookinfo(t *testing.T) {
	extra := filepath.Join(t.TempDir(), "extra.yaml")
	// The gateway namespace too, so the gateway profile is judged as well.
	if err := os.WriteFile(extra, []byte("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: istio-ingress\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, stderr := renderNetpolsErr(t, "../../../examples/bookinfo/fixed", extra)
	// The preview, from the graph: the edges plain default deny would cut,
	// and which the rendered gateway policy restores.
	wantCut := `  plain default deny cuts 4 edges allowed today (namespace of the destination: from -> to:port):
    bookinfo: Deployment/bookinfo/productpage-v1 -> Deployment/bookinfo/details-v1:9080
    bookinfo: Deployment/bookinfo/productpage-v1 -> Deployment/bookinfo/reviews-v1:9080
    bookinfo: Deployment/bookinfo/reviews-v1 -> Deployment/bookinfo/ratings-v1:9080
    bookinfo: gateway:istio-ingress/istio-ingressgateway -> Deployment/bookinfo/productpage-v1:9080 (restored by the rendered allow policies)
`
	if !strings.HasSuffix(stderr, wantCut) {
		t.Errorf("stderr:\n%s\nwant it to end with\n%s", stderr, wantCut)
	}
	again := renderNetpols(t, "../../../examples/bookinfo/fixed", extra)
	if !bytes.Equal(out, again) {
		t.Fatal("two renders differ")
	}
	file := filepath.Join(t.TempDir(), "netpols.yaml")
	if err := os.WriteFile(file, out, 0o644); err != nil {
		t.Fatal(err)
	}
	in, err := audit.Read([]string{file}, nil)
	if err != nil || len(in.Errors) > 0 {
		t.Fatalf("read rendered policies: %v %v", err, in.Errors)
	}
	var got []string
	for _, d := range in.Documents {
		if d.Object["kind"] != "NetworkPolicy" {
			t.Errorf("rendered a %v", d.Object["kind"])
		}
		meta := d.Object["metadata"].(map[string]any)
		got = append(got, meta["namespace"].(string)+"/"+meta["name"].(string))
	}
	want := []string{
		"bookinfo/mesh-default-deny", "bookinfo/mesh-allow-dns", "bookinfo/mesh-allow-metrics-scrape", "bookinfo/mesh-allow-istiod",
		"istio-ingress/mesh-ingressgateway-lockdown",
		"legacy-reports/mesh-default-deny", "legacy-reports/mesh-allow-dns", "legacy-reports/mesh-allow-metrics-scrape",
		"legacy-reports/mesh-allow-hbone", "legacy-reports/mesh-allow-waypoint-istiod",
		"bookinfo/mesh-allow-gateway-to-productpage",
	}
	if !slices.Equal(got, want) {
		t.Errorf("rendered\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	for _, s := range []string{"port: 9080", "istio: ingressgateway", "app: productpage", "- istio-ingress"} {
		if !bytes.Contains(out, []byte(s)) {
			t.Errorf("gateway policy lacks %q", s)
		}
	}
	cat, err := rules.DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	ev, err := rules.New(cat, rules.NewConfig())
	if err != nil {
		t.Fatal(err)
	}
	rep := audit.Run(context.Background(), ev, in.Documents, audit.Options{})
	if rep.Evaluated != len(in.Documents) {
		t.Errorf("evaluated %d of %d policies", rep.Evaluated, len(in.Documents))
	}
	for _, f := range rep.Findings {
		if f.Code >= "MESH0210" && f.Code <= "MESH0214" {
			t.Errorf("%s fires on rendered %s: %s", f.Code, f.Object, f.Message)
		}
	}
}
