package app

import (
	"context"
	"fmt"
	"os"
	"strconv"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.uber.org/zap/zapcore"
	"k8s.io/apimachinery/pkg/api/resource"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	ctrlzap "sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/meshguard/meshguard/certs"
	"github.com/meshguard/meshguard/internal/gotune"
	"github.com/meshguard/meshguard/posture"
	"github.com/meshguard/meshguard/reports"
	"github.com/meshguard/meshguard/webhook"
	"github.com/meshguard/meshguard/webhook/netpol"
)

// ServeOptions are the flags of `meshguard serve`.
type ServeOptions struct {
	Webhook *webhook.Options
	Kube    KubeOptions
	// LogLevel is debug, info (default) or error.
	LogLevel string
	// NetworkPolicies enables the default-deny NetworkPolicy controller,
	// configured by Netpol.
	NetworkPolicies bool
	Netpol          *netpol.Config
	// BackgroundAudit enables the background audit, configured by Posture
	// (--background-audit, --background-audit-interval, --report-format).
	BackgroundAudit bool
	Posture         *posture.Options
	// KubeAPIQPS and KubeAPIBurst bound meshguard's requests to the API
	// server (--kube-api-qps, --kube-api-burst). Defaults 50 and 100:
	// client-go's 5 and 10 would stretch the background audit's first writes
	// of thousands of reports over minutes.
	KubeAPIQPS   float32
	KubeAPIBurst int
	// Certs selects the certificate source (--cert-mode and the --cert-* flags).
	Certs *certs.Options
	// GoRuntime tunes the garbage collector (--gc-percent, --memory-limit-ratio).
	GoRuntime gotune.Options
}

// NewServeOptions returns the defaults.
func NewServeOptions() *ServeOptions {
	return &ServeOptions{Webhook: webhook.NewOptions(), LogLevel: "info", Netpol: netpol.NewConfig(), Posture: &posture.Options{Format: reports.FormatOpenReports, Interval: posture.DefaultInterval}, Certs: certs.NewOptions(),
		GoRuntime: gotune.Options{GCPercent: gotune.DefaultGCPercent, MemoryLimitRatio: gotune.DefaultMemoryLimitRatio}}
}

