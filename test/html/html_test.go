// Package html tests `meshguard audit -o html` in a real headless browser:
// Chromium from Debian's packages (hack/install-chromium.sh, run by `make
// chromium`, which `make test` depends on). Without Chromium the tests skip,
// except under MESHGUARD_E2E=required (CI), where they fail.
package html

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/cmd/meshguard/app"
	"github.com/meshguard/meshguard/rules"
)

// chromium finds the browser ($CHROMIUM, then chromium on PATH), or skips
// the test; under MESHGUARD_E2E=required a missing browser fails it.
func chromium(t *testing.T) string {
	t.Helper()
	if c := os.Getenv("CHROMIUM"); c != "" {
		return c
	}
	for _, b := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(b); err == nil {
			return p
		}
	}
	msg := "no Chromium: run `make chromium` (hack/install-chromium.sh installs Debian's chromium package) or set CHROMIUM"
	if os.Getenv("MESHGUARD_E2E") == "required" {
		t.Fatal(msg + " (MESHGUARD_E2E=required: the browser test must run)")
	}
	t.Skip(msg)
	return ""
}

var consoleLine = regexp.MustCompile(`:CONSOLE(:|\()[^\]]*\] (.*)`)

// browser loads a file in headless Chromium and returns the DOM after the
// load event, and every console message (errors, exceptions, CSP
// violations, blocked loads) the page produced.
func browser(t *testing.T, bin, file string, extra ...string) (dom string, console []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
		"--user-data-dir=" + t.TempDir(), "--enable-logging=stderr", "--v=0", "--window-size=1280,900"}, extra...)
	args = append(args, "--dump-dom", "file://"+file)
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium --dump-dom %s: %v\n%s", file, err, errb.String())
	}
	for _, l := range strings.Split(errb.String(), "\n") {
		if m := consoleLine.FindStringSubmatch(l); m != nil {
			console = append(console, m[2])
		}
	}
	return out.String(), console
}

// screenshot writes a PNG of a page.
func screenshot(t *testing.T, bin, url, png string, width, height int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
		"--user-data-dir="+t.TempDir(), fmt.Sprintf("--window-size=%d,%d", width, height), "--screenshot="+png, url)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chromium --screenshot %s: %v\n%s", url, err, out)
	}
	if fi, err := os.Stat(png); err != nil || fi.Size() < 1000 {
		t.Fatalf("screenshot %s not written (%v)", png, err)
	}
}

// runAudit runs `meshguard audit -f dir -o format` in-process into a file.
func runAudit(t *testing.T, dir string, format audit.Format, out string) {
	t.Helper()
	o := app.NewAuditOptions()
	o.Filenames = []string{dir}
	o.Output = format
	o.OutputFile = out
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	err := app.RunAudit(context.Background(), app.Streams{Out: &bytes.Buffer{}, Err: &stderr}, o)
	if ee, ok := err.(*app.ExitError); err != nil && (!ok || ee.Code != app.ExitFindings) {
		t.Fatalf("audit -f %s -o %s: %v\n%s", dir, format, err, stderr.String())
	}
}

type node = html.Node

func attr(n *node, k string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == k {
			return a.Val, true
		}
	}
	return "", false
}

func walk(n *node, fn func(*node)) {
	fn(n)
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		walk(c, fn)
	}
}

func parse(t *testing.T, dom string) *node {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(dom))
	if err != nil {
		t.Fatalf("parse the DOM: %v", err)
	}
	return doc
}

func root(doc *node) *node {
	var r *node
	walk(doc, func(n *node) {
		if r == nil && n.Type == html.ElementNode && n.Data == "html" {
			r = n
		}
	})
	return r
}

func atoi(t *testing.T, s string, what string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("%s: %q is not a number", what, s)
	}
	return n
}

// namespaceOfFinding is the namespace a JSON finding counts towards, as the
// report's summary counts it.
func namespaceOfFinding(f audit.Located) string {
	if f.Object.Namespace != "" {
		return f.Object.Namespace
	}
	if f.Object.Kind == "Namespace" {
		return f.Object.Name
	}
	return ""
}

