package app

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"k8s.io/client-go/rest"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/graph"
	"github.com/meshguard/meshguard/rules"
)

// filesHTML is what `audit -f ... -o html` adds to the report: the
// compliance view per namespace computed from the manifests, and the graph.
func filesHTML(ctx context.Context, ev *rules.Engine, in *audit.Input, o *AuditOptions, rep *audit.Report) audit.HTMLOptions {
	ho := audit.HTMLOptions{
		Source:     "files: " + strings.Join(o.Filenames, ", "),
		Namespaces: audit.SummarizeDocuments(ev, in.Documents, o.DefaultNamespace, rep),
	}
	if len(in.Errors) > 0 {
		// A graph without some objects would show traffic allowed that they deny.
		ho.GraphMissing = fmt.Sprintf("No graph is drawn: %d document(s) could not be read, and a graph without them could show traffic as allowed that they deny.", len(in.Errors))
		return ho
	}
	objs := make([]rules.Object, 0, len(in.Documents))
	for _, d := range in.Documents {
		objs = append(objs, d.Object)
	}
	ho.Graph, ho.GraphMissing = htmlGraph(ctx, ev, objs, false, rep)
	return ho
}

// clusterHTML lists the graph's kinds from the cluster (the audit itself
// keeps no objects) and draws the graph for the HTML report.
func clusterHTML(ctx context.Context, ev *rules.Engine, cfg *rest.Config, o *AuditOptions, rep *audit.Report) audit.HTMLOptions {
	ho := audit.HTMLOptions{Source: "cluster: " + cfg.Host}
	listed, err := graphCluster(ctx, cfg, &GraphOptions{PageSize: o.PageSize})
	if err != nil {
		ho.GraphMissing = "No graph is drawn: " + err.Error()
		return ho
	}
	if len(listed.Errors) > 0 {
		ho.GraphMissing = fmt.Sprintf("No graph is drawn: %d object(s) could not be read, and a graph without them could show traffic as allowed that they deny.", len(listed.Errors))
		return ho
	}
	ho.Graph, ho.GraphMissing = htmlGraph(ctx, ev, listed.Objects, true, rep)
	return ho
}

// htmlGraph computes and renders the allowed-traffic graph as `meshguard
// graph -o svg` does with its defaults (collapsed by namespace above
// graph.DefaultCollapseAbove workloads), or says why it could not.
func htmlGraph(ctx context.Context, ev *rules.Engine, objs []rules.Object, live bool, rep *audit.Report) (*audit.HTMLGraph, string) {
	findings := make([]rules.Finding, 0, len(rep.Findings))
	for _, f := range rep.Findings {
		findings = append(findings, f.Finding)
	}
	g, err := graph.Compute(objs, graph.Options{
		Engine: ev, TrustDomain: graph.DefaultTrustDomain, Live: live, Findings: findings, AssumedGateways: graph.DefaultAssumedGateways(),
	})
	if err != nil {
		return nil, "No graph is drawn: " + err.Error()
	}
	g = g.Collapse(graph.DefaultCollapseAbove)
	var svg bytes.Buffer
	if err := g.WriteSVG(ctx, &svg, graph.RenderOptions{}); err != nil {
		return nil, "No graph is drawn: " + err.Error()
	}
	sum := g.Summarize()
	var parts []string
	for _, v := range graph.Verdicts() {
		if c := sum.ByVerdict[v.String()]; c > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c, v))
		}
	}
	line := fmt.Sprintf("%d nodes, %d edges (%s). Denied and rejected edges are counted, not drawn: meshguard graph --show-denied draws them, -o json lists every edge with its reasons.", sum.Nodes, sum.Edges, strings.Join(parts, ", "))
	if g.Collapsed != nil {
		line += fmt.Sprintf(" The flags the note names are meshguard graph's: meshguard graph --collapse-above %d -o html draws every workload.", g.Collapsed.Workloads)
	}
	return &audit.HTMLGraph{SVG: svg.Bytes(), Notes: g.Notes, Summary: line}, ""
}
