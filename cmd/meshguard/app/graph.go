package app

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/rest"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/graph"
	"github.com/meshguard/meshguard/internal/platform"
	"github.com/meshguard/meshguard/rules"
)

// GraphOptions are the flags of `meshguard graph`.
type GraphOptions struct {
	// Filenames are files, directories (read recursively for .yaml, .yml and
	// .json) or "-" for stdin (-f, --filename; repeatable). Required unless
	// Cluster is set; the two are mutually exclusive.
	Filenames []string
	// Cluster reads a live cluster's objects instead of files (--cluster).
	Cluster bool
	// Kubeconfig and KubeContext select the cluster (--kubeconfig,
	// --context). Default: KUBECONFIG, ~/.kube/config, then in-cluster; the
	// current context.
	Kubeconfig, KubeContext string
	// PageSize is the number of objects per list request with --cluster
	// (--page-size). Default audit.DefaultPageSize.
	PageSize int64
	// Namespace keeps the edges to and from the workloads of one namespace
	// (-n, --namespace). Default: every namespace.
	Namespace string
	// Workload keeps the edges to and from one workload, by name or node ID
	// (--workload). Default: every workload.
	Workload string
	// Output is the format (-o, --output): dot, json, svg or html. Default dot.
	Output graph.Format
	// OutputFile receives the graph instead of stdout (--output-file).
	OutputFile string
	// CollapseAbove collapses workloads into namespace nodes when there are
	// more of them than this (--collapse-above; 0 never collapses). Default
	// graph.DefaultCollapseAbove.
	CollapseAbove int
	// ShowDenied draws denied and rejected edges in dot, svg and html
	// (--show-denied). Default false: they are counted; json lists them always.
	ShowDenied bool
	// TrustDomain of the SPIFFE identities (--trust-domain). Default cluster.local.
	TrustDomain string
	// AssumedGateways are the ingress gateways ("namespace/serviceaccount")
	// assumed when the input holds no gateway pods (--assume-gateway;
	// repeatable). Default graph.DefaultAssumedGateways.
	AssumedGateways []string
	// RulesDirs are directories of custom rules whose findings are shown on
	// the nodes beside the built-in ones (--rules-dir; repeatable).
	RulesDirs []string
	// Rules is the mesh configuration shared with audit and the webhook.
	// Default rules.NewConfig().
	Rules *rules.Config
}

// NewGraphOptions returns the defaults of `meshguard graph`.
func NewGraphOptions() *GraphOptions {
	return &GraphOptions{
		Output:          graph.FormatDOT,
		PageSize:        audit.DefaultPageSize,
		CollapseAbove:   graph.DefaultCollapseAbove,
		TrustDomain:     graph.DefaultTrustDomain,
		AssumedGateways: graph.DefaultAssumedGateways(),
		Rules:           rules.NewConfig(),
	}
}

type graphFormatValue struct{ f *graph.Format }

func (v graphFormatValue) String() string { return string(*v.f) }
func (v graphFormatValue) Type() string   { return "format" }
func (v graphFormatValue) Set(s string) error {
	f, err := graph.ParseFormat(s)
	if err != nil {
		return err
	}
	*v.f = f
	return nil
}

// AddFlags binds the options to flags.
func (o *GraphOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringArrayVarP(&o.Filenames, "filename", "f", o.Filenames, "file, directory (recursive: .yaml, .yml, .json) or - for stdin; repeatable; required unless --cluster")
	fs.BoolVar(&o.Cluster, "cluster", o.Cluster, "read a live cluster's objects (read-only, paged) instead of files; live Pods are grouped into their workloads")
	fs.StringVar(&o.Kubeconfig, "kubeconfig", o.Kubeconfig, "with --cluster: kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or the in-cluster configuration)")
	fs.StringVar(&o.KubeContext, "context", o.KubeContext, "with --cluster: kubeconfig context (default: the current context)")
	fs.Int64Var(&o.PageSize, "page-size", o.PageSize, "with --cluster: objects per list request")
	fs.StringVarP(&o.Namespace, "namespace", "n", o.Namespace, "keep only the edges to and from the workloads of this namespace")
	fs.StringVar(&o.Workload, "workload", o.Workload, "keep only the edges to and from this workload (its name, or its node ID Kind/namespace/name)")
	fs.VarP(graphFormatValue{&o.Output}, "output", "o", "format: dot, json, svg or html (svg and html are rendered in-process)")
	fs.StringVar(&o.OutputFile, "output-file", o.OutputFile, "write the graph to this file instead of stdout (a summary goes to stderr)")
	fs.IntVar(&o.CollapseAbove, "collapse-above", o.CollapseAbove, "above this many workload nodes, draw one node per namespace (0: never)")
	fs.BoolVar(&o.ShowDenied, "show-denied", o.ShowDenied, "draw denied and rejected edges too (dot, svg, html); json always lists them")
	fs.StringVar(&o.TrustDomain, "trust-domain", o.TrustDomain, "trust domain of the workloads' SPIFFE identities")
	fs.StringSliceVar(&o.AssumedGateways, "assume-gateway", o.AssumedGateways, "ingress gateway (namespace/serviceaccount) assumed when the input holds no gateway pods; repeatable")
	fs.StringArrayVar(&o.RulesDirs, "rules-dir", o.RulesDirs, "directory of custom rules (the catalog's format, codes of your own) whose findings are shown on the nodes; repeatable; a rule that cannot be loaded is reported on stderr and left out")
	o.Rules.AddFlags(fs)
}