// AddFlags binds the flags.
func (o *ServeOptions) AddFlags(fs *pflag.FlagSet) {
	w := o.Webhook
	fs.StringVar(&w.Host, "host", w.Host, "address the webhook server binds (empty: every interface)")
	fs.IntVar(&w.Port, "port", w.Port, "HTTPS port of the webhook server")
	fs.StringVar(&w.CertDir, "cert-dir", w.CertDir, "directory with the serving certificate and key, reloaded when they change (TLS only; no plaintext mode)")
	fs.StringVar(&w.CertName, "cert-name", w.CertName, "certificate file name in --cert-dir")
	fs.StringVar(&w.KeyName, "key-name", w.KeyName, "key file name in --cert-dir")
	fs.StringVar(&w.ClientCAFile, "client-ca-file", w.ClientCAFile, "PEM file of the CAs that sign the API server's webhook client certificate: when set, every connection to the webhook port must present a certificate they signed (reloaded when the file changes); default: no client certificate is asked for")
	o.Certs.AddFlags(fs)
	fs.BoolVar(&w.EnableHTTP2, "enable-http2", w.EnableHTTP2, "serve HTTP/2 (off by default because of the HTTP/2 Rapid Reset advisories; the API server uses HTTP/1.1)")
	fs.StringVar(&w.MetricsAddr, "metrics-bind-address", w.MetricsAddr, `address of the Prometheus metrics endpoint ("0" disables it)`)
	fs.StringVar(&w.HealthAddr, "health-probe-bind-address", w.HealthAddr, "address of /healthz and /readyz")
	fs.StringVar(&w.PolicyFile, "policy", w.PolicyFile, "admin policy file: mode, namespace modes, object exemptions, admins, exemptions (default: enforce)")
	fs.BoolVar(&w.AdmissionEvents, "admission-events", w.AdmissionEvents, "record every denial and warning (not of dry runs) as a Warning Event regarding the object (reasons MeshguardDenied, MeshguardWarned), off the decision's path and rate-limited: 10 a second, bursts of 50, the rest dropped and counted")
	fs.StringArrayVar(&w.RulesDirs, "rules-dir", w.RulesDirs, "directory of custom rules (the catalog's format, codes of your own) evaluated beside the built-in ones; repeatable; a rule that cannot be loaded is logged and left out")
	fs.StringVar(&w.EnrollLabel, "enroll-namespaces", w.EnrollLabel, "label the mutating webhook adds to new namespaces, e.g. istio-injection=enabled (default: no enrollment)")
	fs.DurationVar(&w.GracefulShutdown, "graceful-shutdown-timeout", w.GracefulShutdown, "how long in-flight requests may finish on shutdown")
	fs.DurationVar(&w.ShutdownDelay, "shutdown-delay", w.ShutdownDelay, "on SIGTERM, keep answering this long with /readyz failing and every response closing its connection, so the API server moves to the other replicas before the server stops (0: stop at once)")
	fs.DurationVar(&w.Timeouts.ReadHeader, "read-header-timeout", w.Timeouts.ReadHeader, "webhook server: how long a connection may take for the TLS handshake and a request's header")
	fs.DurationVar(&w.Timeouts.Read, "read-timeout", w.Timeouts.Read, "webhook server: how long a connection may take to send a whole request, header and body (the API server sends both at once)")
	fs.DurationVar(&w.Timeouts.Write, "write-timeout", w.Timeouts.Write, "webhook server: how long from a request's header to the end of its response (at least the webhook's timeoutSeconds, at most 30s)")
	fs.DurationVar(&w.Timeouts.Idle, "idle-timeout", w.Timeouts.Idle, "webhook server: how long a keep-alive connection may wait for its next request")
	fs.Var(&byteSize{&w.MaxInflightBytes}, "max-inflight-bytes", "bytes of admission reviews read or decided at once (a quantity: 32Mi, 20000000); a review that does not fit is refused with 429 and retried by the API server. 0 derives it from the Go memory limit: 3/4 of it divided by 20, the measured heap per review byte (about 17Mi under the chart's 512Mi limit, whose Go memory limit is 460Mi); 32Mi without a memory limit")
	fs.StringVar(&o.LogLevel, "log-level", o.LogLevel, "log level: debug, info or error (logs are JSON)")
	fs.IntVar(&o.GoRuntime.GCPercent, "gc-percent", o.GoRuntime.GCPercent, "garbage collector target percentage (GOGC); the GOGC environment variable wins; 0 keeps Go's default of 100")
	fs.Float64Var(&o.GoRuntime.MemoryLimitRatio, "memory-limit-ratio", o.GoRuntime.MemoryLimitRatio, "soft Go memory limit as a fraction of the container's cgroup memory limit, so the collector tightens before the OOM killer acts; the GOMEMLIMIT environment variable wins; 0 sets none")
	fs.BoolVar(&o.NetworkPolicies, "netpol", o.NetworkPolicies, "run the controller that gives every namespace the default-deny NetworkPolicy set of its profile (see the --netpol-* flags)")
	o.Netpol.AddFlags(fs)
	fs.BoolVar(&o.BackgroundAudit, "background-audit", o.BackgroundAudit, "on the leader, judge every covered object already in the cluster with the webhook's rules and context, again whenever it or its context changes, and keep the findings in policy reports (one per namespace and one cluster report; the report CRDs must be installed)")
	fs.DurationVar(&o.Posture.Interval, "background-audit-interval", o.Posture.Interval, "with --background-audit: how often every namespace is judged again and its stored report re-read and repaired (at least 10s)")
	fs.Var(reportFormatValue{&o.Posture.Format}, "report-format", "with --background-audit: the report API written: openreports (openreports.io/v1alpha1 Report, ClusterReport) or wgpolicyk8s (wgpolicyk8s.io/v1alpha2 PolicyReport, ClusterPolicyReport)")
	fs.BoolVar(&w.LeaderElection, "leader-elect", w.LeaderElection, "elect a leader among replicas for the controllers (the webhook serves on every replica)")
	fs.StringVar(&w.LeaderElectionNamespace, "leader-election-namespace", w.LeaderElectionNamespace, "namespace of the leader election Lease (default: the namespace meshguard runs in)")
	fs.StringVar(&w.LeaderElectionID, "leader-election-id", w.LeaderElectionID, "name of the leader election Lease")
	fs.BoolVar(&w.IstiodDeployments, "read-istiod-deployments", w.IstiodDeployments, "read istiod's Deployments (label app=istiod: their version label, else the discovery image's tag) for the Istio release of the revisions the injector's webhook configurations do not label; needs list and watch on Deployments")
	fs.DurationVar(&w.IstioDiscoveryInterval, "istio-discovery-interval", w.IstioDiscoveryInterval, "how often the API server's discovery is asked whether the Istio security API (PeerAuthentication, AuthorizationPolicy) is served, so its CRDs installed or removed after start are picked up; a failed discovery is retried sooner and never taken for \"not installed\"")
	fs.StringVar(&w.Rules.ControllerUsername, "controller-username", w.Rules.ControllerUsername, "meshguard's own identity (its service account's username), the only user that may change or delete managed NetworkPolicies (MESH0215)")
	o.Kube.AddFlags(fs)
	if o.KubeAPIQPS == 0 {
		o.KubeAPIQPS, o.KubeAPIBurst = 50, 100
	}
	fs.Float32Var(&o.KubeAPIQPS, "kube-api-qps", o.KubeAPIQPS, "sustained requests per second to the API server (reports, NetworkPolicies, Events; reads come from informer caches)")
	fs.IntVar(&o.KubeAPIBurst, "kube-api-burst", o.KubeAPIBurst, "burst of requests to the API server above --kube-api-qps")
	w.Rules.AddFlags(fs)
}

