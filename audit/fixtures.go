package audit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/spf13/pflag"

	"github.com/meshguard/meshguard/rules"
)

// Rule fixtures: a rule folder's pass/*.yaml must produce no finding of the
// rule, its fail/*.yaml must produce findings, equal to fail/*.expected when
// that file exists. The built-in catalog's tests and `meshguard rules test`
// (for custom rules) run fixtures the same way.

// FixtureFlagsPrefix starts a comment line at the top of a fixture that
// names the flags (as `meshguard audit` takes them) the fixture is judged
// with, for example
//
//	# meshguard-flags: --platform=openshift
const FixtureFlagsPrefix = "# meshguard-flags:"

// FixtureFlags returns the flags of a fixture's leading comment lines.
func FixtureFlags(data []byte) []string {
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		t := strings.TrimSpace(line)
		if t == "" {
			continue
		}
		if !strings.HasPrefix(t, "#") {
			break
		}
		if rest, ok := strings.CutPrefix(t, FixtureFlagsPrefix); ok {
			out = append(out, strings.Fields(rest)...)
		}
	}
	return out
}

// Engines returns the evaluator for a fixture's flags (FixtureFlags).
type Engines func(flags []string) (rules.Evaluator, error)

// NewEngines returns Engines over cat: each set of flags is parsed as
// rules.Config's flags onto the defaults, and its engine is built once.
func NewEngines(cat *rules.Catalog) Engines {
	var mu sync.Mutex
	cache := map[string]rules.Evaluator{}
	return func(flags []string) (rules.Evaluator, error) {
		key := strings.Join(flags, "\x00")
		mu.Lock()
		defer mu.Unlock()
		if ev, ok := cache[key]; ok {
			return ev, nil
		}
		cfg := rules.NewConfig()
		fs := pflag.NewFlagSet("fixture", pflag.ContinueOnError)
		fs.SetOutput(io.Discard)
		cfg.AddFlags(fs)
		if err := fs.Parse(flags); err != nil {
			return nil, fmt.Errorf("%s %s: %w", FixtureFlagsPrefix, strings.Join(flags, " "), err)
		}
		ev, err := rules.New(cat, cfg)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", FixtureFlagsPrefix, strings.Join(flags, " "), err)
		}
		cache[key] = ev
		return ev, nil
	}
}

// FixtureFindings evaluates every document of a fixture file with the
// engine for its flags (FixtureFlags), the context built from the file
// itself, and returns the findings of one rule as "Severity
// Kind/namespace/name: message" lines. A document of kind AdmissionReview is
// evaluated as the webhook sees its request (see rules.FixtureRequest);
// anything else as a manifest before injection.
func FixtureFindings(ctx context.Context, engines Engines, file, code string) ([]string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	ev, err := engines(FixtureFlags(data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	docs, errs := Parse(file, data)
	if len(errs) > 0 {
		return nil, fmt.Errorf("fixture does not parse: %w", errs[0])
	}
	snap := rules.NewSnapshot()
	for _, d := range docs {
		if d.Object["kind"] != "AdmissionReview" {
			snap.Add(d.Object, "default")
		}
	}
	var lines []string
	for _, d := range docs {
		req, err := rules.FixtureRequest(d.Object, snap, false)
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", file, d.Index, err)
		}
		fs, err := ev.Evaluate(ctx, req)
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", file, d.Index, err)
		}
		for _, f := range fs {
			if f.Code == code {
				lines = append(lines, fmt.Sprintf("%s %s: %s", f.Severity, f.Object, f.Message))
			}
		}
	}
	return lines, nil
}

// FixtureResult is the outcome of one fixture file.
type FixtureResult struct {
	// Code is the rule's code.
	Code string `json:"code"`
	// File is the fixture file.
	File string `json:"file"`
	// Pass is true for a pass/ fixture, false for a fail/ fixture.
	Pass bool `json:"pass"`
	// Findings are the rule's findings on the file, as FixtureFindings renders them.
	Findings []string `json:"findings,omitempty"`
	// Problem says why the fixture failed ("" when it held).
	Problem string `json:"problem,omitempty"`
}

// OK reports whether the fixture held.
func (r FixtureResult) OK() bool { return r.Problem == "" }

// ErrNoFixtures is returned by RunRuleFixtures for a folder without pass/ or
// fail/ fixtures.
var ErrNoFixtures = errors.New("no fixtures: add pass/*.yaml and fail/*.yaml beside policy.yaml")

// RunRuleFixtures runs the fixtures of the rule in dir (pass/*.yaml and
// fail/*.yaml, with fail/*.expected compared when present). With update set,
// fail/*.expected files are (re)written from the findings instead of
// compared. A fixture that cannot be read or evaluated is a failed result.
func RunRuleFixtures(ctx context.Context, ev Engines, code, dir string, update bool) ([]FixtureResult, error) {
	passes, _ := filepath.Glob(filepath.Join(dir, "pass", "*.yaml"))
	fails, _ := filepath.Glob(filepath.Join(dir, "fail", "*.yaml"))
	if len(passes)+len(fails) == 0 {
		return nil, ErrNoFixtures
	}
	sort.Strings(passes)
	sort.Strings(fails)
	var out []FixtureResult
	for _, f := range passes {
		res := FixtureResult{Code: code, File: f, Pass: true}
		got, err := FixtureFindings(ctx, ev, f, code)
		switch {
		case err != nil:
			res.Problem = err.Error()
		case len(got) > 0:
			res.Findings = got
			res.Problem = fmt.Sprintf("must not violate %s, got %d finding(s)", code, len(got))
		}
		out = append(out, res)
	}
	for _, f := range fails {
		res := FixtureResult{Code: code, File: f}
		got, err := FixtureFindings(ctx, ev, f, code)
		res.Findings = got
		want := strings.TrimSuffix(f, ".yaml") + ".expected"
		text := strings.Join(got, "\n") + "\n"
		switch {
		case err != nil:
			res.Problem = err.Error()
		case len(got) == 0:
			res.Problem = fmt.Sprintf("must violate %s, but produced no finding", code)
		case update:
			if err := os.WriteFile(want, []byte(text), 0o644); err != nil {
				res.Problem = err.Error()
			}
		default:
			exp, err := os.ReadFile(want)
			switch {
			case errors.Is(err, os.ErrNotExist):
				// Without an .expected file, any finding of the rule will do.
			case err != nil:
				res.Problem = err.Error()
			case string(exp) != text:
				res.Problem = fmt.Sprintf("findings differ from %s:\n--- want\n%s--- got\n%s", want, exp, text)
			}
		}
		out = append(out, res)
	}
	return out, nil
}