// Validate rejects options that cannot be used, naming the flag.
func (o *GraphOptions) Validate() error {
	if o.Cluster && len(o.Filenames) > 0 {
		return fmt.Errorf("-f/--filename and --cluster are mutually exclusive: graph manifests or a live cluster, not both")
	}
	if !o.Cluster && (o.Kubeconfig != "" || o.KubeContext != "") {
		return fmt.Errorf("--kubeconfig/--context: only used with --cluster")
	}
	if len(o.Filenames) == 0 && !o.Cluster {
		return fmt.Errorf("-f/--filename: required: name a file, a directory or - for stdin (or read a live cluster with --cluster)")
	}
	for _, f := range o.Filenames {
		if strings.TrimSpace(f) == "" {
			return fmt.Errorf("-f/--filename: must not be empty")
		}
	}
	if o.PageSize <= 0 {
		return fmt.Errorf("--page-size: must be positive, got %d", o.PageSize)
	}
	if o.CollapseAbove < 0 {
		return fmt.Errorf("--collapse-above: must not be negative, got %d", o.CollapseAbove)
	}
	if o.Namespace != "" {
		if errs := validation.IsDNS1123Label(o.Namespace); len(errs) > 0 {
			return fmt.Errorf("-n/--namespace: %q is not a namespace name: %s", o.Namespace, strings.Join(errs, "; "))
		}
	}
	if strings.TrimSpace(o.TrustDomain) == "" || strings.ContainsAny(o.TrustDomain, "/ ") {
		return fmt.Errorf("--trust-domain: %q is not a trust domain such as cluster.local", o.TrustDomain)
	}
	for _, g := range o.AssumedGateways {
		if ns, sa, ok := strings.Cut(g, "/"); !ok || ns == "" || sa == "" || strings.Contains(sa, "/") {
			return fmt.Errorf("--assume-gateway: %q is not namespace/serviceaccount", g)
		}
	}
	if _, err := graph.ParseFormat(string(o.Output)); err != nil {
		return fmt.Errorf("-o/--output: %w", err)
	}
	return o.Rules.Validate()
}

// GraphFunc runs `meshguard graph` with validated options.
type GraphFunc func(ctx context.Context, s Streams, o *GraphOptions) error