type wantNamespace struct {
	mtls, defaultDeny, mesh, meshed string
}

func TestHTMLReportBookinfo(t *testing.T) {
	bin := chromium(t)
	shots := os.Getenv("MESHGUARD_SCREENSHOTS") // make screenshots: docs/images
	cases := []struct {
		name string
		// want are the hand-checked compliance values of the bookinfo namespace.
		want wantNamespace
	}{
		// details opts out of injection in the insecure example.
		{"insecure", wantNamespace{mtls: "PERMISSIVE", defaultDeny: "false", mesh: "sidecar", meshed: "3/4"}},
		{"fixed", wantNamespace{mtls: "STRICT", defaultDeny: "true", mesh: "sidecar", meshed: "4/4"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			// From the repository's root, so the page names the input as a user would see it.
			t.Chdir(filepath.Join("..", ".."))
			src := filepath.Join("examples", "bookinfo", tc.name)
			page := filepath.Join(dir, "report.html")
			runAudit(t, src, audit.FormatHTML, page)
			runAudit(t, src, audit.FormatJSON, filepath.Join(dir, "report.json"))
			raw, err := os.ReadFile(filepath.Join(dir, "report.json"))
			if err != nil {
				t.Fatal(err)
			}
			var rep audit.JSONReport
			if err := json.Unmarshal(raw, &rep); err != nil {
				t.Fatal(err)
			}
			static, err := os.ReadFile(page)
			if err != nil {
				t.Fatal(err)
			}
			selfContained(t, parse(t, string(static)))

			dom, console := browser(t, bin, page)
			for _, c := range console {
				t.Errorf("console message while loading the report: %s", c)
			}
			doc := parse(t, dom)
			r := root(doc)
			if v, _ := attr(r, "data-js-ready"); v != "1" {
				t.Fatalf("the report's script did not run (data-js-ready=%q): blocked by its CSP?", v)
			}
			if v, ok := attr(r, "data-js-error"); ok {
				t.Errorf("script error: %s", v)
			}
			box, _ := attr(r, "data-graph-box")
			var w, h int
			if _, err := fmt.Sscanf(box, "%dx%d", &w, &h); err != nil || w < 100 || h < 50 {
				t.Errorf("the graph is not visible: bounding box %q", box)
			}

			// Totals per severity: the page's root and its table vs the JSON summary.
			if got := atoi(t, mustAttr(t, r, "data-findings"), "data-findings"); got != rep.Summary.Findings {
				t.Errorf("page shows %d findings, JSON %d", got, rep.Summary.Findings)
			}
			if rep.Summary.Findings == 0 && tc.name == "insecure" {
				t.Fatal("the insecure example has no findings: the comparison would prove nothing")
			}
			cells := map[string]int{}
			rows := map[string]int{}
			nsRows := map[string]*node{}
			walk(doc, func(n *node) {
				if n.Type != html.ElementNode {
					return
				}
				if s, ok := attr(n, "data-severity"); ok && n.Data == "td" {
					cells[s] = atoi(t, mustAttr(t, n, "data-count"), "data-count")
				}
				if c, ok := attr(n, "class"); ok && c == "finding" {
					rows[sevOf(n)]++
				}
				if ns, ok := attr(n, "data-namespace"); ok {
					nsRows[ns] = n
				}
			})
			for _, s := range rules.Severities() {
				want := rep.Summary.BySeverity[s.String()]
				if got := atoi(t, mustAttr(t, r, "data-findings-"+strings.ToLower(s.String())), s.String()); got != want {
					t.Errorf("%s: root attribute %d, JSON %d", s, got, want)
				}
				if cells[s.String()] != want {
					t.Errorf("%s: severity table %d, JSON %d", s, cells[s.String()], want)
				}
				if rows[s.String()] != want {
					t.Errorf("%s: %d finding entries listed, JSON %d", s, rows[s.String()], want)
				}
			}
			// Per namespace: findings and their severities vs the JSON findings.
			byNS := map[string]map[string]int{}
			for _, f := range rep.Findings {
				ns := namespaceOfFinding(f)
				if ns == "" {
					continue
				}
				if byNS[ns] == nil {
					byNS[ns] = map[string]int{}
				}
				byNS[ns][f.Severity.String()]++
				byNS[ns]["total"]++
			}
			for ns, counts := range byNS {
				row, ok := nsRows[ns]
				if !ok {
					t.Errorf("namespace %s has findings in the JSON report but no row in the page", ns)
					continue
				}
				if got := atoi(t, mustAttr(t, row, "data-findings"), ns); got != counts["total"] {
					t.Errorf("namespace %s: page %d findings, JSON %d", ns, got, counts["total"])
				}
				for _, s := range rules.Severities() {
					if got := atoi(t, mustAttr(t, row, "data-findings-"+strings.ToLower(s.String())), ns); got != counts[s.String()] {
						t.Errorf("namespace %s %s: page %d, JSON %d", ns, s, got, counts[s.String()])
					}
				}
			}
			bi, ok := nsRows["bookinfo"]
			if !ok {
				t.Fatalf("no row for namespace bookinfo; rows: %v", keys(nsRows))
			}
			got := wantNamespace{mtls: mustAttr(t, bi, "data-mtls"), defaultDeny: mustAttr(t, bi, "data-authz-default-deny"), mesh: mustAttr(t, bi, "data-mesh-mode"),
				meshed: mustAttr(t, bi, "data-meshed") + "/" + mustAttr(t, bi, "data-workloads")}
			if got != tc.want {
				t.Errorf("bookinfo compliance: page %+v, want %+v", got, tc.want)
			}

			if shots != "" {
				if err := os.MkdirAll(shots, 0o755); err != nil {
					t.Fatal(err)
				}
				screenshot(t, bin, "file://"+page, filepath.Join(shots, "html-report-"+tc.name+".png"), 1280, 1600)
				// The graph at its own size, as the report's image holds it.
				svg, w, h := graphImage(t, parse(t, string(static)))
				file := filepath.Join(dir, "graph.svg")
				if err := os.WriteFile(file, svg, 0o644); err != nil {
					t.Fatal(err)
				}
				screenshot(t, bin, "file://"+file, filepath.Join(shots, "html-report-"+tc.name+"-graph.png"), w, h)
			}
		})
	}
}

