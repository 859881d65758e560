package app

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"sigs.k8s.io/yaml"

	"sort"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/rules"
	"github.com/meshguard/meshguard/webhook/netpol"
)

// NetpolRenderOptions are the flags of `meshguard netpol render`.
type NetpolRenderOptions struct {
	// Filenames are files, directories or "-" (-f, --filename; repeatable).
	// Required unless Cluster is set; the two are mutually exclusive.
	Filenames []string
	// Cluster reads a live cluster's objects instead of files (--cluster).
	Cluster bool
	// Kubeconfig and KubeContext select the cluster (--kubeconfig, --context).
	Kubeconfig, KubeContext string
	// PageSize is the number of objects per list request with --cluster.
	PageSize int64
	// Netpol is the controller's configuration (the --netpol-* flags of serve).
	Netpol *netpol.Config
}

// NewNetpolRenderOptions returns the defaults.
func NewNetpolRenderOptions() *NetpolRenderOptions {
	return &NetpolRenderOptions{PageSize: audit.DefaultPageSize, Netpol: netpol.NewConfig()}
}

// AddFlags binds the options to flags.
func (o *NetpolRenderOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringArrayVarP(&o.Filenames, "filename", "f", o.Filenames, "file, directory (recursive: .yaml, .yml, .json) or - for stdin; repeatable; required unless --cluster")
	fs.BoolVar(&o.Cluster, "cluster", o.Cluster, "read a live cluster's objects (read-only, paged) instead of files")
	fs.StringVar(&o.Kubeconfig, "kubeconfig", o.Kubeconfig, "with --cluster: kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or the in-cluster configuration)")
	fs.StringVar(&o.KubeContext, "context", o.KubeContext, "with --cluster: kubeconfig context (default: the current context)")
	fs.Int64Var(&o.PageSize, "page-size", o.PageSize, "with --cluster: objects per list request")
	o.Netpol.AddFlags(fs)
}

// Validate rejects options that cannot be used, naming the flag.
func (o *NetpolRenderOptions) Validate() error {
	if o.Cluster && len(o.Filenames) > 0 {
		return fmt.Errorf("-f/--filename and --cluster are mutually exclusive: render from manifests or a live cluster, not both")
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
	return o.Netpol.Validate()
}

// NetpolRenderFunc runs `meshguard netpol render` with validated options.
type NetpolRenderFunc func(ctx context.Context, s Streams, o *NetpolRenderOptions) error

// NewNetpolCommand builds `meshguard netpol` and its render subcommand.
func NewNetpolCommand(s Streams, render NetpolRenderFunc) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "netpol",
		Short: "NetworkPolicies meshguard's controller manages",
		Args:  noArgs,
	}
	o := NewNetpolRenderOptions()
	r := &cobra.Command{
		Use:   "render (-f FILE|DIR|- | --cluster) [flags]",
		Short: "Print every NetworkPolicy the controller would manage, as YAML, for GitOps",
		Long: `Print, as one YAML stream, every NetworkPolicy the default-deny controller (serve --netpol)
would manage for the input: the profile set of every Namespace (default deny, DNS, istiod,
metrics, HBONE, gateway lock-down), then mesh-allow-gateway-to-<service> for every Service a
Gateway-bound VirtualService or a Gateway API HTTPRoute routes to. Namespaces come in name
order, policies in render order, so the output is stable and can be committed.

Allow policies are rendered only in namespaces that get an application profile (sidecar or
ambient). Notes on stderr say what could not be derived (a route to a Service or Gateway the
input does not hold). The --netpol-* flags are those of serve.`,
		Example: `  meshguard netpol render -f examples/bookinfo/fixed > netpols.yaml
  meshguard netpol render --cluster --netpol-gateway-namespaces istio-system`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Validate(); err != nil {
				return err
			}
			return render(cmd.Context(), s, o)
		},
	}
	o.AddFlags(r.Flags())
	cmd.AddCommand(r)
	return cmd
}