// NewGraphCommand builds `meshguard graph`; run is called with the parsed
// and validated options (RunGraph in production, a fake in flag tests).
func NewGraphCommand(s Streams, run GraphFunc) *cobra.Command {
	o := NewGraphOptions()
	cmd := &cobra.Command{
		Use:   "graph (-f FILE|DIR|- | --cluster) [flags]",
		Short: "Draw the allowed-traffic graph: which workload may reach which, and with what protection",
		Long: `Compute, from policy, which connections the mesh allows: for every workload, the ingress
gateway and the outside world (any client without a mesh identity), and every port of every
workload. Each edge is decided by NetworkPolicies (ingress on the destination, egress on the
source), the transport (the destination's PeerAuthentication mode on the port, the source's
proxy, DestinationRules) and AuthorizationPolicies (CUSTOM, DENY, ALLOW with Istio's precedence;
what only a request carries, such as paths, methods or tokens, makes an edge conditional).

Verdicts: allowed-mtls, allowed-by-default (mTLS, but no ALLOW policy applies), allowed-plaintext,
conditional, rejected-mtls, denied-authz, denied-netpol. dot, svg and html draw the allowed edges
(--show-denied draws the rest) with a legend; json lists every edge with its reasons.

Above --collapse-above workload nodes, workloads are drawn as one node per namespace, and the
output says so; -n and --workload keep the edges of one namespace or workload.`,
		Example: `  meshguard graph -f examples/bookinfo/fixed -o svg --output-file bookinfo.svg
  meshguard graph -f deploy/ -o json | jq '.edges[] | select(.verdict == "allowed-plaintext")'
  meshguard graph --cluster -n shop --workload checkout -o html --output-file checkout.html`,
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

// RunGraph reads the inputs, audits them (for the findings on each node),
// computes the graph, filters and collapses it, and writes it.
func RunGraph(ctx context.Context, s Streams, o *GraphOptions) error {
	cat, customErrs, err := rules.LoadCatalogWithCustomRules(o.RulesDirs)
	if err != nil {
		return &ExitError{Code: ExitUsage, Err: fmt.Errorf("load rule catalog: %w", err)}
	}
	// A broken custom rule never stops the built-in ones; the graph has no
	// place for errors, so they go to stderr like the summary.
	for _, e := range customRuleErrors(customErrs) {
		fmt.Fprintf(s.Err, "meshguard graph: warning: %s\n", e.Error())
	}
	var kcfg *rest.Config
	if o.Cluster {
		if kcfg, err = clusterConfig(o.Kubeconfig, o.KubeContext, "meshguard-graph"); err != nil {
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
	var docs []audit.Document
	var inputErrs []audit.InputError
	if o.Cluster {
		listed, err := graphCluster(ctx, kcfg, o)
		if err != nil {
			return &ExitError{Code: ExitUsage, Err: err}
		}
		for _, obj := range listed.Objects {
			docs = append(docs, audit.ClusterDocument(obj))
		}
		inputErrs = listed.Errors
	} else {
		in, err := audit.Read(o.Filenames, s.In)
		if err != nil {
			return &ExitError{Code: ExitUsage, Err: err}
		}
		docs, inputErrs = in.Documents, in.Errors
	}
	if len(inputErrs) > 0 {
		// A graph without some objects would show traffic allowed that they deny.
		var msgs []string
		for _, e := range inputErrs {
			msgs = append(msgs, e.Error())
		}
		return &ExitError{Code: ExitUsage, Err: fmt.Errorf("cannot read every object, so no graph is drawn:\n  %s", strings.Join(msgs, "\n  "))}
	}
	rep := audit.Run(ctx, ev, docs, audit.Options{PostInjection: o.Cluster})
	findings := make([]rules.Finding, 0, len(rep.Findings))
	for _, f := range rep.Findings {
		findings = append(findings, f.Finding)
	}
	objs := make([]rules.Object, 0, len(docs))
	for _, d := range docs {
		objs = append(objs, d.Object)
	}
	g, err := graph.Compute(objs, graph.Options{
		Engine: ev, TrustDomain: o.TrustDomain, Live: o.Cluster, Findings: findings, AssumedGateways: o.AssumedGateways,
	})
	if err != nil {
		return &ExitError{Code: ExitUsage, Err: fmt.Errorf("compute the graph: %w", err)}
	}
	if g, err = g.Filter(o.Namespace, o.Workload); err != nil {
		return &ExitError{Code: ExitUsage, Err: fmt.Errorf("-n/--workload: %w", err)}
	}
	g = g.Collapse(o.CollapseAbove)
	var buf bytes.Buffer
	if err := g.Write(ctx, &buf, o.Output, graph.RenderOptions{ShowDenied: o.ShowDenied}); err != nil {
		return &ExitError{Code: ExitUsage, Err: err}
	}
	if o.OutputFile != "" {
		if err := os.WriteFile(o.OutputFile, buf.Bytes(), 0o644); err != nil {
			return &ExitError{Code: ExitUsage, Err: fmt.Errorf("--output-file: %w", err)}
		}
	} else if _, err := s.Out.Write(buf.Bytes()); err != nil {
		return &ExitError{Code: ExitUsage, Err: fmt.Errorf("write graph: %w", err)}
	}
	sum := g.Summarize()
	var parts []string
	for _, v := range graph.Verdicts() {
		if c := sum.ByVerdict[v.String()]; c > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c, v))
		}
	}
	fmt.Fprintf(s.Err, "meshguard graph: %d nodes, %d edges (%s)\n", sum.Nodes, sum.Edges, strings.Join(parts, ", "))
	for _, n := range g.Notes {
		fmt.Fprintf(s.Err, "  note: %s\n", n)
	}
	return nil
}

// graphCluster lists the graph's kinds from the cluster of o.Kubeconfig/o.KubeContext.
func graphCluster(ctx context.Context, cfg *rest.Config, o *GraphOptions) (*audit.ClusterObjects, error) {
	cl, err := audit.NewClusterClients(cfg)
	if err != nil {
		return nil, fmt.Errorf("--cluster: %w", err)
	}
	listed, err := audit.ListCluster(ctx, cl, graph.Kinds(), o.PageSize)
	if err != nil {
		return nil, fmt.Errorf("--cluster %s: %w", cfg.Host, err)
	}
	return listed, nil
}
