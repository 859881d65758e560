package graph

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/rules"
)

// testEngine is an engine over the built-in catalog with the default configuration.
func testEngine(t testing.TB) *rules.Engine {
	t.Helper()
	cat, err := rules.DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	e, err := rules.New(cat, nil)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// readDir reads manifests as `meshguard audit -f` does.
func readDir(t testing.TB, paths ...string) []rules.Object {
	t.Helper()
	in, err := audit.Read(paths, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(in.Errors) > 0 {
		t.Fatalf("read %v: %v", paths, in.Errors)
	}
	objs := make([]rules.Object, 0, len(in.Documents))
	for _, d := range in.Documents {
		objs = append(objs, d.Object)
	}
	return objs
}

// parseObjects decodes a multi-document YAML string.
func parseObjects(t testing.TB, docs string) []rules.Object {
	t.Helper()
	var out []rules.Object
	for _, d := range strings.Split(docs, "\n---\n") {
		if strings.TrimSpace(d) == "" {
			continue
		}
		var o map[string]any
		if err := yaml.Unmarshal([]byte(d), &o); err != nil {
			t.Fatalf("parse %q: %v", d, err)
		}
		out = append(out, o)
	}
	return out
}

func compute(t testing.TB, objs []rules.Object, opts Options) *Graph {
	t.Helper()
	if opts.Engine == nil {
		opts.Engine = testEngine(t)
	}
	g, err := Compute(objs, opts)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// edgeLine renders an edge as "from -> to:port verdict transport".
func edgeLine(g *Graph, e Edge) string {
	return fmt.Sprintf("%s -> %s:%d %s %s", g.Nodes[e.From].ID, g.Nodes[e.To].ID, e.Port, e.Verdict, e.Transport)
}

// edgeLines renders every edge, sorted.
func edgeLines(g *Graph) []string {
	var out []string
	for _, e := range g.Edges {
		out = append(out, edgeLine(g, e))
	}
	sort.Strings(out)
	return out
}

// findEdge returns the edge from one node to a port of another.
func findEdge(t testing.TB, g *Graph, from, to string, port int) Edge {
	t.Helper()
	for _, e := range g.Edges {
		if g.Nodes[e.From].ID == from && g.Nodes[e.To].ID == to && int(e.Port) == port {
			return e
		}
	}
	t.Fatalf("no edge %s -> %s:%d; edges:\n%s", from, to, port, strings.Join(edgeLines(g), "\n"))
	return Edge{}
}

// auditFindings audits manifests as `meshguard audit -f` does.
func auditFindings(t testing.TB, paths ...string) []rules.Finding {
	t.Helper()
	in, err := audit.Read(paths, nil)
	if err != nil {
		t.Fatal(err)
	}
	rep := audit.Run(context.Background(), testEngine(t), in.Documents, audit.Options{})
	var out []rules.Finding
	for _, f := range rep.Findings {
		out = append(out, f.Finding)
	}
	return out
}
