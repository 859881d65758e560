package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/rules"
)

// RulesListOptions are the flags of `meshguard rules list`.
type RulesListOptions struct {
	// Output is text (a table), json or markdown (-o, --output). Default text.
	// The markdown table is the README's rule table.
	Output string
	// RulesDirs are directories of custom rules listed after the built-in
	// ones (--rules-dir on `meshguard rules`; repeatable).
	RulesDirs []string
}

// NewRulesListOptions returns the defaults of `meshguard rules list`.
func NewRulesListOptions() *RulesListOptions { return &RulesListOptions{Output: "text"} }

// AddFlags binds the options to flags.
func (o *RulesListOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVarP(&o.Output, "output", "o", o.Output, "format: text, json or markdown (the README rule table)")
}

// Validate rejects an unknown format, naming the flag.
func (o *RulesListOptions) Validate() error {
	switch o.Output {
	case "text", "json", "markdown":
		return nil
	}
	return fmt.Errorf("-o/--output: unknown format %q (want text, json or markdown)", o.Output)
}

// RulesListFunc lists the rules with validated options.
type RulesListFunc func(ctx context.Context, s Streams, o *RulesListOptions) error

// RulesExplainFunc explains the rule with the given code (or slug), looked
// up among the built-in rules and the custom rules of dirs.
type RulesExplainFunc func(ctx context.Context, s Streams, code string, dirs []string) error

// RulesTestFunc runs the fixtures of the custom rules in dirs.
type RulesTestFunc func(ctx context.Context, s Streams, o *RulesTestOptions) error

// NewRulesCommand builds `meshguard rules` with `list`, `explain` and `test`.
func NewRulesCommand(s Streams, list RulesListFunc, explain RulesExplainFunc, test RulesTestFunc) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rules",
		Short: "List, explain and test the rules: the built-in catalog and your custom rules",
	}
	o := NewRulesListOptions()
	cmd.PersistentFlags().StringArrayVar(&o.RulesDirs, "rules-dir", nil, "directory of custom rules to include (the catalog's format, codes of your own); repeatable")
	listCmd := &cobra.Command{
		Use:   "list",
		Short: "List every rule: code, slug, severity, kinds and title",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Validate(); err != nil {
				return err
			}
			return list(cmd.Context(), s, o)
		},
	}
	o.AddFlags(listCmd.Flags())
	explainCmd := &cobra.Command{
		Use:     "explain CODE",
		Short:   "Explain a rule: title, severity, kinds, why it matters and how to fix it",
		Example: "  meshguard rules explain MESH0150",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("%q takes exactly one rule code (for example MESH0150), got %d arguments", cmd.CommandPath(), len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return explain(cmd.Context(), s, args[0], o.RulesDirs)
		},
	}
	to := &RulesTestOptions{}
	testCmd := &cobra.Command{
		Use:   "test DIR...",
		Short: "Run the pass/ and fail/ fixtures of the custom rules in each DIR",
		Long: `Run the fixtures of custom rules, as meshguard's own catalog is tested: for every rule folder
(NAME/policy.yaml) in each DIR, every pass/*.yaml must produce no finding of the rule and every
fail/*.yaml must produce findings, exactly those of fail/*.expected when that file exists
(--update writes them; review the diff). Each fixture is a multi-document YAML stream audited as
meshguard audit -f would (its Namespaces and Istio policies are the context; an AdmissionReview
document is judged as the webhook sees its request). The built-in rules run too, so a custom
rule that reads their facts is tested against the real ones.

Exit codes: 0 every fixture held, 1 a fixture failed, 2 a rule could not be loaded or has no fixtures.`,
		Example: `  meshguard rules test examples/custom-rules
  meshguard rules test policies/ --update`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return fmt.Errorf("%q takes one or more directories of custom rules", cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			to.Dirs = args
			return test(cmd.Context(), s, to)
		},
	}
	testCmd.Flags().BoolVar(&to.Update, "update", false, "write each fail/*.expected from the findings instead of comparing (review the diff)")
	versionsCmd := &cobra.Command{
		Use:   "versions",
		Short: "List the Istio behaviours the rules depend on that changed between releases (Markdown, the README's table)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var b strings.Builder
			b.WriteString("| behaviour | since | what meshguard does | rules |\n|---|---|---|---|\n")
			for _, d := range rules.VersionDifferences() {
				fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", mdCell(d.Behaviour), d.Since, mdCell(d.Meshguard), strings.Join(d.Codes, ", "))
			}
			_, err := io.WriteString(s.Out, b.String())
			return err
		},
	}
	cmd.AddCommand(listCmd, explainCmd, testCmd, versionsCmd)
	return cmd
}

// RulesTestOptions are the arguments and flags of `meshguard rules test`.
type RulesTestOptions struct {
	// Dirs are the directories of custom rules whose fixtures run.
	Dirs []string
	// Update writes fail/*.expected instead of comparing (--update).
	Update bool
}

