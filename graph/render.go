package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/goccy/go-graphviz"
)

// Format is an output format of the graph.
type Format string

// Formats.
const (
	FormatDOT  Format = "dot"
	FormatJSON Format = "json"
	FormatSVG  Format = "svg"
	FormatHTML Format = "html"
)

// ParseFormat checks a format name.
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(s)); f {
	case FormatDOT, FormatJSON, FormatSVG, FormatHTML:
		return f, nil
	}
	return "", fmt.Errorf("unknown format %q (want dot, json, svg or html)", s)
}

// RenderOptions tune the drawn formats (dot, svg, html).
type RenderOptions struct {
	// ShowDenied draws denied and rejected edges too. Default false: they are
	// counted in the title, and listed in json.
	ShowDenied bool
	// Title heads the drawing. Default "meshguard allowed-traffic graph".
	Title string
}

// style is how a verdict is drawn.
type style struct {
	color, line, legend string
	penwidth            string
}

var styles = map[Verdict]style{
	AllowedMTLS:      {"#2e7d32", "solid", "allowed, mTLS, an ALLOW policy admits", "1.2"},
	AllowedByDefault: {"#ef6c00", "dashed", "allowed by default: mTLS but no ALLOW policy", "2"},
	AllowedPlaintext: {"#d50000", "bold", "allowed in PLAINTEXT", "2.5"},
	Conditional:      {"#1565c0", "solid", "allowed for some requests (conditions)", "1.2"},
	RejectedMTLS:     {"#8e24aa", "dotted", "rejected: STRICT mTLS, source sends plaintext", "1"},
	DeniedAuthz:      {"#9e9e9e", "dotted", "denied by AuthorizationPolicy", "1"},
	DeniedNetpol:     {"#616161", "dotted", "denied by NetworkPolicy", "1"},
}

func dotQuote(s string) string {
	return strconv.Quote(s)
}

// WriteDOT writes the graph in Graphviz's DOT language: workloads grouped by
// namespace, edges coloured by verdict and labelled with port and verdict,
// and a legend.
func (g *Graph) WriteDOT(w io.Writer, o RenderOptions) error {
	if o.Title == "" {
		o.Title = "meshguard allowed-traffic graph"
	}
	var b bytes.Buffer
	hidden := 0
	for _, e := range g.Edges {
		if !o.ShowDenied && !e.Verdict.Allowed() {
			hidden += max(1, int(e.Count))
		}
	}
	title := o.Title
	for _, n := range g.Notes {
		title += "\n" + n
	}
	if hidden > 0 {
		title += fmt.Sprintf("\n%d denied or rejected edges not drawn (--show-denied draws them)", hidden)
	}
	b.WriteString("digraph meshguard {\n")
	fmt.Fprintf(&b, "  graph [rankdir=LR, fontname=\"Helvetica\", fontsize=11, labelloc=t, labeljust=l, label=%s];\n", dotQuote(title))
	b.WriteString("  node [shape=box, style=\"rounded,filled\", fillcolor=\"#ffffff\", fontname=\"Helvetica\", fontsize=10];\n")
	b.WriteString("  edge [fontname=\"Helvetica\", fontsize=9];\n")
	byNS := map[string][]int{}
	var nss []string
	for i, n := range g.Nodes {
		if n.Kind == NodeWorkload {
			if _, ok := byNS[n.Namespace]; !ok {
				nss = append(nss, n.Namespace)
			}
			byNS[n.Namespace] = append(byNS[n.Namespace], i)
		}
	}
	sort.Strings(nss)
	for ci, ns := range nss {
		fmt.Fprintf(&b, "  subgraph cluster_%d {\n    label=%s; style=\"rounded\"; color=\"#90a4ae\";\n", ci, dotQuote("namespace "+ns))
		for _, i := range byNS[ns] {
			writeNode(&b, "    ", i, g.Nodes[i])
		}
		b.WriteString("  }\n")
	}
	for i, n := range g.Nodes {
		if n.Kind != NodeWorkload {
			writeNode(&b, "  ", i, n)
		}
	}
	for _, e := range g.Edges {
		if !o.ShowDenied && !e.Verdict.Allowed() {
			continue
		}
		st := styles[e.Verdict]
		label := e.Verdict.String()
		if e.Port != 0 {
			label = fmt.Sprintf(":%d %s", e.Port, label)
		}
		if e.Count > 1 {
			label += fmt.Sprintf(" ×%d", e.Count)
		}
		tip := label
		if e.Why != nil {
			tip = strings.Join(append(append([]string{}, e.Why.Reasons...), e.Why.Conditions...), "\n")
		}
		fmt.Fprintf(&b, "  n%d -> n%d [label=%s, color=%s, fontcolor=%s, style=%s, penwidth=%s, tooltip=%s];\n",
			e.From, e.To, dotQuote(label), dotQuote(st.color), dotQuote(st.color), st.line, st.penwidth, dotQuote(tip))
	}
	// The legend: one sample edge per verdict.
	b.WriteString("  subgraph cluster_legend {\n    label=\"legend\"; style=\"rounded\"; color=\"#b0bec5\"; fontsize=10;\n")
	b.WriteString("    node [shape=point, style=\"invis\", width=0.05, height=0.05];\n")
	for _, v := range Verdicts() {
		if !o.ShowDenied && !v.Allowed() {
			continue
		}
		st := styles[v]
		fmt.Fprintf(&b, "    legend_%d_a -> legend_%d_b [label=%s, color=%s, fontcolor=%s, style=%s, penwidth=%s];\n",
			v, v, dotQuote(v.String()+": "+st.legend), dotQuote(st.color), dotQuote(st.color), st.line, st.penwidth)
	}
	b.WriteString("  }\n}\n")
	_, err := w.Write(b.Bytes())
	return err
}

