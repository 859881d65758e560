package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/rules"
)

// hostileReport is a report whose names and messages carry markup, as a
// tenant could put into a label value or an annotation a finding quotes.
// Rendered, none of it may become an element or run.
func hostileReport() (*Report, WriteOptions) {
	const script = `<script>document.documentElement.setAttribute("data-pwned","script")</script>`
	const img = `<img src=x onerror="document.documentElement.setAttribute('data-pwned','img')">`
	const attr = `"><svg onload="document.documentElement.setAttribute('data-pwned','attr')">`
	rep := &Report{Objects: 1, Evaluated: 1, Findings: []Located{{
		Finding: rules.Finding{
			Code: "MESH0001", Rule: "rule-" + script, Title: "t", Severity: rules.SeverityCritical,
			Object:  rules.ObjectRef{APIVersion: "v1", Kind: "Pod", Namespace: "ns" + attr, Name: "web" + script},
			Message: "label value " + img, Why: "why " + script, Remediation: "fix " + attr,
		},
		File: "evil" + script + ".yaml", Line: 3,
	}}}
	svg := `<svg xmlns="http://www.w3.org/2000/svg" width="200" height="100" onload="document.documentElement.setAttribute('data-pwned','svg')"><script>document.documentElement.setAttribute("data-pwned","svg-script")</script><rect width="200" height="100" fill="#2e7d32"/></svg>`
	return rep, WriteOptions{HTML: HTMLOptions{
		Source: "files: " + script,
		Namespaces: []NamespaceSummary{{Name: "ns" + attr, MeshMode: "sidecar" + script, MTLS: rules.MTLSResolution{Mode: "STRICT", Source: "ns/" + img, Level: "namespace"},
			Findings: 1, BySeverity: map[string]int{"Critical": 1}}},
		Graph: &HTMLGraph{SVG: []byte(svg), Notes: []string{"note " + script}, Summary: "summary " + img},
	}}
}

func TestHTMLEscapesEverything(t *testing.T) {
	rep, opts := hostileReport()
	var b bytes.Buffer
	if err := WriteHTML(&b, rep, opts); err != nil {
		t.Fatal(err)
	}
	s := b.String()
	// One script element: the report's own.
	if n := strings.Count(strings.ToLower(s), "<script"); n != 1 {
		t.Errorf("want exactly the report's own <script>, found %d", n)
	}
	for _, bad := range []string{"<img src=x", "<svg onload", `"><svg`, "onerror=\"", "data-pwned\",\"script\")</script>"} {
		if strings.Contains(s, bad) {
			t.Errorf("raw markup %q reached the page", bad)
		}
	}
	if !strings.Contains(s, "web&lt;script&gt;") {
		t.Errorf("the object's name is not shown escaped")
	}
	// The graph is an image, never inline markup.
	if !strings.Contains(s, `src="data:image/svg&#43;xml;base64,`) {
		t.Errorf("the graph is not a data: image")
	}
}

var (
	cspMeta   = regexp.MustCompile(`<meta http-equiv="Content-Security-Policy" content="([^"]*)">`)
	scriptTag = regexp.MustCompile(`(?s)<script>(.*?)</script>`)
	styleTag  = regexp.MustCompile(`(?s)<style>(.*?)</style>`)
)

// TestHTMLCSPHashes checks that the CSP allows exactly the page's inline
// style and script, by hash, and nothing from elsewhere.
func TestHTMLCSPHashes(t *testing.T) {
	rep, _ := testReport(t)
	var b bytes.Buffer
	if err := WriteHTML(&b, rep, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	s := b.String()
	m := cspMeta.FindStringSubmatch(s)
	if m == nil {
		t.Fatal("no Content-Security-Policy meta tag")
	}
	csp := strings.ReplaceAll(m[1], "&#39;", "'")
	hash := func(x string) string {
		sum := sha256.Sum256([]byte(x))
		return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	}
	js, css := scriptTag.FindStringSubmatch(s), styleTag.FindStringSubmatch(s)
	if js == nil || css == nil {
		t.Fatal("no inline script or style")
	}
	for _, want := range []string{"default-src 'none'", "script-src " + hash(js[1]), "style-src " + hash(css[1]), "img-src data:"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-") {
		t.Errorf("CSP %q allows unsafe-*", csp)
	}
}

// TestHTMLNumbers checks the page's counts against the JSON report's.
func TestHTMLNumbers(t *testing.T) {
	rep, _ := testReport(t)
	var b bytes.Buffer
	if err := WriteHTML(&b, rep, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	s := b.String()
	js := NewJSONReport(rep, WriteOptions{})
	if js.Summary.Findings == 0 {
		t.Fatal("the test report has no findings")
	}
	for _, sev := range rules.Severities() {
		want := fmt.Sprintf(`data-findings-%s="%d"`, strings.ToLower(sev.String()), js.Summary.BySeverity[sev.String()])
		if !strings.Contains(s, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if got := strings.Count(s, `<div class="finding"`); got != js.Summary.Findings {
		t.Errorf("%d findings listed, JSON has %d", got, js.Summary.Findings)
	}
	if !strings.Contains(s, "ERROR: 1 document could not be audited") {
		t.Errorf("the verdict does not name the input error")
	}
	if !strings.Contains(s, "No graph was drawn.") {
		t.Errorf("without a graph the page does not say so")
	}
}