// ruleKind is a kind a rule applies to, with every version the API server serves.
type ruleKind struct {
	Group    string   `json:"group"`
	Kind     string   `json:"kind"`
	Versions []string `json:"versions"`
}

// ruleDoc is a rule as `rules list -o json` prints it.
type ruleDoc struct {
	Code             string         `json:"code"`
	Rule             string         `json:"rule"`
	Title            string         `json:"title"`
	Severity         rules.Severity `json:"severity"`
	Kinds            []ruleKind     `json:"kinds"`
	SkipControlPlane bool           `json:"skipControlPlane"`
	AuditOnly        bool           `json:"auditOnly"`
	Why              string         `json:"why"`
	Remediation      string         `json:"remediation"`
	// Source is the file of a custom rule; empty for built-in rules.
	Source string `json:"source,omitempty"`
	// IstioVersions says how the rule's semantics depend on the Istio release.
	IstioVersions string `json:"istioVersions,omitempty"`
}

func kindsOf(r *rules.Rule) []ruleKind {
	out := make([]ruleKind, 0, len(r.Kinds))
	for _, gk := range r.Kinds {
		k := ruleKind{Group: gk.Group, Kind: gk.Kind}
		if info, ok := rules.LookupKind(gk); ok {
			k.Versions = info.Versions
		}
		out = append(out, k)
	}
	return out
}

// kindsSummary names a rule's kinds briefly: "workloads" for every kind that
// carries a pod template, then the other kinds by name, and "(audit only)"
// for a rule admission never evaluates.
func kindsSummary(r *rules.Rule) string {
	have := map[schema.GroupKind]bool{}
	for _, gk := range r.Kinds {
		have[gk] = true
	}
	workloads := map[schema.GroupKind]bool{}
	all := true
	for _, k := range rules.PodTemplateKinds() {
		workloads[k.GroupKind()] = true
		all = all && have[k.GroupKind()]
	}
	var names []string
	if all {
		names = append(names, "workloads")
	}
	for _, gk := range r.Kinds {
		if all && workloads[gk] {
			continue
		}
		names = append(names, gk.Kind)
	}
	if r.AuditOnly {
		return strings.Join(names, ", ") + " (audit only)"
	}
	return strings.Join(names, ", ")
}

// RunRulesList prints the embedded catalog, ordered by code.
func RunRulesList(_ context.Context, s Streams, o *RulesListOptions) error {
	cat, err := loadRules(o.RulesDirs)
	if err != nil {
		return err
	}
	if err := writeRules(s.Out, cat, o.Output); err != nil {
		return &ExitError{Code: ExitUsage, Err: fmt.Errorf("rules list: %w", err)}
	}
	return nil
}

func writeRules(w io.Writer, cat *rules.Catalog, format string) error {
	switch format {
	case "json":
		docs := make([]ruleDoc, 0, len(cat.Rules()))
		for _, r := range cat.Rules() {
			docs = append(docs, ruleDoc{Code: r.Code, Rule: r.Name, Title: r.Title, Severity: r.Severity, Kinds: kindsOf(r),
				SkipControlPlane: r.SkipControlPlane, AuditOnly: r.AuditOnly, Why: r.Why, Remediation: r.Remediation, Source: r.Source, IstioVersions: r.IstioVersions})
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(docs)
	case "markdown":
		var b strings.Builder
		b.WriteString("| Code | Rule | Severity | Kinds | Title |\n")
		b.WriteString("|---|---|---|---|---|\n")
		for _, r := range cat.Rules() {
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", r.Code, mdCell(r.Name), r.Severity, mdCell(kindsSummary(r)), mdCell(r.Title))
		}
		_, err := io.WriteString(w, b.String())
		return err
	default:
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CODE\tRULE\tSEVERITY\tKINDS\tTITLE")
		for _, r := range cat.Rules() {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Code, r.Name, r.Severity, kindsSummary(r), r.Title)
		}
		return tw.Flush()
	}
}

// mdCell escapes text for a Markdown table cell.
func mdCell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.Join(strings.Fields(s), " ")
}

// RunRulesExplain prints one rule of the embedded catalog, found by code
// (case-insensitive) or slug.
func RunRulesExplain(_ context.Context, s Streams, code string, dirs []string) error {
	cat, err := loadRules(dirs)
	if err != nil {
		return err
	}
	r, ok := findRule(cat, code)
	if !ok {
		return &ExitError{Code: ExitUsage, Err: fmt.Errorf("rules explain: unknown rule %q; `meshguard rules list` shows every code", code)}
	}
	if err := explainRule(s.Out, r); err != nil {
		return &ExitError{Code: ExitUsage, Err: fmt.Errorf("rules explain: %w", err)}
	}
	return nil
}

