package graph

import (
	"fmt"
	"sort"
	"strings"
)

// DefaultCollapseAbove is the number of workload nodes above which
// `meshguard graph` collapses workloads into namespace nodes.
const DefaultCollapseAbove = 60

// Filter returns the part of the graph about a namespace and/or a workload:
// the edges whose source or destination is in the namespace (and is the
// workload, matched by name or ID), and the nodes they join. Empty arguments
// select everything. A workload that matches no node is an error.
func (g *Graph) Filter(namespace, workload string) (*Graph, error) {
	if namespace == "" && workload == "" {
		return g, nil
	}
	selected := make([]bool, len(g.Nodes))
	any := false
	for i, n := range g.Nodes {
		if namespace != "" && n.Namespace != namespace {
			continue
		}
		if workload != "" && n.Name != workload && n.ID != workload {
			continue
		}
		selected[i], any = true, true
	}
	if !any {
		switch {
		case workload != "" && namespace != "":
			return nil, fmt.Errorf("no workload %q in namespace %q", workload, namespace)
		case workload != "":
			return nil, fmt.Errorf("no workload %q", workload)
		}
	}
	keep := make([]bool, len(g.Nodes))
	var edges []Edge
	for _, e := range g.Edges {
		if selected[e.From] || selected[e.To] {
			edges = append(edges, e)
			keep[e.From], keep[e.To] = true, true
		}
	}
	for i := range selected {
		keep[i] = keep[i] || selected[i]
	}
	return g.subgraph(keep, edges), nil
}

// subgraph keeps the marked nodes and re-indexes the edges.
func (g *Graph) subgraph(keep []bool, edges []Edge) *Graph {
	out := &Graph{TrustDomain: g.TrustDomain, Collapsed: g.Collapsed, Notes: g.Notes}
	index := make([]int32, len(g.Nodes))
	for i, n := range g.Nodes {
		index[i] = -1
		if keep[i] {
			index[i] = int32(len(out.Nodes))
			out.Nodes = append(out.Nodes, n)
		}
	}
	out.Edges = make([]Edge, 0, len(edges))
	for _, e := range edges {
		e.From, e.To = index[e.From], index[e.To]
		out.Edges = append(out.Edges, e)
	}
	return out
}

// Workloads counts the workload nodes.
func (g *Graph) Workloads() int {
	n := 0
	for _, x := range g.Nodes {
		if x.Kind == NodeWorkload {
			n++
		}
	}
	return n
}

// Collapse returns the graph with its workload nodes replaced by one node
// per namespace when there are more than above of them (above <= 0 never
// collapses). Gateways and outside stay. Edges are merged per (source,
// destination, verdict): Count says how many workload edges each stands for,
// Port is kept when they share one (0 otherwise), and the explanation
// lists their distinct reasons. A note says that the graph was collapsed.
func (g *Graph) Collapse(above int) *Graph {
	w := g.Workloads()
	if above <= 0 || w <= above {
		return g
	}
	out := &Graph{TrustDomain: g.TrustDomain}
	group := make([]int32, len(g.Nodes))
	nsNode := map[string]int32{}
	for i, n := range g.Nodes {
		if n.Kind != NodeWorkload {
			continue
		}
		j, ok := nsNode[n.Namespace]
		if !ok {
			j = int32(len(out.Nodes))
			nsNode[n.Namespace] = j
			out.Nodes = append(out.Nodes, Node{ID: "namespace:" + n.Namespace, Kind: NodeNamespace, Name: n.Namespace, Namespace: n.Namespace, MeshMode: n.MeshMode})
		}
		group[i] = j
		ns := &out.Nodes[j]
		ns.Members++
		if ns.MeshMode != n.MeshMode {
			ns.MeshMode = "mixed"
		}
		for sev, c := range n.Findings {
			if ns.Findings == nil {
				ns.Findings = map[string]int{}
			}
			ns.Findings[sev] += c
		}
	}
	for i, n := range g.Nodes {
		if n.Kind != NodeWorkload {
			group[i] = int32(len(out.Nodes))
			out.Nodes = append(out.Nodes, n)
		}
	}
	type key struct {
		from, to int32
		v        Verdict
	}
	type agg struct {
		e       Edge
		reasons map[string]bool
		conds   map[string]bool
	}
	merged := map[key]*agg{}
	var order []key
	for _, e := range g.Edges {
		k := key{group[e.From], group[e.To], e.Verdict}
		a := merged[k]
		if a == nil {
			a = &agg{e: Edge{From: k.from, To: k.to, Port: e.Port, Verdict: e.Verdict, Transport: e.Transport}, reasons: map[string]bool{}, conds: map[string]bool{}}
			merged[k] = a
			order = append(order, k)
		}
		a.e.Count++
		if a.e.Port != e.Port {
			a.e.Port = 0
		}
		if e.Why != nil && len(a.reasons) < 20 {
			for _, r := range e.Why.Reasons {
				a.reasons[r] = true
			}
			for _, c := range e.Why.Conditions {
				a.conds[c] = true
			}
		}
	}
	for _, k := range order {
		a := merged[k]
		a.e.Why = &Explanation{Reasons: sortedKeys(a.reasons), Conditions: sortedKeys(a.conds)}
		if len(a.e.Why.Conditions) == 0 {
			a.e.Why.Conditions = nil
		}
		out.Edges = append(out.Edges, a.e)
	}
	sort.SliceStable(out.Edges, func(i, j int) bool {
		a, b := out.Edges[i], out.Edges[j]
		if a.To != b.To {
			return a.To < b.To
		}
		if a.From != b.From {
			return a.From < b.From
		}
		return a.Verdict < b.Verdict
	})
	out.Collapsed = &Collapse{Above: above, Workloads: w, Namespaces: len(nsNode)}
	out.Notes = append(append([]string{}, g.Notes...),
		fmt.Sprintf("%d workloads are more than %d: collapsed into %d namespace nodes (raise --collapse-above, or filter with -n/--workload, to see workloads)", w, above, len(nsNode)))
	return out
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// label is a node's display text.
func (n Node) label() string {
	var b strings.Builder
	switch n.Kind {
	case NodeWorkload:
		b.WriteString(n.Name)
		fmt.Fprintf(&b, "\n%s · sa %s · %s", strings.ToLower(n.Workload), n.ServiceAccount, n.MeshMode)
	case NodeGateway:
		b.WriteString("ingress gateway " + n.Namespace + "/" + n.Name)
		if n.Assumed {
			b.WriteString("\n(assumed: not in the input)")
		}
	case NodeNamespace:
		fmt.Fprintf(&b, "namespace %s\n%d workloads · %s", n.Name, n.Members, n.MeshMode)
	default:
		b.WriteString(n.Name)
	}
	if f := findingsText(n.Findings); f != "" {
		b.WriteString("\nfindings: " + f)
	}
	return b.String()
}

// findingsText renders counts by severity, highest first: "High 2, Low 1".
func findingsText(f map[string]int) string {
	var parts []string
	for _, sev := range []string{"Critical", "High", "Medium", "Low", "Info"} {
		if c := f[sev]; c > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", sev, c))
		}
	}
	return strings.Join(parts, ", ")
}
