package audit

import (
	"io"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshguard/meshguard/reports"
	"github.com/meshguard/meshguard/rules"
)

// WriteReports renders the report as policy report objects in a format (a
// YAML stream): a report for every namespace an evaluated object belongs to,
// and the cluster report, built by the same code as the background audit of
// `meshguard serve` (reports.BuildAll). Input errors are not part of the
// objects; the exit code and the summary on stderr still count them.
func WriteReports(w io.Writer, f reports.Format, rep *Report, opts WriteOptions) error {
	opts = opts.withDefaults()
	return reports.WriteYAML(w, ReportObjects(rep, opts), f)
}

// ReportObjects builds the reports of an audit (see WriteReports).
func ReportObjects(rep *Report, opts WriteOptions) []reports.Report {
	opts = opts.withDefaults()
	var namespaces []string
	for _, r := range rep.Results {
		if r.Status != StatusEvaluated {
			continue
		}
		if s := reports.ScopeOf(r.Object); s != "" {
			namespaces = append(namespaces, s)
		}
	}
	findings := make([]rules.Finding, 0, len(rep.Findings))
	for _, f := range rep.Findings {
		findings = append(findings, f.Finding)
	}
	return reports.BuildAll(findings, namespaces, metav1.Timestamp{Seconds: opts.Now.Unix()}, opts.MaxResults)
}
