package app

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/internal/platform"
	"github.com/meshguard/meshguard/rules"
	"github.com/meshguard/meshguard/webhook/netpol"
)

// AuditOptions are the flags of `meshguard audit`.
type AuditOptions struct {
	// Filenames are files, directories (read recursively for .yaml, .yml and
	// .json) or "-" for stdin (-f, --filename; repeatable). Required unless
	// Cluster is set; the two are mutually exclusive.
	Filenames []string
	// Cluster audits the objects of a live cluster instead of files (--cluster).
	Cluster bool
	// Kubeconfig is the kubeconfig file of the cluster (--kubeconfig). Default:
	// KUBECONFIG, then ~/.kube/config, then the in-cluster configuration.
	Kubeconfig string
	// KubeContext is the kubeconfig context to use (--context). Default: the current context.
	KubeContext string
	// PageSize is the number of objects per list request of a cluster audit
	// (--page-size). Default audit.DefaultPageSize.
	PageSize int64
	// Output is the report format (-o, --output): text, json, sarif, junit,
	// openreports or wgpolicyk8s (policy report objects, as the background
	// audit of `meshguard serve` writes them). Default text.
	Output audit.Format
	// OutputFile receives the report instead of stdout (--output-file); the
	// summary then goes to stderr. Default: stdout.
	OutputFile string
	// FailOn is the lowest severity that fails the audit with exit code 1
	// (--fail-on). Default High: what the webhook would deny.
	FailOn rules.Severity
	// DefaultNamespace is the namespace of objects that name none (-n, --namespace). Default "default".
	DefaultNamespace string
	// PostInjection treats Pods as already injected, as in the output of
	// `kubectl get pods -o yaml` (--post-injection). Default false: manifests
	// are seen before injection.
	PostInjection bool
	// RulesDirs are directories of custom rules (--rules-dir; repeatable),
	// evaluated beside the built-in catalog. A custom rule that cannot be
	// loaded is reported as an input error (exit code 2); the rest still run.
	RulesDirs []string
	// Rules is the mesh configuration shared with the webhook (root namespace,
	// proxy image registries, default namespace mode, ...). Default rules.NewConfig().
	Rules *rules.Config
	// NetpolFromAuthz and NetpolFromAuthzNamespaces are serve's
	// --netpol-from-authz and --netpol-from-authz-namespaces: with --cluster,
	// the edges enforcing would cut are derived as that controller derives them.
	NetpolFromAuthz           bool
	NetpolFromAuthzNamespaces []string
}

// NewAuditOptions returns the defaults of `meshguard audit`.
func NewAuditOptions() *AuditOptions {
	return &AuditOptions{
		Output:           audit.FormatText,
		FailOn:           rules.SeverityHigh,
		DefaultNamespace: "default",
		PageSize:         audit.DefaultPageSize,
		Rules:            rules.NewConfig(),
	}
}

// AddFlags binds the options to flags.
func (o *AuditOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringArrayVarP(&o.Filenames, "filename", "f", o.Filenames, "file, directory (recursive: .yaml, .yml, .json) or - for stdin; repeatable; required unless --cluster")
	fs.BoolVar(&o.Cluster, "cluster", o.Cluster, "audit every object of the covered kinds in a live cluster (read-only, paged) instead of files")
	fs.StringVar(&o.Kubeconfig, "kubeconfig", o.Kubeconfig, "with --cluster: kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or the in-cluster configuration)")
	fs.StringVar(&o.KubeContext, "context", o.KubeContext, "with --cluster: kubeconfig context (default: the current context)")
	fs.Int64Var(&o.PageSize, "page-size", o.PageSize, "with --cluster: objects per list request")
	fs.VarP(formatValue{&o.Output}, "output", "o", "report format: text, json, sarif, junit, openreports or wgpolicyk8s (a YAML stream of the report objects meshguard serve --background-audit writes), or html (one self-contained page: compliance per namespace, findings with their fixes, the allowed-traffic graph)")
	fs.StringVar(&o.OutputFile, "output-file", o.OutputFile, "write the report to this file instead of stdout (the summary goes to stderr)")
	fs.Var(severityValue{&o.FailOn}, "fail-on", "exit 1 when a finding is at or above this severity: Info, Low, Medium, High or Critical")
	fs.StringVarP(&o.DefaultNamespace, "namespace", "n", o.DefaultNamespace, "namespace of objects that do not name one")
	fs.BoolVar(&o.PostInjection, "post-injection", o.PostInjection, "treat Pods as already injected (for example the output of kubectl get pods -o yaml); manifests are pre-injection")
	fs.StringArrayVar(&o.RulesDirs, "rules-dir", o.RulesDirs, "directory of custom rules (the catalog's format, codes of your own) evaluated beside the built-in ones; repeatable")
	o.Rules.AddFlags(fs)
	// The default-deny controller's namespace lists, named as `meshguard serve`
	// names them: they decide each namespace's profile (MESH0217 and the
	// --cluster NetworkPolicy preview).
	fs.StringSliceVar(&o.Rules.NetpolExcludeNamespaces, "netpol-exclude-namespaces", o.Rules.NetpolExcludeNamespaces, "namespaces that never get meshguard's default-deny NetworkPolicies (as given to meshguard serve)")
	fs.StringSliceVar(&o.Rules.NetpolGatewayNamespaces, "netpol-gateway-namespaces", o.Rules.NetpolGatewayNamespaces, "namespaces that get the gateway NetworkPolicy profile by default (as given to meshguard serve)")
	fs.BoolVar(&o.NetpolFromAuthz, "netpol-from-authz", o.NetpolFromAuthz, "with --cluster: derive the edges enforcing would cut as meshguard serve --netpol-from-authz does (allows from every namespace's ALLOW AuthorizationPolicies)")
	fs.StringSliceVar(&o.NetpolFromAuthzNamespaces, "netpol-from-authz-namespaces", o.NetpolFromAuthzNamespaces, "with --cluster: like --netpol-from-authz, for these destination namespaces only (as given to meshguard serve)")
}