// selfContained fails on anything the page would load from elsewhere: a
// src or href that is not a data: URL or a fragment, a stylesheet link, a
// frame or object, a CSS url() or @import.
func selfContained(t *testing.T, doc *node) {
	t.Helper()
	walk(doc, func(n *node) {
		if n.Type != html.ElementNode {
			return
		}
		switch n.Data {
		case "link", "iframe", "object", "embed", "base":
			t.Errorf("the report has a <%s> element: it must be self-contained", n.Data)
		case "style":
			if n.FirstChild != nil && (strings.Contains(n.FirstChild.Data, "url(") || strings.Contains(n.FirstChild.Data, "@import")) {
				t.Errorf("the report's CSS loads something (url() or @import)")
			}
		}
		for _, a := range n.Attr {
			if (a.Key == "src" || a.Key == "href") && !strings.HasPrefix(a.Val, "data:") && !strings.HasPrefix(a.Val, "#") {
				t.Errorf("<%s %s=%q>: the report must load nothing from elsewhere", n.Data, a.Key, a.Val)
			}
		}
	})
}

// TestHTMLReportHostileNames loads a report whose object names, messages,
// namespace and graph carry markup that would mark the page (data-pwned) if
// it ran: nothing may run, and no CSP violation may even be attempted.
func TestHTMLReportHostileNames(t *testing.T) {
	bin := chromium(t)
	mark := func(how string) string {
		return fmt.Sprintf(`document.documentElement.setAttribute('data-pwned','%s')`, how)
	}
	script := "<script>" + mark("script") + "</script>"
	img := `<img src=x onerror="` + mark("img") + `">`
	attrBreak := `"><svg onload="` + mark("attr") + `">`
	rep := &audit.Report{Objects: 1, Evaluated: 1, Findings: []audit.Located{{
		Finding: rules.Finding{
			Code: "MESH0001", Rule: "r" + script, Title: "t", Severity: rules.SeverityHigh,
			Object:  rules.ObjectRef{APIVersion: "v1", Kind: "Pod", Namespace: "ns" + attrBreak, Name: "web" + script},
			Message: "label " + img, Why: "why " + script, Remediation: "fix " + attrBreak,
		},
		File: "evil" + img + ".yaml", Line: 1,
	}}}
	svg := `<svg xmlns="http://www.w3.org/2000/svg" width="300" height="120" onload="` + mark("svg") + `"><script>` + mark("svg-script") +
		`</script><rect width="300" height="120" fill="#2e7d32"/><text x="10" y="60">` + img + `</text></svg>`
	opts := audit.WriteOptions{HTML: audit.HTMLOptions{
		Source:     script,
		Namespaces: []audit.NamespaceSummary{{Name: "ns" + attrBreak, MeshMode: script, MTLS: rules.MTLSResolution{Mode: img, Level: "namespace"}, Findings: 1, BySeverity: map[string]int{"High": 1}}},
		Graph:      &audit.HTMLGraph{SVG: []byte(svg), Notes: []string{script}, Summary: img},
	}}
	var b bytes.Buffer
	if err := audit.WriteHTML(&b, rep, opts); err != nil {
		t.Fatal(err)
	}
	page := filepath.Join(t.TempDir(), "hostile.html")
	if err := os.WriteFile(page, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	dom, console := browser(t, bin, page)
	for _, c := range console {
		t.Errorf("console message (markup from a name reached the parser as code?): %s", c)
	}
	r := root(parse(t, dom))
	if v, ok := attr(r, "data-pwned"); ok {
		t.Fatalf("markup from a tenant's name ran (%s)", v)
	}
	if v, _ := attr(r, "data-js-ready"); v != "1" {
		t.Fatalf("the report's own script did not run (data-js-ready=%q)", v)
	}
	if !strings.Contains(dom, "web&lt;script&gt;") {
		t.Errorf("the object's name is not shown as text")
	}
}

var svgSize = regexp.MustCompile(`<svg width="([0-9.]+)pt" height="([0-9.]+)pt"`)

// graphImage decodes the report's graph (a data: image) and its size in
// CSS pixels.
func graphImage(t *testing.T, doc *node) ([]byte, int, int) {
	t.Helper()
	var src string
	walk(doc, func(n *node) {
		if id, _ := attr(n, "id"); id == "graph-image" {
			src, _ = attr(n, "src")
		}
	})
	const prefix = "data:image/svg+xml;base64,"
	if !strings.HasPrefix(src, prefix) {
		t.Fatalf("the graph is not an SVG data: image: %.60q", src)
	}
	svg, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(src, prefix))
	if err != nil {
		t.Fatalf("decode the graph: %v", err)
	}
	m := svgSize.FindSubmatch(svg)
	if m == nil {
		t.Fatalf("the graph's SVG has no size in pt")
	}
	w, _ := strconv.ParseFloat(string(m[1]), 64)
	h, _ := strconv.ParseFloat(string(m[2]), 64)
	return svg, int(w*4/3) + 1, int(h*4/3) + 1
}

func sevOf(n *node) string {
	var s string
	walk(n, func(c *node) {
		if s != "" || c.Type != html.ElementNode {
			return
		}
		if cl, _ := attr(c, "class"); strings.HasPrefix(cl, "sev sev-") {
			s = strings.TrimPrefix(cl, "sev sev-")
		}
	})
	return s
}

func mustAttr(t *testing.T, n *node, k string) string {
	t.Helper()
	v, ok := attr(n, k)
	if !ok {
		t.Fatalf("<%s> has no %s attribute", n.Data, k)
	}
	return v
}

func keys(m map[string]*node) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