func findRule(cat *rules.Catalog, code string) (*rules.Rule, bool) {
	code = strings.TrimSpace(code)
	if r, ok := cat.Rule(code); ok {
		return r, true
	}
	for _, r := range cat.Rules() {
		if r.Name == code || r.Dir == code {
			return r, true
		}
	}
	return nil, false
}

func explainRule(w io.Writer, r *rules.Rule) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %s\n\n", r.Code, r.Name, r.Title)
	fmt.Fprintf(&b, "Severity: %s\n", r.Severity)
	b.WriteString("Kinds:\n")
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	for _, k := range kindsOf(r) {
		name, versions := k.Kind, make([]string, 0, len(k.Versions))
		for _, v := range k.Versions {
			if k.Group != "" {
				v = k.Group + "/" + v
			}
			versions = append(versions, v)
		}
		if k.Group != "" {
			name = k.Group + "/" + k.Kind
		}
		fmt.Fprintf(tw, "  %s\t%s\n", name, strings.Join(versions, ", "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if r.Custom {
		fmt.Fprintf(&b, "Custom rule, from %s.\n", r.Source)
	}
	if r.IstioVersions != "" {
		fmt.Fprintf(&b, "Istio versions: %s (meshguard applies the running release's: --istio-version, else detected from istiod).\n", r.IstioVersions)
	}
	if r.SkipControlPlane {
		b.WriteString("Not applied in system and control-plane namespaces (--system-namespaces, --control-plane-namespaces).\n")
	}
	if r.AuditOnly {
		b.WriteString("Audit only: `meshguard audit` reports it; admission never evaluates it.\n")
	}
	b.WriteString("\nWhy:\n")
	b.WriteString(wrap(r.Why, "  ", 100))
	b.WriteString("\nRemediation:\n")
	b.WriteString(wrap(r.Remediation, "  ", 100))
	_, err := io.WriteString(w, b.String())
	return err
}

// wrap fills text into lines of at most width columns, each with indent.
func wrap(text, indent string, width int) string {
	var b strings.Builder
	line := indent
	for _, word := range strings.Fields(text) {
		if line != indent && len(line)+1+len(word) > width {
			b.WriteString(line + "\n")
			line = indent
		}
		if line != indent {
			line += " "
		}
		line += word
	}
	if line != indent {
		b.WriteString(line + "\n")
	}
	return b.String()
}

// loadRules loads the built-in catalog and the custom rules of dirs; a custom
// rule that cannot be loaded fails the command, naming its file and field.
func loadRules(dirs []string) (*rules.Catalog, error) {
	cat, errs, err := rules.LoadCatalogWithCustomRules(dirs)
	if err != nil {
		return nil, &ExitError{Code: ExitUsage, Err: fmt.Errorf("load rule catalog: %w", err)}
	}
	if len(errs) > 0 {
		return nil, &ExitError{Code: ExitUsage, Err: errors.Join(errs...)}
	}
	return cat, nil
}

// RunRulesTest runs the fixtures of every custom rule folder in o.Dirs with
// the built-in catalog and those custom rules, and prints one line per
// fixture file.
func RunRulesTest(ctx context.Context, s Streams, o *RulesTestOptions) error {
	cat, err := loadRules(o.Dirs)
	if err != nil {
		return err
	}
	ev := audit.NewEngines(cat)
	var failed, total int
	var problems []error
	for _, r := range cat.Rules() {
		if !r.Custom {
			continue
		}
		if filepath.Base(r.Source) != rules.PolicyFile {
			fmt.Fprintf(s.Out, "?    %s %s: a rule file, not a folder: no fixtures to run\n", r.Code, r.Source)
			continue
		}
		results, err := audit.RunRuleFixtures(ctx, ev, r.Code, filepath.Dir(r.Source), o.Update)
		if err != nil {
			problems = append(problems, fmt.Errorf("%s (%s): %w", r.Code, filepath.Dir(r.Source), err))
			continue
		}
		for _, res := range results {
			total++
			kind := "fail"
			if res.Pass {
				kind = "pass"
			}
			if res.OK() {
				fmt.Fprintf(s.Out, "ok   %s %s fixture %s\n", r.Code, kind, res.File)
				continue
			}
			failed++
			fmt.Fprintf(s.Out, "FAIL %s %s fixture %s: %s\n", r.Code, kind, res.File, res.Problem)
			for _, f := range res.Findings {
				fmt.Fprintf(s.Out, "       %s\n", f)
			}
		}
	}
	fmt.Fprintf(s.Out, "%d fixture(s), %d failed\n", total, failed)
	switch {
	case len(problems) > 0:
		return &ExitError{Code: ExitUsage, Err: errors.Join(problems...)}
	case total == 0:
		return &ExitError{Code: ExitUsage, Err: fmt.Errorf("rules test: no rule folders with fixtures in %s", strings.Join(o.Dirs, ", "))}
	case failed > 0:
		return &ExitError{Code: ExitFindings}
	}
	return nil
}