// RunNetpolRender reads the inputs and writes the policies.
func RunNetpolRender(ctx context.Context, s Streams, o *NetpolRenderOptions) error {
	var objs []rules.Object
	if o.Cluster {
		kcfg, err := clusterConfig(o.Kubeconfig, o.KubeContext, "meshguard-netpol")
		if err != nil {
			return &ExitError{Code: ExitUsage, Err: err}
		}
		cl, err := audit.NewClusterClients(kcfg)
		if err != nil {
			return &ExitError{Code: ExitUsage, Err: fmt.Errorf("--cluster: %w", err)}
		}
		listed, err := audit.ListCluster(ctx, cl, netpol.IntentKinds(), o.PageSize)
		if err != nil {
			return &ExitError{Code: ExitUsage, Err: fmt.Errorf("--cluster %s: %w", kcfg.Host, err)}
		}
		if len(listed.Errors) > 0 {
			return &ExitError{Code: ExitUsage, Err: fmt.Errorf("--cluster: cannot read every object: %v", listed.Errors[0])}
		}
		objs = listed.Objects
	} else {
		in, err := audit.Read(o.Filenames, s.In)
		if err != nil {
			return &ExitError{Code: ExitUsage, Err: err}
		}
		if len(in.Errors) > 0 {
			var msgs []string
			for _, e := range in.Errors {
				msgs = append(msgs, e.Error())
			}
			return &ExitError{Code: ExitUsage, Err: fmt.Errorf("cannot read every object, so nothing is rendered:\n  %s", strings.Join(msgs, "\n  "))}
		}
		for _, d := range in.Documents {
			objs = append(objs, d.Object)
		}
	}
	cat, err := rules.DefaultCatalog()
	if err != nil {
		return err
	}
	ev, err := rules.New(cat, rules.NewConfig())
	if err != nil {
		return err
	}
	policies, intent, err := o.Netpol.RenderAll(objs, netpol.IntentOptions{Engine: ev, Live: o.Cluster})
	if err != nil {
		return &ExitError{Code: ExitUsage, Err: fmt.Errorf("derive the policies: %w", err)}
	}
	var buf bytes.Buffer
	for i, np := range policies {
		b, err := yaml.Marshal(np)
		if err != nil {
			return &ExitError{Code: ExitUsage, Err: fmt.Errorf("render %s/%s: %w", np.Namespace, np.Name, err)}
		}
		if i > 0 {
			buf.WriteString("---\n")
		}
		buf.Write(b)
	}
	if _, err := s.Out.Write(buf.Bytes()); err != nil {
		return &ExitError{Code: ExitUsage, Err: fmt.Errorf("write policies: %w", err)}
	}
	fmt.Fprintf(s.Err, "meshguard netpol render: %d NetworkPolicies\n", len(policies))
	for _, n := range intent.Notes {
		fmt.Fprintf(s.Err, "  note: %s\n", n)
	}
	writeIntentEdges(s.Err, "  ", intent)
	return nil
}

// writeIntentEdges lists, per namespace, the edges enforcing would cut and
// those the derived allows keep open.
func writeIntentEdges(w io.Writer, indent string, in *netpol.Intent) {
	for _, sec := range []struct {
		title string
		edges map[string][]string
	}{
		{"enforcing would cut these edges, allowed today (SOURCE -> DESTINATION:PORT)", in.Cut},
		{"kept open by the derived allow policies (plain default deny would cut them)", in.Restored},
	} {
		if len(sec.edges) == 0 {
			continue
		}
		fmt.Fprintf(w, "%s%s:\n", indent, sec.title)
		nss := make([]string, 0, len(sec.edges))
		for ns := range sec.edges {
			nss = append(nss, ns)
		}
		sort.Strings(nss)
		for _, ns := range nss {
			for _, e := range sec.edges[ns] {
				fmt.Fprintf(w, "%s  %s: %s\n", indent, ns, e)
			}
		}
	}
}
