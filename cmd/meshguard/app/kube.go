package app

import (
	"fmt"

	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// KubeOptions select the cluster to talk to.
type KubeOptions struct {
	// Kubeconfig is the kubeconfig file; empty follows KUBECONFIG, then
	// ~/.kube/config, then the in-cluster service account.
	Kubeconfig string
	// Context is the kubeconfig context; empty uses the current one.
	Context string
}

// AddFlags binds --kubeconfig and --context.
func (o *KubeOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Kubeconfig, "kubeconfig", o.Kubeconfig, "kubeconfig file (default: $KUBECONFIG, ~/.kube/config, then in-cluster)")
	fs.StringVar(&o.Context, "context", o.Context, "kubeconfig context (default: the current context)")
}

// RESTConfig loads the client configuration.
func (o *KubeOptions) RESTConfig() (*rest.Config, error) {
	lr := clientcmd.NewDefaultClientConfigLoadingRules()
	lr.ExplicitPath = o.Kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(lr, &clientcmd.ConfigOverrides{CurrentContext: o.Context}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("--kubeconfig/--context: %w", err)
	}
	cfg.UserAgent = "meshguard"
	return cfg, nil
}