// Validate checks the options.
func (o *ServeOptions) Validate() error {
	switch o.LogLevel {
	case "debug", "info", "error":
	default:
		return fmt.Errorf("--log-level: %q is not debug, info or error", o.LogLevel)
	}
	o.Webhook.NetworkPolicies = nil
	if o.NetworkPolicies {
		o.Webhook.NetworkPolicies = o.Netpol
	}
	o.Webhook.Posture = nil
	if o.BackgroundAudit {
		o.Webhook.Posture = o.Posture
	}
	if err := o.GoRuntime.Validate(); err != nil {
		return err
	}
	o.Certs.Complete(os.Getenv)
	o.Webhook.Certificates = o.Certs
	return o.Webhook.Validate()
}

// ServeFunc runs the server; tests substitute it to check flag parsing.
type ServeFunc func(ctx context.Context, s Streams, o *ServeOptions) error

// NewServeCommand builds `meshguard serve`.
func NewServeCommand(s Streams, run ServeFunc) *cobra.Command {
	o := NewServeOptions()
	cmd := &cobra.Command{
		Use:   "serve [flags]",
		Short: "Run the admission webhook",
		Long: `Run meshguard's admission webhook: a validating webhook that decides every create and update
of the kinds the rule catalog covers, and (with --enroll-namespaces) a mutating webhook that enrolls
new namespaces in the mesh. It serves HTTPS only, from --cert-dir, and reloads the certificate when it
changes. --cert-mode says where the certificate comes from: self-signed (default) keeps a CA and serving
certificate in the Secret --cert-secret, renews them before they expire and injects the CA into the
webhook configurations; cert-manager waits for the Certificate --cert-manager-certificate to be Ready and
serves its mounted Secret; files serves --cert-dir as it is. The webhook server starts, and /readyz turns
ready, only once the certificate is loaded (the reason is at /readyz/certificate) and the context caches
have synced.`,
		Example: `  meshguard serve --namespace meshguard --cert-dir /var/run/meshguard/certs --policy /etc/meshguard/policy.yaml
  meshguard serve --cert-mode cert-manager --namespace meshguard --cert-manager-certificate meshguard
  meshguard serve --kubeconfig ~/.kube/config --cert-mode files --cert-dir ./certs --port 9443 --enroll-namespaces istio-injection=enabled`,
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

// RunServe starts the webhook and blocks until ctx is done.
func RunServe(ctx context.Context, s Streams, o *ServeOptions) error {
	level := zapcore.InfoLevel
	switch o.LogLevel {
	case "debug":
		level = zapcore.DebugLevel
	case "error":
		level = zapcore.ErrorLevel
	}
	logger := ctrlzap.New(ctrlzap.WriteTo(s.Err), ctrlzap.JSONEncoder(), ctrlzap.Level(level))
	ctrllog.SetLogger(logger)
	// The flags were validated; what can still fail is reading the cgroup's
	// memory limit. That is no reason to stay down (with failurePolicy Fail a
	// webhook that does not start blocks the kinds it covers): log it and run
	// without a memory limit.
	tuned, err := gotune.Apply(o.GoRuntime, os.Getenv, "/sys/fs/cgroup")
	if err != nil {
		logger.Error(err, "go runtime: no memory limit set")
	}
	logger.Info("go runtime", "gcPercent", tuned.GCPercent, "gcPercentFrom", tuned.GCPercentSource,
		"memoryLimitBytes", tuned.MemoryLimit, "memoryLimitFrom", tuned.MemoryLimitSource, "cgroupMemoryLimitBytes", tuned.CgroupLimit)
	cfg, err := o.Kube.RESTConfig()
	if err != nil {
		return &ExitError{Code: ExitUsage, Err: err}
	}
	if o.KubeAPIQPS <= 0 || o.KubeAPIBurst < 1 {
		return &ExitError{Code: ExitUsage, Err: fmt.Errorf("--kube-api-qps and --kube-api-burst must be positive (got %v and %d)", o.KubeAPIQPS, o.KubeAPIBurst)}
	}
	cfg.QPS, cfg.Burst = o.KubeAPIQPS, o.KubeAPIBurst
	srv, err := webhook.NewServer(cfg, o.Webhook, logger)
	if err != nil {
		return &ExitError{Code: ExitUsage, Err: err}
	}
	if err := srv.Start(ctrllog.IntoContext(ctx, logger)); err != nil {
		return &ExitError{Code: 1, Err: fmt.Errorf("serve: %w", err)}
	}
	return nil
}

// byteSize is a flag of bytes given as a Kubernetes quantity (32Mi, 1G) or a
// plain number.
type byteSize struct{ v *int64 }

func (b *byteSize) String() string {
	if b.v == nil {
		return "0"
	}
	return strconv.FormatInt(*b.v, 10)
}

func (b *byteSize) Set(s string) error {
	q, err := resource.ParseQuantity(s)
	if err != nil {
		return fmt.Errorf("not a byte quantity: %w", err)
	}
	n, ok := q.AsInt64()
	if !ok || n < 0 {
		return fmt.Errorf("%q is not a byte count", s)
	}
	*b.v = n
	return nil
}

func (*byteSize) Type() string { return "bytes" }

// reportFormatValue binds a reports.Format to a flag.
type reportFormatValue struct{ p *reports.Format }

func (v reportFormatValue) String() string {
	if v.p == nil {
		return ""
	}
	return string(*v.p)
}

func (v reportFormatValue) Set(s string) error {
	f, err := reports.ParseFormat(s)
	if err != nil {
		return err
	}
	*v.p = f
	return nil
}

func (reportFormatValue) Type() string { return "format" }
