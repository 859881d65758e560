package audit

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"io"
	"sort"
	"strings"

	"github.com/meshguard/meshguard/rules"
)

// FormatHTML is one self-contained HTML page: the verdict, findings by
// severity, the compliance view per namespace, findings grouped by severity
// and object with their fixes, and the allowed-traffic graph.
const FormatHTML Format = "html"

//go:embed htmlreport/report.html.tmpl htmlreport/report.css htmlreport/report.js
var htmlFiles embed.FS

var (
	htmlTemplate = template.Must(template.New("report.html.tmpl").ParseFS(htmlFiles, "htmlreport/report.html.tmpl"))
	htmlCSS      = mustRead("htmlreport/report.css")
	htmlJS       = mustRead("htmlreport/report.js")
	// htmlCSP allows only the page's own inline style and script (by hash)
	// and the graph as a data: image: nothing is fetched, and no markup a
	// tenant managed to put into a name could run.
	htmlCSP = fmt.Sprintf("default-src 'none'; style-src '%s'; script-src '%s'; img-src data:; base-uri 'none'; form-action 'none'",
		cspHash(htmlCSS), cspHash(htmlJS))
)

func mustRead(name string) string {
	b, err := htmlFiles.ReadFile(name)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func cspHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256-" + base64.StdEncoding.EncodeToString(sum[:])
}

// HTMLGraph is the allowed-traffic graph the HTML report embeds: the SVG that
// package graph rendered (with its legend), its notes (for example that it
// was collapsed by namespace) and a one-line summary.
type HTMLGraph struct {
	SVG     []byte
	Notes   []string
	Summary string
}

// HTMLOptions are what the HTML report needs beyond the report itself.
type HTMLOptions struct {
	// Namespaces is the compliance view of a file audit (SummarizeDocuments);
	// a cluster audit's own (Report.Cluster) is used when this is nil.
	Namespaces []NamespaceSummary
	// Graph is embedded as an image; nil leaves the section with GraphMissing.
	Graph *HTMLGraph
	// GraphMissing says why there is no graph. Default: "No graph was drawn."
	GraphMissing string
	// Source names what was audited ("files: deploy/", "cluster: https://...").
	Source string
	// Title heads the page. Default "meshguard audit report".
	Title string
}

type htmlSeverity struct {
	Name, Key string
	Count     int
}

type htmlNamespace struct {
	NamespaceSummary
	MTLSText, AuthzText, MeshedText, FindingsText string
	NetpolProfile, NetpolState, NetpolStatus      string
	Severities                                    []htmlSeverity
}

type htmlObject struct {
	Object, Location string
	Findings         []Located
}

type htmlGroup struct {
	Severity string
	Count    int
	Objects  []htmlObject
}

type htmlPage struct {
	JSON                               JSONReport
	Title, Source, ToolVersion         string
	Generated                          string
	Verdict, VerdictClass, SummaryLine string
	CSP                                string
	CSS                                template.CSS
	JS                                 template.JS
	Severities                         []htmlSeverity
	Namespaces                         []htmlNamespace
	Groups                             []htmlGroup
	Errors                             []string
	GraphSVG                           template.URL
	GraphNotes                         []string
	GraphSummary, GraphMissing         string
}

// severitiesDesc are the severities from Critical down to Info.
func severitiesDesc(by map[string]int) []htmlSeverity {
	sevs := rules.Severities()
	out := make([]htmlSeverity, 0, len(sevs))
	for i := len(sevs) - 1; i >= 0; i-- {
		n := sevs[i].String()
		out = append(out, htmlSeverity{Name: n, Key: strings.ToLower(n), Count: by[n]})
	}
	return out
}

