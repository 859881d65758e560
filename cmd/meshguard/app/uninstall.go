package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
)

// UninstallOptions are the flags of `meshguard uninstall`.
type UninstallOptions struct {
	Kube KubeOptions
	// ValidatingWebhookConfiguration and MutatingWebhookConfiguration are the
	// names to delete; empty skips one. Default "meshguard" (the chart's names).
	ValidatingWebhookConfiguration, MutatingWebhookConfiguration string
	// Timeout bounds the whole command. Default 30s.
	Timeout time.Duration
}

// NewUninstallOptions returns the defaults.
func NewUninstallOptions() *UninstallOptions {
	return &UninstallOptions{ValidatingWebhookConfiguration: "meshguard", MutatingWebhookConfiguration: "meshguard", Timeout: 30 * time.Second}
}

// AddFlags binds the flags.
func (o *UninstallOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.ValidatingWebhookConfiguration, "validating-webhook-configuration", o.ValidatingWebhookConfiguration, `name of meshguard's ValidatingWebhookConfiguration ("" skips it)`)
	fs.StringVar(&o.MutatingWebhookConfiguration, "mutating-webhook-configuration", o.MutatingWebhookConfiguration, `name of meshguard's MutatingWebhookConfiguration ("" skips it)`)
	fs.DurationVar(&o.Timeout, "timeout", o.Timeout, "give up after this long")
	o.Kube.AddFlags(fs)
}

// Validate checks the options.
func (o *UninstallOptions) Validate() error {
	if o.ValidatingWebhookConfiguration == "" && o.MutatingWebhookConfiguration == "" {
		return errors.New("--validating-webhook-configuration and --mutating-webhook-configuration: both empty, nothing to delete")
	}
	for flag, v := range map[string]string{
		"--validating-webhook-configuration": o.ValidatingWebhookConfiguration,
		"--mutating-webhook-configuration":   o.MutatingWebhookConfiguration,
	} {
		if msgs := validation.IsDNS1123Subdomain(v); v != "" && len(msgs) > 0 {
			return fmt.Errorf("%s: %q is not a valid name: %v", flag, v, msgs[0])
		}
	}
	if o.Timeout <= 0 {
		return fmt.Errorf("--timeout: %s is not positive", o.Timeout)
	}
	return nil
}

// UninstallFunc runs the uninstall; tests substitute it to check flag parsing.
type UninstallFunc func(ctx context.Context, s Streams, o *UninstallOptions) error

// NewUninstallCommand builds `meshguard uninstall` (alias cleanup-webhooks).
func NewUninstallCommand(s Streams, run UninstallFunc) *cobra.Command {
	o := NewUninstallOptions()
	cmd := &cobra.Command{
		Use:     "uninstall [flags]",
		Aliases: []string{"cleanup-webhooks"},
		Short:   "Delete meshguard's webhook configurations, so no stale webhook blocks the cluster",
		Long: `Delete meshguard's ValidatingWebhookConfiguration and MutatingWebhookConfiguration by name, before
meshguard's pods go away: a webhook configuration left behind with failurePolicy Fail would reject every
change it matches. The Helm chart runs this command in a pre-delete hook. A configuration that does not
exist counts as deleted, so the command can run any number of times.

Exit codes: 0 both are gone (deleted now or already absent), 1 a deletion failed (for example
Forbidden: the identity needs delete on the configurations), 2 a usage error or no cluster connection
could be configured.`,
		Example: `  meshguard uninstall
  meshguard uninstall --kubeconfig ~/.kube/config --context prod --validating-webhook-configuration meshguard`,
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

// RunUninstall deletes the webhook configurations by name; NotFound is success.
func RunUninstall(ctx context.Context, s Streams, o *UninstallOptions) error {
	cfg, err := o.Kube.RESTConfig()
	if err != nil {
		return &ExitError{Code: ExitUsage, Err: err}
	}
	cfg.Timeout = o.Timeout
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return &ExitError{Code: ExitUsage, Err: fmt.Errorf("client: %w", err)}
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	ar := cs.AdmissionregistrationV1()
	targets := []struct {
		kind, name string
		del        func(context.Context, string, metav1.DeleteOptions) error
	}{
		{"validatingwebhookconfiguration", o.ValidatingWebhookConfiguration, ar.ValidatingWebhookConfigurations().Delete},
		{"mutatingwebhookconfiguration", o.MutatingWebhookConfiguration, ar.MutatingWebhookConfigurations().Delete},
	}
	var errs []error
	for _, t := range targets {
		if t.name == "" {
			continue
		}
		err := t.del(ctx, t.name, metav1.DeleteOptions{})
		switch {
		case err == nil:
			fmt.Fprintf(s.Out, "%s %q deleted\n", t.kind, t.name)
		case apierrors.IsNotFound(err):
			fmt.Fprintf(s.Out, "%s %q not found (already deleted)\n", t.kind, t.name)
		default:
			errs = append(errs, fmt.Errorf("delete %s %q: %w", t.kind, t.name, err))
		}
	}
	if len(errs) > 0 {
		return &ExitError{Code: 1, Err: errors.Join(errs...)}
	}
	return nil
}
