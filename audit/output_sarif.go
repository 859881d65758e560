package audit

import (
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/owenrumney/go-sarif/v3/pkg/report/v210/sarif"

	"github.com/meshguard/meshguard/rules"
)

// InformationURI is meshguard's home page, written into SARIF.
const InformationURI = "https://github.com/meshguard/meshguard"

// sarifLevel maps a severity to a SARIF level: Critical and High are errors
// (the webhook denies them), Medium a warning, Low and Info notes.
func sarifLevel(s rules.Severity) string {
	switch {
	case s >= rules.SeverityHigh:
		return sarif.LevelError
	case s == rules.SeverityMedium:
		return sarif.LevelWarning
	default:
		return sarif.LevelNote
	}
}

// securitySeverity is the numeric score code-scanning dashboards sort by
// (GitHub reads it from a rule's "security-severity" property).
func securitySeverity(s rules.Severity) string {
	switch s {
	case rules.SeverityCritical:
		return "9.5"
	case rules.SeverityHigh:
		return "8.0"
	case rules.SeverityMedium:
		return "5.5"
	case rules.SeverityLow:
		return "3.0"
	default:
		return "1.0"
	}
}

// NewSARIF builds a SARIF 2.1.0 log of the report: one run whose driver lists
// every catalog rule, one result per finding and, for each input error, a
// tool execution notification (the invocation is then not successful).
func NewSARIF(rep *Report, opts WriteOptions) (*sarif.Report, error) {
	opts = opts.withDefaults()
	if opts.Catalog == nil {
		return nil, fmt.Errorf("sarif: no rule catalog")
	}
	base := opts.BaseDir
	if base == "" {
		wd, err := os.Getwd()
		if err != nil {
			return nil, fmt.Errorf("sarif: base directory: %w", err)
		}
		base = wd
	}
	run := sarif.NewRunWithInformationURI("meshguard", InformationURI)
	run.Tool.Driver.WithVersion(opts.ToolVersion).WithSemanticVersion(strings.TrimPrefix(opts.ToolVersion, "v"))
	if !semverLike(opts.ToolVersion) {
		run.Tool.Driver.SemanticVersion = nil
	}
	for _, r := range opts.Catalog.Rules() {
		addSARIFRule(run, r.Code, r.Name, r.Title, r.Why, r.Remediation, r.Severity)
	}
	for _, f := range rep.Findings {
		idx := run.GetRuleIndex(f.Code)
		if idx < 0 { // not in the catalog given; describe it from the finding
			addSARIFRule(run, f.Code, f.Rule, f.Title, f.Why, f.Remediation, f.Severity)
			idx = run.GetRuleIndex(f.Code)
		}
		res := sarif.NewRuleResult(f.Code).
			WithRuleIndex(idx).
			WithLevel(sarifLevel(f.Severity)).
			WithMessage(sarif.NewTextMessage(fmt.Sprintf("%s. Fix: %s", strings.TrimSuffix(f.Message, "."), f.Remediation))).
			AddLocation(sarifLocation(f.File, f.Line, base)).
			WithProperties(sarif.NewPropertyBag().
				Add("severity", f.Severity.String()).
				Add("object", f.Object.String()).
				Add("document", f.Index))
		run.AddResult(res)
	}
	inv := sarif.NewInvocation().WithExecutionSuccessful(len(rep.Errors) == 0)
	for _, e := range rep.Errors {
		msg := e.Err
		if e.Object != "" {
			msg = e.Object + ": " + msg
		}
		if e.Index > 0 {
			msg = fmt.Sprintf("document %d: %s", e.Index, msg)
		}
		n := sarif.NewNotification().
			WithLevel(sarif.LevelError).
			WithMessage(sarif.NewTextMessage(msg)).
			AddLocation(sarifLocation(e.File, e.Line, base))
		inv.AddToolExecutionNotification(n)
	}
	if rep.Cluster != nil {
		for _, u := range rep.Cluster.Unavailable {
			inv.AddToolExecutionNotification(sarif.NewNotification().
				WithLevel(sarif.LevelNote).
				WithMessage(sarif.NewTextMessage(fmt.Sprintf("%s not audited: %s", u, u.Reason))))
		}
	}
	run.AddInvocation(inv)
	s := rep.Summarize(opts.FailOn)
	props := sarif.NewPropertyBag().
		Add("objects", s.Objects).
		Add("evaluated", s.Evaluated).
		Add("skipped", s.Skipped).
		Add("failOn", s.FailOn.String())
	if rep.Cluster != nil {
		props.Add("cluster", rep.Cluster)
	}
	run.WithProperties(props)
	log := sarif.NewReport()
	log.AddRun(run)
	return log, nil
}

