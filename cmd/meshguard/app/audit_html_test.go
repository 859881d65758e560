package app

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// manyWorkloads is a sidecar namespace with n Deployments.
func manyWorkloads(n int) string {
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: big\n  labels:\n    istio-injection: enabled\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, `---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-%d
  namespace: big
spec:
  selector:
    matchLabels: {app: app-%d}
  template:
    metadata:
      labels: {app: app-%d}
    spec:
      containers:
      - name: app
        image: example.com/app:1
        ports:
        - containerPort: 8080
`, i, i, i)
	}
	return b.String()
}

func runHTML(t *testing.T, manifests string) string {
	t.Helper()
	dir := t.TempDir()
	in := filepath.Join(dir, "in.yaml")
	if err := os.WriteFile(in, []byte(manifests), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code := Main(context.Background(), []string{"audit", "-f", in, "-o", "html"}, Streams{Out: &out, Err: &errb})
	if code == ExitUsage && !strings.Contains(out.String(), "<html") {
		t.Fatalf("audit -o html: exit %d\n%s", code, errb.String())
	}
	return out.String()
}

// TestAuditHTMLGraph checks what the HTML report says about its graph: a
// small mesh is drawn workload by workload, a large one (above
// graph.DefaultCollapseAbove workloads) collapsed per namespace with a note,
// and input that could not be read draws none, saying why.
func TestAuditHTMLGraph(t *testing.T) {
	t.Run("small", func(t *testing.T) {
		page := runHTML(t, manyWorkloads(3))
		if !strings.Contains(page, `id="graph-image"`) || strings.Contains(page, "collapsed") {
			t.Errorf("a 3-workload mesh is not drawn as it is:\n%s", section(page))
		}
		if !strings.Contains(page, `data-namespace="big"`) || !strings.Contains(page, `data-workloads="3"`) {
			t.Errorf("the namespace row of a file audit is missing")
		}
	})
	t.Run("large", func(t *testing.T) {
		page := runHTML(t, manyWorkloads(61))
		if !strings.Contains(page, `id="graph-image"`) || !strings.Contains(page, "collapsed") || !strings.Contains(page, "meshguard graph --collapse-above 61 -o html") {
			t.Errorf("a 61-workload mesh is not collapsed, or the page does not say so:\n%s", section(page))
		}
	})
	t.Run("unreadable input", func(t *testing.T) {
		page := runHTML(t, manyWorkloads(2)+"---\nkind: Service\nmetadata:\n  name: broken: yes\n")
		if strings.Contains(page, `id="graph-image"`) || !strings.Contains(page, "No graph is drawn: 1 document(s) could not be read") {
			t.Errorf("a graph was drawn without every object, or the page does not say why not:\n%s", section(page))
		}
	})
}

func section(page string) string {
	if i := strings.Index(page, `<h2 id="graph">`); i >= 0 {
		page = page[i:]
	}
	if i := strings.Index(page, "<script>"); i >= 0 {
		page = page[:i]
	}
	if len(page) > 2000 {
		page = page[:2000]
	}
	return page
}
