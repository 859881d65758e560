package app

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/graph"
)

func TestGraphCommandFlags(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"-f or --cluster is required", []string{"graph"}, "-f/--filename: required"},
		{"-f and --cluster exclude each other", []string{"graph", "-f", "x", "--cluster"}, "mutually exclusive"},
		{"an unknown format is refused", []string{"graph", "-f", "x", "-o", "png"}, `unknown format "png"`},
		{"a negative --collapse-above is refused", []string{"graph", "-f", "x", "--collapse-above", "-1"}, "--collapse-above: must not be negative"},
		{"a bad namespace is refused", []string{"graph", "-f", "x", "-n", "Not_A_Namespace"}, "-n/--namespace"},
		{"a bad assumed gateway is refused", []string{"graph", "-f", "x", "--assume-gateway", "nogateway"}, `--assume-gateway: "nogateway" is not namespace/serviceaccount`},
		{"--kubeconfig needs --cluster", []string{"graph", "-f", "x", "--kubeconfig", "k"}, "only used with --cluster"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, _, errOut := run(t, "", c.args...)
			if code != ExitUsage || !strings.Contains(errOut, c.want) {
				t.Fatalf("exit %d, stderr %q; want exit 2 and %q", code, errOut, c.want)
			}
		})
	}
}

func TestGraphCommandBookinfo(t *testing.T) {
	root := filepath.Join("..", "..", "..")
	fixed := filepath.Join(root, "examples", "bookinfo", "fixed")
	code, out, errOut := run(t, "", "graph", "-f", fixed, "-o", "json")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var doc graph.Document
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Kind != graph.Kind || doc.Summary.Edges != 20 || doc.Summary.ByVerdict["conditional"] != 4 {
		t.Fatalf("summary %+v", doc.Summary)
	}
	if !strings.Contains(errOut, "meshguard graph: 6 nodes, 20 edges (4 denied-netpol, 3 rejected-mtls, 9 denied-authz, 4 conditional)") {
		t.Errorf("stderr summary: %q", errOut)
	}

	// --workload keeps its edges; --collapse-above 1 collapses and says so.
	code, out, errOut = run(t, "", "graph", "-f", fixed, "-o", "json", "-n", "bookinfo", "--workload", "details-v1", "--collapse-above", "0")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	doc = graph.Document{}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	for _, e := range doc.Edges {
		if e.From != "Deployment/bookinfo/details-v1" && e.To != "Deployment/bookinfo/details-v1" {
			t.Errorf("edge %s -> %s does not touch details", e.From, e.To)
		}
	}
	code, out, _ = run(t, "", "graph", "-f", fixed, "--collapse-above", "1")
	if code != ExitOK || !strings.Contains(out, "4 workloads are more than 1: collapsed into 1 namespace nodes") || !strings.Contains(out, `"namespace bookinfo\n4 workloads · sidecar"`) {
		t.Errorf("collapsed DOT (exit %d):\n%s", code, out)
	}
	code, _, errOut = run(t, "", "graph", "-f", fixed, "--workload", "nope")
	if code != ExitUsage || !strings.Contains(errOut, `no workload "nope"`) {
		t.Errorf("an unknown workload: exit %d %q", code, errOut)
	}

	// svg and html to a file.
	dir := t.TempDir()
	for _, f := range []string{"svg", "html"} {
		path := filepath.Join(dir, "g."+f)
		if code, _, errOut := run(t, "", "graph", "-f", fixed, "-o", f, "--output-file", path); code != ExitOK {
			t.Fatalf("-o %s: exit %d: %s", f, code, errOut)
		}
		b, err := os.ReadFile(path)
		if err != nil || !strings.Contains(string(b), "<svg") {
			t.Fatalf("-o %s wrote no SVG: %v", f, err)
		}
	}

	// A document that cannot be read means no graph.
	code, _, errOut = run(t, "kind: [\n", "graph", "-f", "-")
	if code != ExitUsage || !strings.Contains(errOut, "cannot read every object, so no graph is drawn") {
		t.Errorf("unreadable input: exit %d %q", code, errOut)
	}
}