func writeNode(b *bytes.Buffer, indent string, i int, n Node) {
	shape, fill := "box", "#ffffff"
	switch n.Kind {
	case NodeGateway:
		shape, fill = "house", "#e3f2fd"
	case NodeOutside:
		shape, fill = "ellipse", "#eeeeee"
	case NodeNamespace:
		shape, fill = "box3d", "#f5f5f5"
	}
	if n.Kind == NodeWorkload && n.MeshMode != "sidecar" && n.MeshMode != "ambient" {
		fill = "#ffebee" // outside the mesh
	}
	tip := n.ID
	if n.Identity != "" {
		tip += "\n" + n.Identity
	}
	for _, x := range n.Notes {
		tip += "\n" + x
	}
	fmt.Fprintf(b, "%sn%d [label=%s, shape=%s, fillcolor=%s, tooltip=%s];\n", indent, i, dotQuote(n.label()), shape, dotQuote(fill), dotQuote(tip))
}

// WriteJSON writes the graph's JSON document (see Document), indented.
func (g *Graph) WriteJSON(w io.Writer) error {
	b, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// WriteSVG renders the DOT drawing to SVG in-process, with Graphviz compiled
// to WebAssembly (no system binary).
func (g *Graph) WriteSVG(ctx context.Context, w io.Writer, o RenderOptions) error {
	var dot bytes.Buffer
	if err := g.WriteDOT(&dot, o); err != nil {
		return err
	}
	gv, err := graphviz.New(ctx)
	if err != nil {
		return fmt.Errorf("start graphviz: %w", err)
	}
	defer gv.Close()
	parsed, err := graphviz.ParseBytes(dot.Bytes())
	if err != nil {
		return fmt.Errorf("parse the graph's DOT: %w", err)
	}
	defer parsed.Close()
	if err := gv.Render(ctx, parsed, graphviz.SVG, w); err != nil {
		return fmt.Errorf("render SVG: %w", err)
	}
	return nil
}

// WriteHTML writes one self-contained HTML page: the SVG inline, a summary
// and the table of edges, with no external script, font or image.
func (g *Graph) WriteHTML(ctx context.Context, w io.Writer, o RenderOptions) error {
	if o.Title == "" {
		o.Title = "meshguard allowed-traffic graph"
	}
	var svg bytes.Buffer
	if err := g.WriteSVG(ctx, &svg, o); err != nil {
		return err
	}
	s := svg.String()
	if i := strings.Index(s, "<svg"); i >= 0 {
		s = s[i:] // drop the XML prolog and DOCTYPE: the SVG is inline
	}
	var b bytes.Buffer
	esc := html.EscapeString
	fmt.Fprintf(&b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>%s</title>\n", esc(o.Title))
	b.WriteString(`<style>
body { font-family: sans-serif; margin: 1.5em; color: #212121; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #cfd8dc; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
th { background: #eceff1; }
.graph { overflow: auto; border: 1px solid #cfd8dc; margin: 1em 0; }
.v-allowed-plaintext { color: #d50000; font-weight: bold; }
.v-allowed-by-default { color: #ef6c00; font-weight: bold; }
.v-allowed-mtls { color: #2e7d32; }
.v-conditional { color: #1565c0; }
.v-rejected-mtls { color: #8e24aa; }
.v-denied-authz, .v-denied-netpol { color: #757575; }
</style>
</head>
<body>
`)
	fmt.Fprintf(&b, "<h1>%s</h1>\n", esc(o.Title))
	for _, n := range g.Notes {
		fmt.Fprintf(&b, "<p>%s</p>\n", esc(n))
	}
	sum := g.Summarize()
	fmt.Fprintf(&b, "<p>%d nodes, %d edges:", sum.Nodes, sum.Edges)
	for _, v := range Verdicts() {
		if c := sum.ByVerdict[v.String()]; c > 0 {
			fmt.Fprintf(&b, " <span class=\"v-%s\">%s %d</span>", v, v, c)
		}
	}
	b.WriteString("</p>\n<div class=\"graph\">\n")
	b.WriteString(s)
	b.WriteString("\n</div>\n<h2>Edges</h2>\n<table>\n<tr><th>from</th><th>to</th><th>port</th><th>verdict</th><th>transport</th><th>why</th></tr>\n")
	for _, e := range g.Edges {
		why := ""
		if e.Why != nil {
			why = esc(strings.Join(e.Why.Reasons, "; "))
			if len(e.Why.Conditions) > 0 {
				why += "<br>conditions: " + esc(strings.Join(e.Why.Conditions, "; "))
			}
		}
		port := strconv.Itoa(int(e.Port))
		if e.Port == 0 {
			port = "several"
		}
		if e.Count > 1 {
			port += fmt.Sprintf(" (×%d)", e.Count)
		}
		fmt.Fprintf(&b, "<tr><td>%s</td><td>%s</td><td>%s</td><td class=\"v-%s\">%s</td><td>%s</td><td>%s</td></tr>\n",
			esc(g.Nodes[e.From].ID), esc(g.Nodes[e.To].ID), port, e.Verdict, e.Verdict, e.Transport, why)
	}
	b.WriteString("</table>\n</body>\n</html>\n")
	_, err := w.Write(b.Bytes())
	return err
}

// Write renders the graph in a format.
func (g *Graph) Write(ctx context.Context, w io.Writer, f Format, o RenderOptions) error {
	switch f {
	case FormatDOT:
		return g.WriteDOT(w, o)
	case FormatJSON:
		return g.WriteJSON(w)
	case FormatSVG:
		return g.WriteSVG(ctx, w, o)
	case FormatHTML:
		return g.WriteHTML(ctx, w, o)
	}
	return fmt.Errorf("unknown format %q", f)
}
