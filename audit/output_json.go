package audit

import (
	"encoding/json"
	"fmt"
	"io"
)

// JSONReport is the document `meshguard audit -o json` writes. Findings and
// Errors are always arrays (possibly empty), never null.
type JSONReport struct {
	// Findings carry code, rule, title, severity, object, message, why,
	// remediation, and the file, document index and line of the object.
	Findings []Located `json:"findings"`
	// Errors are the documents that could not be parsed or evaluated.
	Errors []InputError `json:"errors"`
	// Ignored are documents in walked directories that are not Kubernetes objects.
	Ignored []InputError `json:"ignored"`
	// Summary counts objects, findings and errors, with the exit code.
	Summary Summary `json:"summary"`
}

// NewJSONReport builds the JSON document of a report.
func NewJSONReport(rep *Report, opts WriteOptions) JSONReport {
	opts = opts.withDefaults()
	return JSONReport{
		Findings: append([]Located{}, rep.Findings...),
		Errors:   append([]InputError{}, rep.Errors...),
		Ignored:  append([]InputError{}, rep.Ignored...),
		Summary:  rep.Summarize(opts.FailOn),
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