// WriteHTML renders the report as one self-contained HTML page. Its numbers
// are those of the JSON report (NewJSONReport); every count the page shows
// is also in a data- attribute (data-findings-critical on the root element,
// data-mesh-mode, data-mtls, ... on each namespace row) for tools and tests.
// Every name and message is escaped (html/template); the graph is an
// SVG data: image, which browsers never run scripts in.
func WriteHTML(w io.Writer, rep *Report, opts WriteOptions) error {
	opts = opts.withDefaults()
	ho := opts.HTML
	js := NewJSONReport(rep, opts)
	p := htmlPage{
		JSON: js, Title: ho.Title, Source: ho.Source, ToolVersion: opts.ToolVersion,
		CSP: htmlCSP, CSS: template.CSS(htmlCSS), JS: template.JS(htmlJS),
		Severities: severitiesDesc(js.Summary.BySeverity), SummaryLine: js.Summary.String(),
		GraphMissing: ho.GraphMissing,
	}
	if !opts.Now.IsZero() {
		p.Generated = opts.Now.UTC().Format("2006-01-02 15:04:05 UTC")
	}
	if p.Title == "" {
		p.Title = "meshguard audit report"
	}
	if p.Source == "" {
		p.Source = "manifests"
		if rep.Cluster != nil {
			p.Source = "a live cluster"
		}
	}
	if p.GraphMissing == "" {
		p.GraphMissing = "No graph was drawn."
	}
	switch js.Summary.ExitCode {
	case ExitError:
		p.Verdict, p.VerdictClass = fmt.Sprintf("ERROR: %s could not be audited", plural(js.Summary.Errors, "document")), "error"
	case ExitFindings:
		p.Verdict, p.VerdictClass = fmt.Sprintf("FAIL: %s at or above %s", plural(js.Summary.Failing, "finding"), js.Summary.FailOn), "fail"
	default:
		p.Verdict, p.VerdictClass = fmt.Sprintf("PASS: no finding at or above %s", js.Summary.FailOn), "pass"
	}
	nss := ho.Namespaces
	if nss == nil && rep.Cluster != nil {
		nss = rep.Cluster.Namespaces
	}
	for _, n := range nss {
		hn := htmlNamespace{NamespaceSummary: n, MTLSText: mtlsText(n.MTLS), AuthzText: authzText(n.Authz),
			MeshedText: meshedText(n.Meshed, n.Workloads), FindingsText: severityCounts(n.Findings, n.BySeverity),
			Severities: severitiesDesc(n.BySeverity)}
		hn.NetpolProfile, hn.NetpolState = netpolColumns(n.NetworkPolicies)
		if n.NetworkPolicies != nil {
			hn.NetpolStatus = n.NetworkPolicies.Status
		}
		p.Namespaces = append(p.Namespaces, hn)
	}
	p.Groups = groupFindings(js.Findings)
	for _, e := range js.Errors {
		p.Errors = append(p.Errors, e.Error())
	}
	if g := ho.Graph; g != nil && len(g.SVG) > 0 {
		svg := g.SVG
		if i := bytes.Index(svg, []byte("<svg")); i > 0 {
			svg = svg[i:] // the XML prolog and DOCTYPE are not needed in an image
		}
		p.GraphSVG = template.URL("data:image/svg+xml;base64," + base64.StdEncoding.EncodeToString(svg))
		p.GraphNotes, p.GraphSummary = g.Notes, g.Summary
	}
	var buf bytes.Buffer
	if err := htmlTemplate.Execute(&buf, p); err != nil {
		return fmt.Errorf("write html report: %w", err)
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("write html report: %w", err)
	}
	return nil
}

// groupFindings groups findings by severity (Critical first), then by
// object in the order they were reported.
func groupFindings(fs []Located) []htmlGroup {
	bySev := map[rules.Severity][]Located{}
	for _, f := range fs {
		bySev[f.Severity] = append(bySev[f.Severity], f)
	}
	sevs := make([]rules.Severity, 0, len(bySev))
	for s := range bySev {
		sevs = append(sevs, s)
	}
	sort.Slice(sevs, func(i, j int) bool { return sevs[i] > sevs[j] })
	var out []htmlGroup
	for _, s := range sevs {
		g := htmlGroup{Severity: s.String(), Count: len(bySev[s])}
		idx := map[string]int{}
		for _, f := range bySev[s] {
			loc := ""
			if !isClusterLocation(f.File) && f.File != "" {
				loc = fmt.Sprintf("%s:%d", displayFile(f.File), f.Line)
			}
			key := f.Object.String() + "\x00" + loc
			i, ok := idx[key]
			if !ok {
				i = len(g.Objects)
				idx[key] = i
				g.Objects = append(g.Objects, htmlObject{Object: f.Object.String(), Location: loc})
			}
			g.Objects[i].Findings = append(g.Objects[i].Findings, f)
		}
		out = append(out, g)
	}
	return out
}

// SummarizeDocuments builds the per-namespace compliance view of a file
// audit the way a cluster audit does (mesh mode, effective mTLS,
// default-deny authorization, the default-deny NetworkPolicy preview, the
// meshed share of workloads, findings by severity), with the context built
// from the documents themselves, as Run builds it.
func SummarizeDocuments(ev ClusterEvaluator, docs []Document, defaultNamespace string, rep *Report) []NamespaceSummary {
	if defaultNamespace == "" {
		defaultNamespace = "default"
	}
	snap := rules.NewSnapshot()
	for _, d := range docs {
		snap.Add(d.Object, defaultNamespace)
	}
	return summarizeNamespaces(ev, snap, rep)
}