// Validate rejects options that cannot be used, naming the flag.
func (o *AuditOptions) Validate() error {
	if o.Cluster && len(o.Filenames) > 0 {
		return fmt.Errorf("-f/--filename and --cluster are mutually exclusive: audit manifests or a live cluster, not both")
	}
	if !o.Cluster {
		if o.Kubeconfig != "" {
			return fmt.Errorf("--kubeconfig: only used with --cluster")
		}
		if o.NetpolFromAuthz || len(o.NetpolFromAuthzNamespaces) > 0 {
			return fmt.Errorf("--netpol-from-authz: only used with --cluster")
		}
		if o.KubeContext != "" {
			return fmt.Errorf("--context: only used with --cluster")
		}
	}
	if o.NetpolFromAuthz && len(o.NetpolFromAuthzNamespaces) > 0 {
		return fmt.Errorf("--netpol-from-authz and --netpol-from-authz-namespaces: choose every namespace or a list, not both")
	}
	if o.PageSize <= 0 {
		return fmt.Errorf("--page-size: must be positive, got %d", o.PageSize)
	}
	if len(o.Filenames) == 0 && !o.Cluster {
		return fmt.Errorf("-f/--filename: required: name a file, a directory or - for stdin (or audit a live cluster with --cluster)")
	}
	for _, f := range o.Filenames {
		if strings.TrimSpace(f) == "" {
			return fmt.Errorf("-f/--filename: must not be empty")
		}
	}
	if _, err := audit.ParseFormat(string(o.Output)); err != nil {
		return fmt.Errorf("-o/--output: %w", err)
	}
	if o.FailOn < rules.SeverityInfo || o.FailOn > rules.SeverityCritical {
		return fmt.Errorf("--fail-on: %s is not a severity", o.FailOn)
	}
	if errs := validation.IsDNS1123Label(o.DefaultNamespace); len(errs) > 0 {
		return fmt.Errorf("-n/--namespace: %q is not a namespace name: %s", o.DefaultNamespace, strings.Join(errs, "; "))
	}
	if err := o.Rules.Validate(); err != nil {
		return err
	}
	return nil
}

// AuditFunc runs an audit with validated options.
type AuditFunc func(ctx context.Context, s Streams, o *AuditOptions) error

