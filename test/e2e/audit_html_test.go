package e2e_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/net/html"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/cmd/meshguard/app"
	"github.com/meshguard/meshguard/rules"
)

// TestAuditClusterHTML runs `meshguard audit --cluster -o html` against the
// real API server and checks every namespace row's data- attributes against
// the JSON report's cluster.namespaces, and that the graph is embedded. (The
// page in a browser: test/html.)
func TestAuditClusterHTML(t *testing.T) {
	env := setupAuditCluster(t)
	base := []string{"audit", "--cluster", "--kubeconfig", env.KubeconfigPath, "--page-size", fmt.Sprint(pageSize)}
	code, page, errOut := runCLI(t, append(base, "-o", "html")...)
	if code != app.ExitFindings {
		t.Fatalf("-o html: exit %d, want %d\nstderr:\n%s", code, app.ExitFindings, errOut)
	}
	code, out, errOut := runCLI(t, append(base, "-o", "json")...)
	if code != app.ExitFindings {
		t.Fatalf("-o json: exit %d, want %d\nstderr:\n%s", code, app.ExitFindings, errOut)
	}
	var doc audit.JSONReport
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("json: %v", err)
	}
	if doc.Cluster == nil || len(doc.Cluster.Namespaces) == 0 {
		t.Fatal("the JSON report has no namespaces")
	}
	root, err := html.Parse(strings.NewReader(page))
	if err != nil {
		t.Fatalf("parse the page: %v", err)
	}
	rows := map[string]map[string]string{}
	var graphSrc, htmlFindings string
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			attrs := map[string]string{}
			for _, a := range n.Attr {
				attrs[a.Key] = a.Val
			}
			if ns, ok := attrs["data-namespace"]; ok {
				rows[ns] = attrs
			}
			if attrs["id"] == "graph-image" {
				graphSrc = attrs["src"]
			}
			if n.Data == "html" {
				htmlFindings = attrs["data-findings"]
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(root)
	if htmlFindings != fmt.Sprint(doc.Summary.Findings) {
		t.Errorf("page: %s findings, JSON %d", htmlFindings, doc.Summary.Findings)
	}
	if len(rows) != len(doc.Cluster.Namespaces) {
		t.Errorf("page: %d namespace rows, JSON %d namespaces", len(rows), len(doc.Cluster.Namespaces))
	}
	for _, ns := range doc.Cluster.Namespaces {
		row, ok := rows[ns.Name]
		if !ok {
			t.Errorf("namespace %s: no row in the page", ns.Name)
			continue
		}
		status := ""
		if ns.NetworkPolicies != nil {
			status = ns.NetworkPolicies.Status
		}
		want := map[string]string{
			"data-mesh-mode": ns.MeshMode, "data-mtls": ns.MTLS.Mode, "data-authz-default-deny": fmt.Sprint(ns.Authz.DefaultDeny),
			"data-netpol-status": status, "data-workloads": fmt.Sprint(ns.Workloads), "data-meshed": fmt.Sprint(ns.Meshed),
			"data-objects": fmt.Sprint(ns.Objects), "data-findings": fmt.Sprint(ns.Findings),
		}
		for _, s := range rules.Severities() {
			want["data-findings-"+strings.ToLower(s.String())] = fmt.Sprint(ns.BySeverity[s.String()])
		}
		for k, v := range want {
			if row[k] != v {
				t.Errorf("namespace %s: page %s=%q, JSON %q", ns.Name, k, row[k], v)
			}
		}
	}
	if r := rows[nsAmbient]; r["data-mtls"] != "STRICT" || r["data-mesh-mode"] != "ambient" {
		t.Errorf("namespace %s: %v, want STRICT mTLS and ambient (the fixture)", nsAmbient, r)
	}
	if !strings.HasPrefix(graphSrc, "data:image/svg+xml;base64,") {
		t.Errorf("no graph embedded (src %.40q); the page says: %s", graphSrc, between(page, `<h2 id="graph">`, "<script>"))
	}
}

func between(s, from, to string) string {
	if i := strings.Index(s, from); i >= 0 {
		s = s[i:]
		if j := strings.Index(s, to); j >= 0 {
			return s[:j]
		}
	}
	return s
}
