package app

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"

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
	return renderNetpolsWith(t, nil, files...)
}

// renderNetpolsWith sets the flags (parsed as on the command line) first.
func renderNetpolsWith(t *testing.T, flags []string, files ...string) ([]byte, string) {
	t.Helper()
	var out, errb bytes.Buffer
	o := NewNetpolRenderOptions()
	fs := pflag.NewFlagSet("render", pflag.ContinueOnError)
	o.AddFlags(fs)
	if err := fs.Parse(flags); err != nil {
		t.Fatal(err)
	}
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
// example, with and without --netpol-from-authz, checks the set and the
// preview of cut edges, and judges the output with the catalog: MESH0210-0214
// must never fire on meshguard's own policies.
func TestIntentRenderBookinfo(t *testing.T) {
	extra := filepath.Join(t.TempDir(), "extra.yaml")
	// The gateway namespace too, so the gateway profile is judged as well.
	if err := os.WriteFile(extra, []byte("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: istio-ingress\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	profileSets := []string{
		"bookinfo/mesh-default-deny", "bookinfo/mesh-allow-dns", "bookinfo/mesh-allow-metrics-scrape", "bookinfo/mesh-allow-istiod",
		"istio-ingress/mesh-ingressgateway-lockdown",
		"legacy-reports/mesh-default-deny", "legacy-reports/mesh-allow-dns", "legacy-reports/mesh-allow-metrics-scrape",
		"legacy-reports/mesh-allow-hbone", "legacy-reports/mesh-allow-waypoint-istiod",
	}
	gatewayEdge := "gateway:istio-ingress/istio-ingressgateway -> Deployment/bookinfo/productpage-v1:9080"
	appEdges := []string{
		"Deployment/bookinfo/productpage-v1 -> Deployment/bookinfo/details-v1:9080",
		"Deployment/bookinfo/productpage-v1 -> Deployment/bookinfo/reviews-v1:9080",
		"Deployment/bookinfo/reviews-v1 -> Deployment/bookinfo/ratings-v1:9080",
	}
	section := func(title string, lines ...string) string {
		out := "  " + title + ":\n"
		for _, l := range lines {
			out += "    " + l + "\n"
		}
		return out
	}
	const cutTitle = "enforcing would cut these edges, allowed today (SOURCE -> DESTINATION:PORT)"
	const keptTitle = "kept open by the derived allow policies (plain default deny would cut them)"
	for _, tc := range []struct {
		name    string
		flags   []string
		derived []string
		preview string
	}{
		{
			name:    "routes",
			derived: []string{"bookinfo/mesh-allow-gateway-to-productpage"},
			preview: section(cutTitle, "bookinfo: "+appEdges[0], "bookinfo: "+appEdges[1], "bookinfo: "+appEdges[2]) +
				section(keptTitle, "bookinfo: "+gatewayEdge, "istio-ingress: "+gatewayEdge),
		},
		{
			name:  "from-authz",
			flags: []string{"--netpol-from-authz"},
			derived: []string{
				"bookinfo/mesh-allow-authz-from-productpage-v1", "bookinfo/mesh-allow-authz-from-reviews-v1",
				"bookinfo/mesh-allow-authz-to-details-v1", "bookinfo/mesh-allow-authz-to-ratings-v1",
				"bookinfo/mesh-allow-authz-to-reviews-v1", "bookinfo/mesh-allow-gateway-to-productpage",
			},
			preview: section(keptTitle, "bookinfo: "+appEdges[0], "bookinfo: "+appEdges[1], "bookinfo: "+appEdges[2],
				"bookinfo: "+gatewayEdge, "istio-ingress: "+gatewayEdge),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, stderr := renderNetpolsWith(t, tc.flags, "../../../examples/bookinfo/fixed", extra)
			if !strings.HasSuffix(stderr, tc.preview) {
				t.Errorf("stderr:\n%s\nwant it to end with\n%s", stderr, tc.preview)
			}
			if tc.name == "from-authz" && !strings.Contains(stderr, "note: AuthorizationPolicy bookinfo/reviews-from-productpage allows Deployment/bookinfo/productpage-v1 only some requests") {
				t.Errorf("no note that the L7 conditions are not expressed at L3/4:\n%s", stderr)
			}
			again, _ := renderNetpolsWith(t, tc.flags, "../../../examples/bookinfo/fixed", extra)
			if !bytes.Equal(out, again) {
				t.Fatal("two renders differ")
			}
			judgeRendered(t, out, append(append([]string{}, profileSets...), tc.derived...))
		})
	}
}

// judgeRendered checks the rendered policies' names, then judges them with
// the catalog.
func judgeRendered(t *testing.T, out []byte, want []string) {
	t.Helper()
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
