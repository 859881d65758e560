package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/meshguard/meshguard/quarantine"
)

// QuarantineOptions are the options of `meshguard quarantine` and `release`.
type QuarantineOptions struct {
	Kube      KubeOptions
	Namespace string
	Reason    string
	DryRun    bool
	Output    string
}

// QuarantineFunc runs `meshguard quarantine` or `release` on a target.
type QuarantineFunc func(ctx context.Context, s Streams, o *QuarantineOptions, target string, release bool) error

func (o *QuarantineOptions) addFlags(fs *pflag.FlagSet, release bool) {
	o.Kube.AddFlags(fs)
	fs.StringVarP(&o.Namespace, "namespace", "n", "", "namespace of the workload (required)")
	fs.BoolVar(&o.DryRun, "dry-run", false, "print what would change and change nothing")
	fs.StringVarP(&o.Output, "output", "o", "text", "format: text or json")
	if !release {
		fs.StringVar(&o.Reason, "reason", "", "why the workload is quarantined (required; recorded on the objects and in an Event)")
	}
}

// NewQuarantineCommands returns `meshguard quarantine` and `meshguard release`.
func NewQuarantineCommands(s Streams, run QuarantineFunc) []*cobra.Command {
	q := &QuarantineOptions{}
	quar := &cobra.Command{
		Use:   "quarantine KIND/NAME -n NAMESPACE --reason TEXT",
		Short: "Cut a compromised workload off at L7 and L3/4 at once",
		Long: `Quarantine a workload (deployment, statefulset, daemonset, replicaset or pod): label it, its
pod template and its running pods meshguard.io/quarantined=<kind>-<name>, create a DENY-all
AuthorizationPolicy and a deny-all NetworkPolicy selecting that label (managed: tenants cannot
remove them, MESH0025 and MESH0215), and record who, when and why on the workload and in an
Event. meshguard's managed allow NetworkPolicies exclude quarantined pods; every other
NetworkPolicy that still admits traffic to or from them is listed, since NetworkPolicies are
additive. MESH0108 keeps non-admins from removing the label. The command also says what it
cannot guarantee (a workload outside the mesh has no proxy to enforce the DENY).

meshguard release KIND/NAME -n NAMESPACE reverses it exactly.`,
		Example: `  meshguard quarantine deployment/cart -n shop --reason "beaconing to 203.0.113.9" --dry-run
  meshguard quarantine deployment/cart -n shop --reason "beaconing to 203.0.113.9"
  meshguard release deployment/cart -n shop`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return run(cmd.Context(), s, q, args[0], false) },
	}
	q.addFlags(quar.Flags(), false)
	r := &QuarantineOptions{}
	rel := &cobra.Command{
		Use:   "release KIND/NAME -n NAMESPACE",
		Short: "Lift a quarantine, restoring the workload and its pods exactly",
		Long: `Release a workload quarantined by meshguard quarantine: remove the label from it, its pod
template and its pods, remove the record, and delete the quarantine's AuthorizationPolicy and
NetworkPolicy. Only meshguard admins can (MESH0108, MESH0025, MESH0215).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return run(cmd.Context(), s, r, args[0], true) },
	}
	r.addFlags(rel.Flags(), true)
	return []*cobra.Command{quar, rel}
}

// RunQuarantine quarantines or releases target.
func RunQuarantine(ctx context.Context, s Streams, o *QuarantineOptions, target string, release bool) error {
	if o.Output != "text" && o.Output != "json" {
		return &ExitError{Code: ExitUsage, Err: fmt.Errorf("-o/--output: unknown format %q (want text or json)", o.Output)}
	}
	t, err := quarantine.ParseTarget(target, o.Namespace)
	if err != nil {
		return &ExitError{Code: ExitUsage, Err: err}
	}
	if !release && strings.TrimSpace(o.Reason) == "" {
		return &ExitError{Code: ExitUsage, Err: fmt.Errorf("--reason is required: say why the workload is quarantined")}
	}
	cfg, err := o.Kube.RESTConfig()
	if err != nil {
		return &ExitError{Code: ExitUsage, Err: err}
	}
	cfg.UserAgent = "meshguard-quarantine"
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return &ExitError{Code: ExitUsage, Err: err}
	}
	dc, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return &ExitError{Code: ExitUsage, Err: err}
	}
	actor := "unknown"
	if ssr, err := kc.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{}); err == nil {
		actor = ssr.Status.UserInfo.Username
	}
	c := quarantine.Clients{Kube: kc, Dynamic: dc}
	qo := quarantine.Options{Reason: o.Reason, Actor: actor, DryRun: o.DryRun}
	var res *quarantine.Result
	if release {
		res, err = quarantine.Release(ctx, c, t, qo)
	} else {
		res, err = quarantine.Quarantine(ctx, c, t, qo)
	}
	if err != nil {
		return &ExitError{Code: 1, Err: err}
	}
	return writeQuarantine(s.Out, res, o.Output, release)
}

func writeQuarantine(w io.Writer, res *quarantine.Result, format string, release bool) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	verb := "quarantined"
	if release {
		verb = "released"
	}
	if res.DryRun {
		fmt.Fprintf(w, "Dry run: %s would be %s (ID %s); nothing was changed.\n", res.Target, verb, res.ID)
	} else {
		fmt.Fprintf(w, "%s %s (ID %s).\n", res.Target, verb, res.ID)
	}
	fmt.Fprintln(w, "Changes:")
	for _, c := range res.Changes {
		fmt.Fprintf(w, "  - %s\n", c)
	}
	if len(res.StillAdmitting) > 0 {
		fmt.Fprintln(w, "Still admitting traffic (NetworkPolicies are additive; fix these):")
		for _, c := range res.StillAdmitting {
			fmt.Fprintf(w, "  ! %s\n", c)
		}
	}
	for _, g := range res.Guarantees {
		fmt.Fprintf(w, "Guaranteed: %s\n", g)
	}
	for _, l := range res.Limits {
		fmt.Fprintf(w, "Not guaranteed: %s\n", l)
	}
	return nil
}
