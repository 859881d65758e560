package audit

import (
	"bufio"
	"fmt"
	"io"
)

// WriteText renders the report for a terminal: findings grouped by object
// ("file:line Kind/namespace/name", then per finding its severity, code, rule,
// message, why it matters and the fix), the input errors with file, document and line, the summary
// and a verdict.
func WriteText(w io.Writer, rep *Report, opts WriteOptions) error {
	opts = opts.withDefaults()
	bw := bufio.NewWriter(w)
	var prev *Located
	for i := range rep.Findings {
		f := &rep.Findings[i]
		if prev == nil || prev.File != f.File || prev.Index != f.Index || prev.Line != f.Line || prev.Object != f.Object {
			if prev != nil {
				fmt.Fprintln(bw)
			}
			fmt.Fprintf(bw, "%s:%d: %s\n", displayFile(f.File), f.Line, f.Object)
		}
		prev = f
		fmt.Fprintf(bw, "  %-8s  %s %s: %s\n", f.Severity, f.Code, f.Rule, f.Message)
		fmt.Fprintf(bw, "  %-8s  why: %s\n", "", f.Why)
		fmt.Fprintf(bw, "  %-8s  fix: %s\n", "", f.Remediation)
	}
	if len(rep.Findings) > 0 {
		fmt.Fprintln(bw)
	}
	if len(rep.Errors) > 0 {
		fmt.Fprintln(bw, "Errors (these documents were not audited):")
		for _, e := range rep.Errors {
			fmt.Fprintf(bw, "  %s\n", e.Error())
		}
		fmt.Fprintln(bw)
	}
	if len(rep.Ignored) > 0 {
		fmt.Fprintln(bw, "Ignored (not Kubernetes objects: no kind):")
		for _, e := range rep.Ignored {
			fmt.Fprintf(bw, "  %s\n", e.Location())
		}
		fmt.Fprintln(bw)
	}
	s := rep.Summarize(opts.FailOn)
	fmt.Fprintln(bw, s.String())
	switch s.ExitCode {
	case ExitError:
		fmt.Fprintf(bw, "ERROR: %s could not be audited\n", plural(s.Errors, "document"))
	case ExitFindings:
		fmt.Fprintf(bw, "FAIL: %s at or above %s\n", plural(s.Failing, "finding"), s.FailOn)
	default:
		fmt.Fprintf(bw, "PASS: no finding at or above %s\n", s.FailOn)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write text report: %w", err)
	}
	return nil
}
