package audit

import (
	"encoding/xml"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/meshguard/meshguard/rules"
)

// JUnit XML, in the shape CI systems read: one testsuite per input file, one
// testcase per evaluated object (a failure when it has a finding at or above
// FailOn, its other findings in system-out) and one testcase with an error per
// document that could not be parsed or evaluated.

type junitTestsuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name      string      `xml:"name,attr"`
	Tests     int         `xml:"tests,attr"`
	Failures  int         `xml:"failures,attr"`
	Errors    int         `xml:"errors,attr"`
	Cases     []junitCase `xml:"testcase"`
	SystemOut *junitText  `xml:"system-out,omitempty"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	File      string        `xml:"file,attr,omitempty"`
	Line      int           `xml:"line,attr,omitempty"`
	Failure   *junitProblem `xml:"failure,omitempty"`
	Error     *junitProblem `xml:"error,omitempty"`
	SystemOut *junitText    `xml:"system-out,omitempty"`

	index int // document index, to order the cases as in the file
}

type junitProblem struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",cdata"`
}

// junitText is element text kept verbatim (CDATA), so multi-line output reads
// as written.
type junitText struct {
	Text string `xml:",cdata"`
}

type objectKey struct {
	file        string
	index, line int
	object      string
}

// WriteJUnit renders the report as JUnit XML.
func WriteJUnit(w io.Writer, rep *Report, opts WriteOptions) error {
	opts = opts.withDefaults()
	findings := map[objectKey][]Located{}
	for _, f := range rep.Findings {
		k := objectKey{f.File, f.Index, f.Line, f.Object.String()}
		findings[k] = append(findings[k], f)
	}
	cases := map[string][]junitCase{}
	skipped := map[string][]string{}
	for _, o := range rep.Results {
		file := displayFile(o.File)
		switch o.Status {
		case StatusSkipped:
			skipped[o.File] = append(skipped[o.File], fmt.Sprintf("line %d: %s %s: no rule covers its kind", o.Line, o.Object.APIVersion, o.Object))
		case StatusEvaluated:
			c := junitCase{Name: o.Object.String(), Classname: file, File: file, Line: o.Line, index: o.Index}
			var failing, other []string
			var maxSev rules.Severity
			for _, f := range findings[objectKey{o.File, o.Index, o.Line, o.Object.String()}] {
				if f.Severity >= opts.FailOn {
					failing = append(failing, f.Finding.String())
					maxSev = max(maxSev, f.Severity)
				} else {
					other = append(other, f.Finding.String())
				}
			}
			if len(failing) > 0 {
				c.Failure = &junitProblem{
					Message: fmt.Sprintf("%s at or above %s", plural(len(failing), "finding"), opts.FailOn),
					Type:    maxSev.String(),
					Text:    strings.Join(failing, "\n"),
				}
			}
			if len(other) > 0 {
				c.SystemOut = &junitText{fmt.Sprintf("below %s:\n%s", opts.FailOn, strings.Join(other, "\n"))}
			}
			cases[o.File] = append(cases[o.File], c)
		}
		// StatusError: reported from rep.Errors below.
	}
	for _, e := range rep.Errors {
		file := displayFile(e.File)
		name := e.Object
		if name == "" {
			name = "read " + file
			if e.Index > 0 {
				name = fmt.Sprintf("document %d", e.Index)
			}
		}
		cases[e.File] = append(cases[e.File], junitCase{
			Name: name, Classname: file, File: file, Line: e.Line, index: e.Index,
			Error: &junitProblem{Message: e.Err, Type: "InputError", Text: e.Error()},
		})
	}
	doc := junitTestsuites{Name: "meshguard audit"}
	for _, f := range rep.files() {
		cs := cases[f]
		sort.SliceStable(cs, func(i, j int) bool {
			if cs[i].index != cs[j].index {
				return cs[i].index < cs[j].index
			}
			return cs[i].Line < cs[j].Line
		})
		s := junitSuite{Name: displayFile(f), Tests: len(cs), Cases: cs}
		for _, c := range cs {
			if c.Failure != nil {
				s.Failures++
			}
			if c.Error != nil {
				s.Errors++
			}
		}
		if sk := skipped[f]; len(sk) > 0 {
			s.SystemOut = &junitText{fmt.Sprintf("not evaluated (%d):\n%s", len(sk), strings.Join(sk, "\n"))}
		}
		doc.Tests += s.Tests
		doc.Failures += s.Failures
		doc.Errors += s.Errors
		doc.Suites = append(doc.Suites, s)
	}
	if rep.Cluster != nil {
		// The cluster-wide view: the namespace table and the kinds not served.
		var b strings.Builder
		writeClusterSummary(&b, rep.Cluster)
		doc.Suites = append(doc.Suites, junitSuite{Name: "cluster summary", Cases: []junitCase{}, SystemOut: &junitText{b.String()}})
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return fmt.Errorf("write junit report: %w", err)
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("write junit report: %w", err)
	}
	if _, err := io.WriteString(w, "\n"); err != nil {
		return fmt.Errorf("write junit report: %w", err)
	}
	return nil
}
