package app

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"sigs.k8s.io/yaml"

	"github.com/meshguard/meshguard/rules"
	"github.com/meshguard/meshguard/webhook"
)

// NewWebhookConfigCommand builds `meshguard webhook-config`, which prints the
// webhook configurations for the embedded catalog.
func NewWebhookConfigCommand(s Streams) *cobra.Command {
	var (
		o                     webhook.ConfigOptions
		caFile, failurePolicy string
		svcNS, svcName        string
		svcPort               int32
		systemNS              = rules.DefaultSystemNamespaces()
		ownNamespace          string
		rulesDirs             []string
	)
	cmd := &cobra.Command{
		Use:   "webhook-config [flags]",
		Short: "Print the ValidatingWebhookConfiguration (and enrollment MutatingWebhookConfiguration) for the catalog",
		Long: `Print the webhook configurations that send every kind the catalog covers, in every served
version, to meshguard (plus pods/ephemeralcontainers, and in a webhook of its own the status, finalize and
binding subresources, sent only when they change labels or annotations). Point them at a Service (--service-*) or a URL,
with the CA bundle that signed the serving certificate. System namespaces and meshguard's own namespace
are excluded from the workload webhook by kubernetes.io/metadata.name; Istio configuration is judged
everywhere, since istio-system is the mesh root namespace.`,
		Example: `  meshguard webhook-config --url https://127.0.0.1:9443 --ca-bundle certs/ca.crt | kubectl apply -f -
  meshguard webhook-config --service-namespace meshguard --service-name meshguard --ca-bundle ca.crt --enroll`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case o.URL != "" && svcName != "":
				return fmt.Errorf("--url and --service-name: set one")
			case o.URL == "" && svcName == "":
				return fmt.Errorf("--url or --service-name: one is required")
			case svcName != "":
				o.Service = &admissionregistrationv1.ServiceReference{Namespace: svcNS, Name: svcName, Port: &svcPort}
			}
			switch admissionregistrationv1.FailurePolicyType(failurePolicy) {
			case admissionregistrationv1.Fail, admissionregistrationv1.Ignore:
				o.FailurePolicy = admissionregistrationv1.FailurePolicyType(failurePolicy)
			default:
				return fmt.Errorf("--failure-policy: %q is not Fail or Ignore", failurePolicy)
			}
			if caFile != "" {
				ca, err := os.ReadFile(caFile)
				if err != nil {
					return fmt.Errorf("--ca-bundle: %w", err)
				}
				o.CABundle = ca
			}
			o.ExcludeNamespaces = append(append([]string{}, systemNS...), ownNamespace)
			cat, customErrs, err := rules.LoadCatalogWithCustomRules(rulesDirs)
			if err != nil {
				return &ExitError{Code: ExitUsage, Err: err}
			}
			if len(customErrs) > 0 {
				return &ExitError{Code: ExitUsage, Err: errors.Join(customErrs...)}
			}
			objs := []any{webhook.ValidatingConfiguration(cat, o)}
			if o.Enroll {
				objs = append(objs, webhook.MutatingConfiguration(o))
			}
			for _, obj := range objs {
				b, err := yaml.Marshal(obj)
				if err != nil {
					return &ExitError{Code: ExitUsage, Err: err}
				}
				fmt.Fprintf(s.Out, "---\n%s", b)
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringArrayVar(&rulesDirs, "rules-dir", nil, "directory of custom rules whose kinds are registered too (as given to meshguard serve); repeatable")
	fs.StringVar(&o.Name, "name", "meshguard", "name of the webhook configurations")
	fs.StringVar(&o.URL, "url", "", "base URL of the webhook server (outside the cluster), e.g. https://127.0.0.1:9443")
	fs.StringVar(&svcNS, "service-namespace", "meshguard", "namespace of the webhook Service")
	fs.StringVar(&svcName, "service-name", "", "name of the webhook Service")
	fs.Int32Var(&svcPort, "service-port", 443, "port of the webhook Service")
	fs.StringVar(&caFile, "ca-bundle", "", "PEM file of the CA that signed the serving certificate")
	fs.StringVar(&failurePolicy, "failure-policy", "Fail", "Fail (a guard that is down blocks changes) or Ignore (changes pass unguarded)")
	fs.Int32Var(&o.TimeoutSeconds, "timeout", 5, "webhook timeout in seconds")
	fs.StringVar(&ownNamespace, "namespace", "meshguard", "meshguard's own namespace, excluded so it can always restart")
	fs.StringSliceVar(&systemNS, "system-namespaces", systemNS, "namespaces excluded from the workload webhook")
	fs.BoolVar(&o.Enroll, "enroll", false, "also print the namespace-enrollment MutatingWebhookConfiguration")
	fs.BoolVar(&o.JudgeUnchangedUpdates, "judge-unchanged-updates", false, "send every UPDATE to meshguard; by default a matchCondition skips UPDATEs that change none of spec, template, labels and annotations (finalizers, owner references)")
	fs.BoolVar(&o.JudgeOwnedWorkloads, "judge-owned-workloads", false, "send ReplicaSets controlled by a Deployment or Rollout, Jobs controlled by a CronJob and ReplicationControllers controlled by a DeploymentConfig to meshguard; by default they are skipped (the owner and every pod they create are judged)")
	fs.BoolVar(&o.ProtectNetworkPolicies, "protect-network-policies", false, "add the netpol-guard webhook: UPDATE and DELETE of meshguard's managed NetworkPolicies (MESH0215)")
	return cmd
}
