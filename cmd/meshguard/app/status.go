package app

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/reports"
	"github.com/meshguard/meshguard/rules"
)

// StatusOptions are the options of `meshguard status`.
type StatusOptions struct {
	Kube KubeOptions
	// Namespace keeps only this namespace's report (-n); empty: all.
	Namespace string
	// Output is text or json (-o).
	Output string
	// ReportFormat is auto (OpenReports, else wgpolicyk8s), openreports or
	// wgpolicyk8s (--report-format).
	ReportFormat string
	// FailOn, when set, exits 1 if a listed finding is at or above it.
	FailOn string
}

// StatusFunc runs `meshguard status`.
type StatusFunc func(ctx context.Context, s Streams, o *StatusOptions) error

// AddFlags binds the options to flags.
func (o *StatusOptions) AddFlags(fs *pflag.FlagSet) {
	o.Kube.AddFlags(fs)
	fs.StringVarP(&o.Namespace, "namespace", "n", o.Namespace, "show only this namespace")
	fs.StringVarP(&o.Output, "output", "o", "text", "format: text or json")
	fs.StringVar(&o.ReportFormat, "report-format", "auto", "reports to read: auto (OpenReports if served, else wgpolicyk8s), openreports or wgpolicyk8s")
	fs.StringVar(&o.FailOn, "fail-on", "", "exit 1 when a finding in the reports is at or above this severity (Info, Low, Medium, High, Critical); default: never")
}

// Validate rejects options that cannot be used, naming the flag.
func (o *StatusOptions) Validate() error {
	if o.Output != "text" && o.Output != "json" {
		return fmt.Errorf("-o/--output: unknown format %q (want text or json)", o.Output)
	}
	if o.ReportFormat != "auto" {
		if _, err := reports.ParseFormat(o.ReportFormat); err != nil {
			return fmt.Errorf("--report-format: %w", err)
		}
	}
	if o.FailOn != "" {
		if _, err := rules.ParseSeverity(o.FailOn); err != nil {
			return fmt.Errorf("--fail-on: %w", err)
		}
	}
	return nil
}

// NewStatusCommand returns `meshguard status`.
func NewStatusCommand(s Streams, run StatusFunc) *cobra.Command {
	o := &StatusOptions{}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the mesh's compliance per namespace from the background audit's reports",
		Long: `Show, per namespace, the compliance view the background audit (meshguard serve
--background-audit, on in the chart) keeps in its reports: mesh mode, effective mTLS,
whether authorization is default-deny, the default-deny NetworkPolicies, the share of
meshed workloads, quarantined workloads, findings by severity and objects that could not
be evaluated.

status reads only the reports (get/list on reports.openreports.io and clusterreports, or
the wgpolicyk8s.io PolicyReports), so read-only credentials suffice: the chart's
<release>-status-reader ClusterRole grants exactly that.

Exit codes: 0 success; 1 a finding at or above --fail-on; 2 the reports cannot be read
(no report API served, no meshguard report written yet, or no access).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Validate(); err != nil {
				return &ExitError{Code: ExitUsage, Err: err}
			}
			return run(cmd.Context(), s, o)
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

// RunStatus reads meshguard's reports and prints the compliance view.
func RunStatus(ctx context.Context, s Streams, o *StatusOptions) error {
	cfg, err := o.Kube.RESTConfig()
	if err != nil {
		return &ExitError{Code: ExitUsage, Err: err}
	}
	cfg.UserAgent = "meshguard-status"
	dc, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return &ExitError{Code: ExitUsage, Err: err}
	}
	formats := reports.Formats()
	if o.ReportFormat != "auto" {
		f, _ := reports.ParseFormat(o.ReportFormat)
		formats = []reports.Format{f}
	}
	var notServed []string
	for _, f := range formats {
		reps, err := readReports(ctx, dc, f, o.Namespace)
		if isNotServed(err) {
			nsRes, _ := f.Resources()
			notServed = append(notServed, nsRes.GroupResource().String())
			continue
		}
		if err != nil {
			return &ExitError{Code: ExitUsage, Err: err}
		}
		if len(reps) == 0 {
			where := "in the cluster"
			if o.Namespace != "" {
				where = "in namespace " + o.Namespace
			}
			return &ExitError{Code: ExitUsage, Err: fmt.Errorf("no meshguard %s reports %s: is the background audit running (meshguard serve --background-audit --report-format %s; chart backgroundAudit.enabled)?", f, where, f)}
		}
		st := audit.BuildStatus(f, reps)
		if err := audit.WriteStatus(s.Out, st, o.Output); err != nil {
			return &ExitError{Code: ExitUsage, Err: err}
		}
		if o.FailOn != "" {
			min, _ := rules.ParseSeverity(o.FailOn)
			if top, ok := st.HighestSeverity(); ok && top >= min {
				return &ExitError{Code: ExitFindings, Err: fmt.Errorf("findings at or above %s", min)}
			}
		}
		return nil
	}
	return &ExitError{Code: ExitUsage, Err: fmt.Errorf("no report API is served (%v): install the OpenReports CRDs (chart backgroundAudit.installCRDs) or the wgpolicyk8s.io PolicyReport CRDs", notServed)}
}

// readReports lists meshguard's reports of a format: the namespaced ones
// (of one namespace, or all) and, without a namespace, the cluster report.
func readReports(ctx context.Context, dc dynamic.Interface, f reports.Format, namespace string) ([]reports.Report, error) {
	nsRes, clRes := f.Resources()
	sel := metav1.ListOptions{LabelSelector: reports.LabelManagedBy + "=" + reports.ManagedBy}
	var items []unstructured.Unstructured
	list := func(res schema.GroupVersionResource, ns string) error {
		opts := sel
		for {
			var l *unstructured.UnstructuredList
			var err error
			if ns == "" && res == clRes {
				l, err = dc.Resource(res).List(ctx, opts)
			} else {
				l, err = dc.Resource(res).Namespace(ns).List(ctx, opts)
			}
			if err != nil {
				return err
			}
			items = append(items, l.Items...)
			if l.GetContinue() == "" {
				return nil
			}
			opts.Continue = l.GetContinue()
		}
	}
	if err := list(nsRes, namespace); err != nil {
		return nil, fmt.Errorf("list %s: %w", nsRes.GroupResource(), err)
	}
	if namespace == "" {
		if err := list(clRes, ""); err != nil && !isNotServed(err) {
			return nil, fmt.Errorf("list %s: %w", clRes.GroupResource(), err)
		}
	}
	out := make([]reports.Report, 0, len(items))
	for i := range items {
		if items[i].GetName() != reports.Name {
			continue
		}
		r, err := reports.Parse(&items[i])
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Namespace < out[j].Namespace })
	return out, nil
}

// isNotServed reports an error saying the resource does not exist.
func isNotServed(err error) bool {
	if err == nil {
		return false
	}
	var nm *meta.NoKindMatchError
	return apierrors.IsNotFound(err) || errors.As(err, &nm)
}
