package audit

import (
	"encoding/json"
	"fmt"
	"io"
)

// The JSON report's apiVersion and kind. The schema of the document is
// audit/auditreport.schema.json (JSON Schema 2020-12); a change that is not
// backwards compatible (a field removed, renamed or retyped) needs a new
// version.
const (
	JSONReportAPIVersion = "meshguard.io/v1alpha1"
	JSONReportKind       = "AuditReport"
)

// JSONReport is the document `meshguard audit -o json` writes. Findings and
// Errors are always arrays (possibly empty), never null.
type JSONReport struct {
	// APIVersion is JSONReportAPIVersion; Kind is JSONReportKind.
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	// Findings carry code, rule, title, severity, object, message, why,
	// remediation, and the file, document index and line of the object.
	Findings []Located `json:"findings"`
	// Errors are the documents that could not be parsed or evaluated.
	Errors []InputError `json:"errors"`
	// Ignored are documents in walked directories that are not Kubernetes objects.
	Ignored []InputError `json:"ignored"`
	// Summary counts objects, findings and errors, with the exit code.
	Summary Summary `json:"summary"`
	// Cluster is a cluster audit's kinds (listed and not served) and
	// per-namespace summary; absent for a file audit.
	Cluster *ClusterSummary `json:"cluster,omitempty"`
}

// NewJSONReport builds the JSON document of a report.
func NewJSONReport(rep *Report, opts WriteOptions) JSONReport {
	opts = opts.withDefaults()
	findings := append([]Located{}, rep.Findings...)
	for i := range findings {
		// Items serve grandfathering in the webhook; reports carry the message.
		findings[i].Items = nil
	}
	return JSONReport{
		APIVersion: JSONReportAPIVersion,
		Kind:       JSONReportKind,
		Findings:   findings,
		Errors:     append([]InputError{}, rep.Errors...),
		Ignored:    append([]InputError{}, rep.Ignored...),
		Summary:    rep.Summarize(opts.FailOn),
		Cluster:    rep.Cluster,
	}
}

// WriteJSON renders the report as an indented JSONReport.
func WriteJSON(w io.Writer, rep *Report, opts WriteOptions) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(NewJSONReport(rep, opts)); err != nil {
		return fmt.Errorf("write json report: %w", err)
	}
	return nil
}
