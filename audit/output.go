package audit

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/meshguard/meshguard/reports"
	"github.com/meshguard/meshguard/rules"
)

// Format is an output format of `meshguard audit`.
type Format string

// The output formats.
const (
	// FormatText is for a terminal: findings grouped by object, then a summary.
	FormatText Format = "text"
	// FormatJSON is JSONReport, for scripts.
	FormatJSON Format = "json"
	// FormatSARIF is SARIF 2.1.0, for code-scanning dashboards.
	FormatSARIF Format = "sarif"
	// FormatJUnit is JUnit XML, for CI test reports.
	FormatJUnit Format = "junit"
	// FormatOpenReports is a YAML stream of openreports.io/v1alpha1 Report
	// and ClusterReport objects, the ones `meshguard serve --background-audit`
	// writes into the cluster (package reports).
	FormatOpenReports Format = Format(reports.FormatOpenReports)
	// FormatWGPolicy is the same as wgpolicyk8s.io/v1alpha2 PolicyReport and
	// ClusterPolicyReport objects.
	FormatWGPolicy Format = Format(reports.FormatWGPolicy)
)

// Formats lists every output format.
func Formats() []Format {
	return []Format{FormatText, FormatJSON, FormatSARIF, FormatJUnit, FormatOpenReports, FormatWGPolicy, FormatHTML}
}

// ParseFormat parses a format name, case-insensitively.
func ParseFormat(s string) (Format, error) {
	for _, f := range Formats() {
		if strings.EqualFold(string(f), strings.TrimSpace(s)) {
			return f, nil
		}
	}
	return "", fmt.Errorf("unknown output format %q (want text, json, sarif, junit, openreports, wgpolicyk8s or html)", s)
}

// WriteOptions carry what the writers need beyond the report.
type WriteOptions struct {
	// FailOn is the severity at and above which a finding fails the audit
	// (exit code 1, a JUnit failure). Default rules.SeverityHigh.
	FailOn rules.Severity
	// Catalog describes every rule; SARIF lists them as reportingDescriptors.
	// Required for SARIF, unused otherwise.
	Catalog *rules.Catalog
	// ToolVersion is meshguard's version, written into SARIF. Default "dev".
	ToolVersion string
	// BaseDir is the directory SARIF artifact URIs are relative to. Default:
	// the current working directory.
	BaseDir string
	// Now stamps the results of report objects (openreports, wgpolicyk8s).
	// Default: the time of writing.
	Now time.Time
	// MaxResults caps the results of one report object. Default
	// reports.DefaultMaxResults.
	MaxResults int
	// HTML is what the HTML report adds: the namespaces of a file audit,
	// the graph, the source's name.
	HTML HTMLOptions
}

