package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
)

// TestGraphRenderDOT: allowed edges are drawn with their verdict's colour and
// the legend; denied ones only counted unless asked for.
func TestGraphRenderDOT(t *testing.T) {
	g := compute(t, readDir(t, "../examples/bookinfo/insecure"), Options{})
	var b bytes.Buffer
	if err := g.WriteDOT(&b, RenderOptions{}); err != nil {
		t.Fatal(err)
	}
	dot := b.String()
	for _, want := range []string{
		`label=":9080 allowed-plaintext", color="#d50000"`,
		`label=":9080 allowed-by-default", color="#ef6c00"`,
		`legend_5_a -> legend_5_b [label="allowed-plaintext: allowed in PLAINTEXT"`,
		`subgraph cluster_0 {`, `label="namespace bookinfo"`,
	} {
		if !strings.Contains(dot, want) {
			t.Errorf("the DOT lacks %q:\n%s", want, dot)
		}
	}
	fixed := compute(t, readDir(t, "../examples/bookinfo/fixed"), Options{})
	b.Reset()
	if err := fixed.WriteDOT(&b, RenderOptions{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "16 denied or rejected edges not drawn") || strings.Contains(b.String(), "denied-authz") {
		t.Errorf("the fixed DOT must count, not draw, its 16 denied edges:\n%s", b.String())
	}
	b.Reset()
	if err := fixed.WriteDOT(&b, RenderOptions{ShowDenied: true}); err != nil {
		t.Fatal(err)
	}
	if strings.Count(b.String(), " -> n") != 20 {
		t.Errorf("--show-denied must draw all 20 edges:\n%s", b.String())
	}
}

// TestGraphRenderSVGAndHTML renders in-process with Graphviz (WebAssembly)
// and checks that the HTML page is self-contained.
func TestGraphRenderSVGAndHTML(t *testing.T) {
	g := compute(t, readDir(t, "../examples/bookinfo/fixed"), Options{})
	var svg bytes.Buffer
	if err := g.WriteSVG(context.Background(), &svg, RenderOptions{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(svg.String(), "<svg") || !strings.Contains(svg.String(), "productpage&#45;v1") || !strings.Contains(svg.String(), "conditional") {
		t.Fatalf("the SVG lacks the graph:\n%s", svg.String())
	}
	var page bytes.Buffer
	if err := g.WriteHTML(context.Background(), &page, RenderOptions{}); err != nil {
		t.Fatal(err)
	}
	p := page.String()
	for _, bad := range []string{"<script", "src=", "href=\"http", "@import", "url("} {
		if strings.Contains(p, bad) {
			t.Errorf("the page is not self-contained: it holds %q", bad)
		}
	}
	for _, want := range []string{"<!DOCTYPE html>", "<svg", "allowed when bookinfo/productpage-from-gateway", "conditional 4"} {
		if !strings.Contains(p, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
}

// TestGraphJSONDocument: the JSON document has apiVersion and kind, and
// names edge ends by node ID.
func TestGraphJSONDocument(t *testing.T) {
	g := compute(t, readDir(t, "../examples/bookinfo/fixed"), Options{})
	var b bytes.Buffer
	if err := g.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var doc Document
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.APIVersion != APIVersion || doc.Kind != Kind || len(doc.Nodes) != 6 || len(doc.Edges) != 20 || doc.Summary.ByVerdict["conditional"] != 4 {
		t.Fatalf("document: %+v", doc.Summary)
	}
	found := false
	for _, e := range doc.Edges {
		if e.From == gateway && e.To == productpage && e.Port == 9080 && e.Verdict == Conditional && e.Transport == TransportMTLS {
			found = true
		}
	}
	if !found {
		t.Errorf("no gateway -> productpage:9080 conditional edge in:\n%s", b.String())
	}
}

// TestGraphCollapseAndFilter: above the threshold workloads become
// namespace nodes and the graph says so; filters keep a workload's edges.
func TestGraphCollapseAndFilter(t *testing.T) {
	g := compute(t, syntheticMesh(4, 5), Options{})
	c := g.Collapse(10)
	if c.Collapsed == nil || c.Collapsed.Workloads != 20 || c.Collapsed.Namespaces != 4 {
		t.Fatalf("collapse: %+v", c.Collapsed)
	}
	if !strings.Contains(strings.Join(c.Notes, "\n"), "20 workloads are more than 10: collapsed into 4 namespace nodes") {
		t.Errorf("notes: %q", c.Notes)
	}
	total := 0
	for _, e := range c.Edges {
		total += int(e.Count)
	}
	if total != len(g.Edges) {
		t.Errorf("collapsed edges stand for %d edges, want %d", total, len(g.Edges))
	}
	if g.Collapse(20) != g || g.Collapse(0) != g {
		t.Error("at or below the threshold, or with 0, nothing collapses")
	}
	f, err := g.Filter("team-001", "svc-02")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range f.Edges {
		if f.Nodes[e.From].ID != "Deployment/team-001/svc-02" && f.Nodes[e.To].ID != "Deployment/team-001/svc-02" {
			t.Errorf("filtered edge %s does not touch the workload", edgeLine(f, e))
		}
	}
	// 20 workloads + gateway + outside = 22 endpoints: 21 edges into it, 19 out of it.
	if len(f.Edges) != 21+19 {
		t.Errorf("filtered edges: %d, want 40", len(f.Edges))
	}
	if _, err := g.Filter("", "nope"); err == nil || !strings.Contains(err.Error(), `no workload "nope"`) {
		t.Errorf("an unknown workload must be an error, got %v", err)
	}
}