// WriteSARIF renders the report as an indented SARIF 2.1.0 log.
func WriteSARIF(w io.Writer, rep *Report, opts WriteOptions) error {
	log, err := NewSARIF(rep, opts)
	if err != nil {
		return fmt.Errorf("write sarif report: %w", err)
	}
	if err := log.PrettyWrite(w); err != nil {
		return fmt.Errorf("write sarif report: %w", err)
	}
	if _, err := io.WriteString(w, "\n"); err != nil {
		return fmt.Errorf("write sarif report: %w", err)
	}
	return nil
}

func addSARIFRule(run *sarif.Run, code, name, title, why, remediation string, sev rules.Severity) {
	run.AddRule(code).
		WithName(name).
		WithShortDescription(sarif.NewMultiformatMessageString().WithText(title)).
		WithFullDescription(sarif.NewMultiformatMessageString().WithText(why)).
		WithHelp(sarif.NewMultiformatMessageString().WithText(remediation)).
		WithDefaultConfiguration(sarif.NewReportingConfiguration().WithLevel(sarifLevel(sev))).
		WithProperties(sarif.NewPropertyBag().
			Add("security-severity", securitySeverity(sev)).
			Add("severity", sev.String()).
			WithTags([]string{"security", "istio", "meshguard"}))
}

func sarifLocation(file string, line int, base string) *sarif.Location {
	pl := sarif.NewPhysicalLocation().WithArtifactLocation(sarif.NewSimpleArtifactLocation(artifactURI(file, base)))
	if line > 0 {
		pl.WithRegion(sarif.NewRegion().WithStartLine(line))
	}
	return sarif.NewLocationWithPhysicalLocation(pl)
}

// artifactURI is a file's URI in SARIF: relative to base with forward
// slashes, a file:// URI when the file is outside base, "stdin" for "-", and
// a cluster object's location (cluster://Kind/namespace/name) as it is.
func artifactURI(file, base string) string {
	if file == "-" {
		return "stdin"
	}
	if isClusterLocation(file) {
		return file
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		return (&url.URL{Path: filepath.ToSlash(file)}).String()
	}
	if absBase, err := filepath.Abs(base); err == nil {
		if rel, err := filepath.Rel(absBase, abs); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return (&url.URL{Path: filepath.ToSlash(rel)}).String()
		}
	}
	p := filepath.ToSlash(abs)
	if !strings.HasPrefix(p, "/") {
		p = "/" + p // a Windows drive: file:///C:/...
	}
	return (&url.URL{Scheme: "file", Path: p}).String()
}

// semverLike reports whether v looks like a semantic version (v1.2.3, 1.2.3-rc.1).
func semverLike(v string) bool {
	v = strings.TrimPrefix(v, "v")
	core, _, _ := strings.Cut(v, "-")
	core, _, _ = strings.Cut(core, "+")
	parts := strings.Split(core, ".")
	if len(parts) != 3 {
		return false
	}
	for _, p := range parts {
		if p == "" || strings.Trim(p, "0123456789") != "" {
			return false
		}
	}
	return true
}