func (o WriteOptions) withDefaults() WriteOptions {
	if o.FailOn == 0 {
		o.FailOn = rules.SeverityHigh
	}
	if o.ToolVersion == "" {
		o.ToolVersion = "dev"
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	return o
}

// Write renders the report in the given format.
func Write(w io.Writer, f Format, rep *Report, opts WriteOptions) error {
	switch f {
	case FormatText:
		return WriteText(w, rep, opts)
	case FormatJSON:
		return WriteJSON(w, rep, opts)
	case FormatSARIF:
		return WriteSARIF(w, rep, opts)
	case FormatJUnit:
		return WriteJUnit(w, rep, opts)
	case FormatOpenReports, FormatWGPolicy:
		return WriteReports(w, reports.Format(f), rep, opts)
	case FormatHTML:
		return WriteHTML(w, rep, opts)
	}
	return fmt.Errorf("write report: unknown output format %q", f)
}

// Summary counts what an audit read and found.
type Summary struct {
	// Objects is the number of objects read.
	Objects int `json:"objects"`
	// Evaluated is the number of objects at least one rule applies to.
	Evaluated int `json:"evaluated"`
	// Skipped is the number of objects no rule covers.
	Skipped int `json:"skipped"`
	// SkippedKinds counts the skipped objects by apiVersion/kind.
	SkippedKinds map[string]int `json:"skippedKinds,omitempty"`
	// Findings is the number of findings.
	Findings int `json:"findings"`
	// BySeverity counts the findings by severity name.
	BySeverity map[string]int `json:"bySeverity,omitempty"`
	// Errors is the number of documents that could not be parsed or evaluated.
	Errors int `json:"errors"`
	// Ignored is the number of documents in walked directories that are not
	// Kubernetes objects.
	Ignored int `json:"ignored"`
	// FailOn is the threshold the exit code was computed with.
	FailOn rules.Severity `json:"failOn"`
	// Failing is the number of findings at or above FailOn.
	Failing int `json:"failing"`
	// ExitCode is the exit code of `meshguard audit`: 0 clean, 1 findings at or
	// above FailOn, 2 input errors.
	ExitCode int `json:"exitCode"`
}

// Summarize counts the report's objects, findings and errors.
func (r *Report) Summarize(failOn rules.Severity) Summary {
	if failOn == 0 {
		failOn = rules.SeverityHigh
	}
	s := Summary{
		Objects:   r.Objects,
		Evaluated: r.Evaluated,
		Findings:  len(r.Findings),
		Errors:    len(r.Errors),
		Ignored:   len(r.Ignored),
		FailOn:    failOn,
		ExitCode:  r.ExitCode(failOn),
	}
	for k, n := range r.Skipped {
		if s.SkippedKinds == nil {
			s.SkippedKinds = map[string]int{}
		}
		s.SkippedKinds[k] = n
		s.Skipped += n
	}
	for _, f := range r.Findings {
		if s.BySeverity == nil {
			s.BySeverity = map[string]int{}
		}
		s.BySeverity[f.Severity.String()]++
		if f.Severity >= failOn {
			s.Failing++
		}
	}
	return s
}

// String renders the summary on one line, naming every skipped kind, for
// example "3 objects read: 2 evaluated, 1 skipped (no rule covers v1/Secret);
// 1 finding (1 Critical), 1 at or above High; 0 errors".
func (s Summary) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s read: %d evaluated, %d skipped", plural(s.Objects, "object"), s.Evaluated, s.Skipped)
	if s.Skipped > 0 {
		var kinds []string
		for _, k := range sortedKeys(s.SkippedKinds) {
			kinds = append(kinds, fmt.Sprintf("%d %s", s.SkippedKinds[k], k))
		}
		fmt.Fprintf(&b, " (no rule covers %s)", strings.Join(kinds, ", "))
	}
	fmt.Fprintf(&b, "; %s", plural(s.Findings, "finding"))
	if s.Findings > 0 {
		var parts []string
		sevs := rules.Severities()
		for i := len(sevs) - 1; i >= 0; i-- {
			if n := s.BySeverity[sevs[i].String()]; n > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", n, sevs[i]))
			}
		}
		fmt.Fprintf(&b, " (%s)", strings.Join(parts, ", "))
	}
	fmt.Fprintf(&b, ", %d at or above %s; %s", s.Failing, s.FailOn, plural(s.Errors, "error"))
	if s.Ignored > 0 {
		fmt.Fprintf(&b, "; %s ignored (not Kubernetes objects)", plural(s.Ignored, "document"))
	}
	return b.String()
}

func plural(n int, noun string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", noun)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// displayFile is how a file is named to people and tools: stdin is "stdin".
func displayFile(f string) string {
	if f == "-" {
		return "stdin"
	}
	return f
}

// files returns every file the report mentions, in input order.
func (r *Report) files() []string {
	var out []string
	seen := map[string]bool{}
	add := func(f string) {
		if !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	for _, o := range r.Results {
		add(o.File)
	}
	for _, f := range r.Findings {
		add(f.File)
	}
	for _, e := range r.Errors {
		add(e.File)
	}
	return out
}