// NewAuditCommand builds `meshguard audit`; run is called with the parsed and
// validated options (RunAudit in production, a fake in flag tests).
func NewAuditCommand(s Streams, run AuditFunc) *cobra.Command {
	o := NewAuditOptions()
	cmd := &cobra.Command{
		Use:   "audit (-f FILE|DIR|- | --cluster) [flags]",
		Short: "Audit manifests or a live cluster against the rules, as the webhook would judge them",
		Long: `Audit Kubernetes manifests against meshguard's rules, offline.

The context a rule needs (namespaces and their labels, the mesh-wide PeerAuthentication,
AuthorizationPolicies) is built from the manifests themselves. Objects of kinds no rule covers
are counted as skipped in the summary. A document that cannot be parsed is reported with its
file, document index and line; the other documents are still audited.

With --cluster, meshguard lists every object of the kinds the rules cover from the cluster of
--kubeconfig/--context (read-only, --page-size objects per request), builds the context from the
cluster's Namespaces, PeerAuthentications and AuthorizationPolicies, judges live Pods as already
injected, and adds a per-namespace summary (mesh mode, effective mTLS, default-deny authorization, the share
of meshed workloads, findings by severity, and the
preview of the default-deny NetworkPolicy controller: the profile it would apply and whether
the managed set is complete, partial or missing).
Objects are located as cluster://Kind/namespace/name. Kinds whose CRDs are not installed are
listed in the summary, not failed on.

-o html writes one self-contained page (no external script, font or image): the verdict, findings
by severity, the compliance view per namespace (for files too, computed from the manifests), the
findings grouped by severity and object with their fixes, and the allowed-traffic graph of
meshguard graph (collapsed by namespace above graph's default size).

Exit codes: 0 no finding at or above --fail-on, 1 findings at or above --fail-on,
2 usage errors or input that could not be read, parsed or evaluated.`,
		Example: `  meshguard audit -f deploy/
  helm template charts/shop | meshguard audit -f - --fail-on Medium
  kubectl get pods -A -o yaml | meshguard audit -f - --post-injection
  meshguard audit -f deploy/ -o sarif --output-file meshguard.sarif
  meshguard audit --cluster --context prod -o json
  meshguard audit -f deploy/ -o openreports > reports.yaml
  meshguard audit --cluster -o html --output-file meshguard-report.html`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Validate(); err != nil {
				return err
			}
			return run(cmd.Context(), s, o)
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

// RunAudit reads the inputs, evaluates every object with the embedded catalog
// and writes the report. It returns an *ExitError with code 1 when a finding
// is at or above o.FailOn and code 2 when some input could not be audited.
func RunAudit(ctx context.Context, s Streams, o *AuditOptions) error {
	cat, customErrs, err := rules.LoadCatalogWithCustomRules(o.RulesDirs)
	if err != nil {
		return &ExitError{Code: ExitUsage, Err: fmt.Errorf("load rule catalog: %w", err)}
	}
	var kcfg *rest.Config
	if o.Cluster {
		if kcfg, err = clusterConfig(o.Kubeconfig, o.KubeContext, "meshguard-audit"); err != nil {
			return &ExitError{Code: ExitUsage, Err: err}
		}
		if err := platform.Resolve(kcfg, o.Rules); err != nil {
			return &ExitError{Code: ExitUsage, Err: fmt.Errorf("--cluster: %w", err)}
		}
	}
	ev, err := rules.New(cat, o.Rules)
	if err != nil {
		return &ExitError{Code: ExitUsage, Err: err}
	}
	var rep *audit.Report
	var ho audit.HTMLOptions
	if o.Cluster {
		if rep, err = auditCluster(ctx, ev, cat, kcfg, o); err != nil {
			return &ExitError{Code: ExitUsage, Err: err}
		}
		if o.Output == audit.FormatHTML {
			ho = clusterHTML(ctx, ev, kcfg, o, rep)
		}
	} else {
		in, err := audit.Read(o.Filenames, s.In)
		if err != nil {
			return &ExitError{Code: ExitUsage, Err: err}
		}
		rep = audit.Run(ctx, ev, in.Documents, audit.Options{DefaultNamespace: o.DefaultNamespace, PostInjection: o.PostInjection})
		rep.Errors = append(in.Errors, rep.Errors...)
		rep.Ignored = in.Ignored
		if o.Output == audit.FormatHTML {
			ho = filesHTML(ctx, ev, in, o, rep)
		}
	}

	rep.Errors = append(customRuleErrors(customErrs), rep.Errors...)

	wo := audit.WriteOptions{FailOn: o.FailOn, Catalog: cat, ToolVersion: version(), HTML: ho}
	var buf bytes.Buffer
	if err := audit.Write(&buf, o.Output, rep, wo); err != nil {
		return &ExitError{Code: ExitUsage, Err: err}
	}
	if o.OutputFile != "" {
		if err := os.WriteFile(o.OutputFile, buf.Bytes(), 0o644); err != nil {
			return &ExitError{Code: ExitUsage, Err: fmt.Errorf("--output-file: %w", err)}
		}
	} else if _, err := s.Out.Write(buf.Bytes()); err != nil {
		return &ExitError{Code: ExitUsage, Err: fmt.Errorf("write report: %w", err)}
	}
	if o.OutputFile != "" || o.Output != audit.FormatText {
		// The report went to a file or is for a machine: say what happened on stderr.
		fmt.Fprintf(s.Err, "meshguard audit: %s\n", rep.Summarize(o.FailOn))
		for _, e := range rep.Errors {
			fmt.Fprintf(s.Err, "  error: %s\n", e.Error())
		}
	}
	if code := rep.ExitCode(o.FailOn); code != ExitOK {
		return &ExitError{Code: code}
	}
	return nil
}

// auditCluster audits the cluster of o.Kubeconfig/o.KubeContext, loaded with
// client-go's usual rules (--kubeconfig, else KUBECONFIG, ~/.kube/config,
// then the in-cluster configuration).
func auditCluster(ctx context.Context, ev *rules.Engine, cat *rules.Catalog, cfg *rest.Config, o *AuditOptions) (*audit.Report, error) {
	cl, err := audit.NewClusterClients(cfg)
	if err != nil {
		return nil, fmt.Errorf("--cluster: %w", err)
	}
	rep, err := audit.RunCluster(ctx, ev, cl, audit.ClusterOptions{Kinds: cat.Kinds(), PageSize: o.PageSize})
	if err != nil {
		return nil, fmt.Errorf("--cluster %s: %w", cfg.Host, err)
	}
	nc := netpol.NewConfig()
	nc.ExcludeNamespaces, nc.GatewayNamespaces = o.Rules.NetpolExcludeNamespaces, o.Rules.NetpolGatewayNamespaces
	nc.FromAuthz, nc.FromAuthzNamespaces = o.NetpolFromAuthz, o.NetpolFromAuthzNamespaces
	if err := addCutEdges(ctx, ev, cl, o.PageSize, nc, rep.Cluster); err != nil {
		rep.Cluster.CutEdgesError = err.Error()
	}
	return rep, nil
}

// addCutEdges derives, as the default-deny controller does with its default
// configuration, the edges the mesh allows that enforcing would cut, and
// puts them on the namespaces of the summary.
func addCutEdges(ctx context.Context, ev *rules.Engine, cl *audit.ClusterClients, pageSize int64, nc *netpol.Config, sum *audit.ClusterSummary) error {
	if err := nc.Validate(); err != nil {
		return err
	}
	listed, err := audit.ListCluster(ctx, cl, netpol.IntentKinds(), pageSize)
	if err != nil {
		return err
	}
	if len(listed.Errors) > 0 {
		return fmt.Errorf("cannot read every object: %v", listed.Errors[0])
	}
	in, err := nc.Intent(listed.Objects, netpol.IntentOptions{Engine: ev, Live: true, FromAuthz: nc.FromAuthzEnabled(),
		MeshMode: func(ns *corev1.Namespace) string {
			return ev.NamespaceMeshMode(rules.Namespace{Name: ns.Name, Labels: ns.Labels, Annotations: ns.Annotations})
		}})
	if err != nil {
		return err
	}
	if in.Skipped != "" {
		return errors.New(in.Skipped)
	}
	for i := range sum.Namespaces {
		sum.Namespaces[i].CutEdges = in.Cut[sum.Namespaces[i].Name]
		sum.Namespaces[i].CutEdgesTotal = in.CutCount[sum.Namespaces[i].Name]
	}
	return nil
}

// customRuleErrors reports custom rules that could not be loaded as input
// errors: the audit runs without them and exits 2.
func customRuleErrors(errs []error) []audit.InputError {
	out := make([]audit.InputError, 0, len(errs))
	for _, err := range errs {
		ie := audit.InputError{Err: err.Error()}
		if ce, ok := err.(*rules.CustomRuleError); ok {
			ie = audit.InputError{File: ce.File, Index: ce.Document, Err: "custom rule: " + ce.Err.Error()}
		}
		out = append(out, ie)
	}
	return out
}

// clusterConfig loads the configuration of a kubeconfig file and context
// (--kubeconfig, --context) with client-go's usual rules (KUBECONFIG,
// ~/.kube/config, then the in-cluster configuration), for the command agent.
func clusterConfig(kubeconfig, kubeContext, agent string) (*rest.Config, error) {
	loading := clientcmd.NewDefaultClientConfigLoadingRules()
	loading.ExplicitPath = kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(loading, &clientcmd.ConfigOverrides{CurrentContext: kubeContext}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("--cluster: load the cluster configuration: %w", err)
	}
	cfg.UserAgent = agent + "/" + version()
	return cfg, nil
}
