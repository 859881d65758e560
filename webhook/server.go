package webhook

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/meshguard/meshguard/certs"
	"github.com/meshguard/meshguard/internal/platform"
	"github.com/meshguard/meshguard/posture"
	"github.com/meshguard/meshguard/rules"
	"github.com/meshguard/meshguard/webhook/netpol"
)

// Paths served by the webhook server.
const (
	ValidatePath = "/validate"
	MutatePath   = "/mutate-namespace"
)

// Options configure `meshguard serve`. NewOptions sets the defaults.
type Options struct {
	// Host is the webhook server's bind address; empty binds every interface.
	Host string
	// Port is the HTTPS port of the webhook server. Default 9443.
	Port int
	// CertDir holds tls.crt and tls.key; they are reloaded when they change.
	// Required: there is no plaintext mode.
	CertDir string
	// CertName and KeyName are the file names in CertDir. Default tls.crt, tls.key.
	CertName, KeyName string
	// ClientCAFile, when set, makes the webhook server require a client
	// certificate signed by one of the CAs in this PEM file (the API server's
	// webhook client credentials) and refuse every connection without one.
	// The file is read again when it changes. Default empty: no client
	// certificate is asked for.
	ClientCAFile string
	// Certificates selects where the certificate in CertDir comes from and
	// holds the webhook server and /readyz until it is loaded (package
	// certs); nil serves CertDir as it is (certs.ModeFiles). Default nil.
	Certificates *certs.Options
	// EnableHTTP2 serves HTTP/2. Default false (HTTP/2 Rapid Reset advisories);
	// the API server speaks HTTP/1.1 to webhooks.
	EnableHTTP2 bool
	// MetricsAddr serves Prometheus metrics; "0" disables. Default ":8080".
	MetricsAddr string
	// HealthAddr serves /healthz and /readyz. Default ":8081".
	HealthAddr string
	// PolicyFile is the admin policy (modes, exemptions, admins); empty uses DefaultPolicy.
	PolicyFile string
	// AdmissionEvents records every denial and warning (not of dry runs) as
	// a Kubernetes Event regarding the object (--admission-events), off the
	// decision's path, rate-limited (events.go).
	AdmissionEvents bool
	// RulesDirs are directories of custom rules, evaluated beside the
	// built-in catalog (--rules-dir). A custom rule that cannot be loaded is
	// logged and left out; it never stops the others.
	RulesDirs []string
	// EnrollLabel is "key=value" added to new namespaces by the mutating webhook
	// (for example istio-injection=enabled, istio.io/rev=1-24, or
	// istio.io/dataplane-mode=ambient). Empty disables enrollment. Default empty.
	EnrollLabel string
	// GracefulShutdown bounds how long in-flight requests may finish. Default 15s.
	GracefulShutdown time.Duration
	// ShutdownDelay is how long the server keeps answering after it is told
	// to stop, with /readyz failing and every response closing its
	// connection, before it stops accepting: the API server moves its
	// keep-alive connections to the other replicas instead of meeting a
	// connection closed under a request. Default 5s; 0 stops at once.
	ShutdownDelay time.Duration
	// Rules is the mesh configuration shared with `meshguard audit`.
	Rules *rules.Config
	// NetworkPolicies configures the default-deny NetworkPolicy controller
	// (package netpol); nil disables it. Default nil.
	NetworkPolicies *netpol.Config
	// Posture configures the background audit (package posture): on the
	// leader, every covered object is judged with the webhook's rules and
	// context caches and the findings are kept in policy reports. Nil
	// disables it. Default nil.
	Posture *posture.Options
	// LeaderElection makes the controllers run on one replica at a time (the
	// webhook and its caches run on every replica). Default false.
	LeaderElection bool
	// LeaderElectionNamespace holds the Lease; empty means the namespace
	// meshguard runs in (in cluster). LeaderElectionID names the Lease.
	LeaderElectionNamespace, LeaderElectionID string
	// IstioDiscoveryInterval is how often discovery is asked whether the
	// Istio security API is served, so CRDs installed or removed after start
	// are picked up (a failed discovery is retried sooner, with backoff).
	// Default (and when 0) DefaultIstioDiscoveryInterval, 30s.
	IstioDiscoveryInterval time.Duration
	// IstiodDeployments reads istiod's Deployments (label app=istiod) for
	// the Istio release of revisions the injector's webhook configurations
	// do not label (--read-istiod-deployments). Default true.
	IstiodDeployments bool
	// Timeouts are the webhook server's connection timeouts. Default
	// DefaultTimeouts().
	Timeouts Timeouts
	// MaxInflightBytes bounds the bytes of AdmissionReviews being read or
	// decided at once; a review that does not fit is refused with 429
	// (limits.go). 0 derives it from the Go memory limit in effect
	// (InflightBytesFor). Default 0.
	MaxInflightBytes int64
}

// NewOptions returns the defaults.
func NewOptions() *Options {
	return &Options{
		Port:             9443,
		CertDir:          "/var/run/meshguard/certs",
		CertName:         "tls.crt",
		KeyName:          "tls.key",
		MetricsAddr:      ":8080",
		HealthAddr:       ":8081",
		GracefulShutdown: 15 * time.Second,
		ShutdownDelay:    5 * time.Second,
		Rules:            rules.NewConfig(),
		LeaderElectionID: "meshguard-controller",

		IstioDiscoveryInterval: DefaultIstioDiscoveryInterval,
		IstiodDeployments:      true,
		Timeouts:               DefaultTimeouts(),
	}
}

// Validate rejects unusable options, naming the flag.
func (o *Options) Validate() error {
	if o.CertDir == "" {
		return errors.New("--cert-dir: required (meshguard serves TLS only)")
	}
	if o.Port <= 0 || o.Port > 65535 {
		return fmt.Errorf("--port: %d is not a TCP port", o.Port)
	}
	if o.ShutdownDelay < 0 {
		return fmt.Errorf("--shutdown-delay: %s is negative", o.ShutdownDelay)
	}
	if o.EnrollLabel != "" {
		if _, _, err := parseEnrollLabel(o.EnrollLabel); err != nil {
			return fmt.Errorf("--enroll-namespaces: %w", err)
		}
	}
	if o.Rules == nil {
		return errors.New("rules configuration: required")
	}
	if o.Certificates != nil {
		if err := o.Certificates.Validate(); err != nil {
			return err
		}
	}
	if o.NetworkPolicies != nil {
		if err := o.NetworkPolicies.Validate(); err != nil {
			return err
		}
	}
	if o.Posture != nil {
		if err := o.Posture.Validate(); err != nil {
			return err
		}
	}
	if o.IstioDiscoveryInterval < 0 {
		return fmt.Errorf("--istio-discovery-interval: %s is negative", o.IstioDiscoveryInterval)
	}
	if err := o.Timeouts.Validate(); err != nil {
		return err
	}
	if o.MaxInflightBytes != 0 && o.MaxInflightBytes < MinInflightBytes {
		return fmt.Errorf("--max-inflight-bytes: %d is below %d, the largest review besides the reserve for small ones (0 derives it from the memory limit)", o.MaxInflightBytes, MinInflightBytes)
	}
	if o.LeaderElection && o.LeaderElectionID == "" {
		return errors.New("--leader-election-id: required with --leader-elect")
	}
	return o.Rules.Validate()
}

// Server is a configured, not yet started, meshguard webhook.
type Server struct {
	Manager   manager.Manager
	Validator *Validator
	Metrics   *Metrics
	// NetworkPolicies is the default-deny NetworkPolicy controller; nil when disabled.
	NetworkPolicies *netpol.Controller
	// Posture is the background audit; nil when disabled.
	Posture *posture.Controller
	context *cacheContext
	drain   *drainer
}

// NewServer wires the webhook server, caches, metrics and health checks.
func NewServer(cfg *rest.Config, o *Options, log logr.Logger) (*Server, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	cat, customErrs, err := rules.LoadCatalogWithCustomRules(o.RulesDirs)
	if err != nil {
		return nil, fmt.Errorf("load rule catalog: %w", err)
	}
	// A custom rule that cannot be loaded is left out, loudly: the built-in
	// rules and the other custom rules still run.
	for _, e := range customErrs {
		log.Error(e, "custom rule not loaded")
	}
	if err := platform.Resolve(cfg, o.Rules); err != nil {
		return nil, err
	}
	log.Info("platform", "platform", o.Rules.Platform)
	ev, err := rules.New(cat, o.Rules)
	if err != nil {
		return nil, err
	}
	pol := DefaultPolicy()
	if o.PolicyFile != "" {
		if pol, err = LoadPolicy(o.PolicyFile); err != nil {
			return nil, err
		}
	}
	if err := pol.Validate(cat); err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	tlsOpts := []func(*tls.Config){func(c *tls.Config) {
		c.MinVersion = tls.VersionTLS12
		if !o.EnableHTTP2 {
			c.NextProtos = []string{"http/1.1"}
		}
	}}
	if o.ClientCAFile != "" {
		ca, err := newClientCA(o.ClientCAFile, log.WithName("client-ca"))
		if err != nil {
			return nil, err
		}
		tlsOpts = append(tlsOpts, ca.configure)
	}
	// controller-runtime's webhook server with connection timeouts (httpserver.go).
	whs := newTimeoutServer(crwebhook.Options{
		Host: o.Host, Port: o.Port, CertDir: o.CertDir, CertName: o.CertName, KeyName: o.KeyName, TLSOpts: tlsOpts,
	}, o.Timeouts)
	m := NewMetrics()
	if err := m.Register(metrics.Registry); err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	custom := 0
	for _, r := range cat.Rules() {
		if r.Custom {
			custom++
		}
	}
	m.CustomRules.WithLabelValues("loaded").Set(float64(custom))
	m.CustomRules.WithLabelValues("failed").Set(float64(len(customErrs)))
	cerrs := newContextErrors(m.ContextErrors, log.WithName("context"))
	mopts := ctrl.Options{
		Scheme:                        scheme,
		Logger:                        log,
		WebhookServer:                 whs,
		Metrics:                       metricsserver.Options{BindAddress: o.MetricsAddr},
		HealthProbeBindAddress:        o.HealthAddr,
		GracefulShutdownTimeout:       &o.GracefulShutdown,
		LeaderElection:                o.LeaderElection,
		LeaderElectionNamespace:       leaderElectionNamespace(o),
		LeaderElectionID:              o.LeaderElectionID,
		LeaderElectionReleaseOnCancel: true,
	}
	// Pods are cached without what no rule reads (status but its phase,
	// managed fields), for judging a namespace's mode change against the
	// pods running in it (MESH0107).
	mopts.Cache.ByObject = map[client.Object]cache.ByObject{&corev1.Pod{}: {Transform: trimPod}}
	// No reader of the cache uses managed fields (the background audit drops
	// them when it decodes): stripping them on the way in keeps a large
	// cluster's caches about a third smaller (BENCHMARKS.md, background audit
	// at scale).
	mopts.Cache.DefaultTransform = cache.TransformStripManagedFields()
	// Informers that cannot list or watch are counted and logged (context errors).
	mopts.Cache.DefaultWatchErrorHandler = cerrs.watchErrorHandler
	if o.NetworkPolicies != nil && !o.NetworkPolicies.DeriveIntent {
		// Only managed NetworkPolicies are cached (the intent's graph reads
		// every NetworkPolicy: what the mesh allows today).
		obj, sel := netpol.CacheByObject()
		s, err := metav1.LabelSelectorAsSelector(&sel)
		if err != nil {
			return nil, err
		}
		mopts.Cache.ByObject[obj] = cache.ByObject{Label: s}
	}
	mgr, err := ctrl.NewManager(cfg, mopts)
	if err != nil {
		return nil, fmt.Errorf("create manager: %w", err)
	}
	// The webhook server starts only once the certificate is loaded. The
	// manager adds its webhook server ungated when GetWebhookServer is
	// called, so nothing here calls it.
	certFiles := certs.Files{Dir: o.CertDir, CertName: o.CertName, KeyName: o.KeyName}
	src, err := certs.New(o.Certificates, certFiles)
	if err != nil {
		return nil, err
	}
	if err := src.Setup(mgr, log); err != nil {
		return nil, err
	}
	if err := mgr.Add(certs.ServeWhenReady(whs, src)); err != nil {
		return nil, err
	}
	if err := certs.RegisterMetrics(metrics.Registry, certFiles); err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}

	// Whether the Istio security API is served is asked at start and every
	// IstioDiscoveryInterval (istio.go); its informers follow.
	cc := &cacheContext{reader: mgr.GetCache(), errs: cerrs}
	if o.IstiodDeployments {
		if cc.istiods, err = newIstiodDeployments(mgr, append(append([]string{}, o.Rules.ControlPlaneNamespaces...), o.Rules.RootNamespace)); err != nil {
			return nil, fmt.Errorf("istiod Deployments: %w", err)
		}
		if err := mgr.Add(cc.istiods); err != nil {
			return nil, err
		}
	}
	probe, err := discoverIstio(cfg)
	if err != nil {
		return nil, err
	}
	cc.istio = newIstioAPI(probe, &cacheInformers{cache: mgr.GetCache()}, o.IstioDiscoveryInterval, cerrs, log.WithName("context"), func(s istioState) {
		m.IstioAPI.Set(s.servedGauge())
		m.CacheSynced.Set(cc.syncedGauge(s))
	})
	if err := mgr.Add(cc.istio); err != nil {
		return nil, err
	}
	// ServiceEntries (networking.istio.io/v1) alike: their endpoints can make
	// a host an alias of an in-mesh Service (MESH0010, MESH0011).
	netProbe, err := discoverIstioKinds(cfg, istioNetworking)
	if err != nil {
		return nil, err
	}
	cc.istioNet = newIstioAPI(netProbe, &cacheInformers{cache: mgr.GetCache(), kinds: istioNetworking}, o.IstioDiscoveryInterval, cerrs, log.WithName("context"), func(istioState) {
		// Called with istioNet's lock held: the security API's state is
		// read without its lock (settled), never the other way round.
		m.CacheSynced.Set(cc.syncedGauge(istioState(cc.istio.published.Load())))
	})
	cc.istioNet.kinds = istioNetworking
	if err := mgr.Add(cc.istioNet); err != nil {
		return nil, err
	}
	// Start the informers the context reads before serving, so the first
	// request does not create them.
	var informers []func(context.Context) error
	for _, obj := range []client.Object{
		&corev1.Namespace{}, &corev1.Service{}, &corev1.Pod{},
		&admissionregistrationv1.ValidatingWebhookConfiguration{}, &admissionregistrationv1.MutatingWebhookConfiguration{},
	} {
		informers = append(informers, func(ctx context.Context) error {
			_, err := mgr.GetCache().GetInformer(ctx, obj)
			return err
		})
	}
	if err := mgr.Add(everyReplica(func(ctx context.Context) error {
		for _, f := range informers {
			if err := f(ctx); err != nil {
				return fmt.Errorf("start context informer: %w", err)
			}
		}
		if !mgr.GetCache().WaitForCacheSync(ctx) {
			return errors.New("context caches did not sync")
		}
		cc.synced.Store(true)
		m.CacheSynced.Set(cc.syncedGauge(cc.istio.current()))
		log.Info("context caches synced")
		<-ctx.Done()
		return nil
	})); err != nil {
		return nil, err
	}

	v := NewValidator(ev, cc, pol, m)
	if o.AdmissionEvents {
		em := newEventEmitter(mgr.GetEventRecorder("meshguard-webhook"), m)
		if err := mgr.Add(em); err != nil {
			return nil, err
		}
		v.SetEventSink(em)
	}
	var handler admission.Handler = v
	var npc *netpol.Controller
	if o.NetworkPolicies != nil {
		nm := netpol.NewMetrics()
		if err := nm.Register(metrics.Registry); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
		npc = netpol.New(o.NetworkPolicies, func(ns *corev1.Namespace) string {
			return ev.NamespaceMeshMode(rules.Namespace{Name: ns.Name, Labels: ns.Labels, Annotations: ns.Annotations})
		}, nm)
		if o.NetworkPolicies.DeriveIntent {
			npc.DeriveIntent(ev)
		}
		if err := npc.SetupWithManager(mgr, log); err != nil {
			return nil, fmt.Errorf("netpol controller: %w", err)
		}
		if err := mgr.AddReadyzCheck("netpol-controller", npc.ReadyCheck); err != nil {
			return nil, err
		}
		if o.NetworkPolicies.PodGate && o.NetworkPolicies.Mode == netpol.ModeEnforce {
			handler = &netpol.PodGate{Next: v, Readiness: npc, Metrics: nm}
		}
	}
	var pc *posture.Controller
	if o.Posture != nil {
		pm := posture.NewMetrics()
		if err := pm.Register(metrics.Registry); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
		// The same evaluator and context caches as admission; each judgment
		// reads through a per-request view, so a failed read is an error.
		pc = posture.New(*o.Posture, ev, posture.BackgroundKinds(cat.Kinds()), cc.forRequest, func() error { return cc.readyCheck(nil) }, pm, log.WithName("posture"))
		if err := pc.SetupWithManager(mgr); err != nil {
			return nil, err
		}
	}
	if pc != nil && npc != nil && o.NetworkPolicies.DeriveIntent {
		pc.SetCutEdges(npc.CutEdges)
		npc.OnIntentChange(func(nss []string) {
			for _, ns := range nss {
				pc.Requeue(ns)
			}
		})
	}
	budget, err := newBudget(o, log)
	if err != nil {
		return nil, err
	}
	drain := &drainer{delay: o.ShutdownDelay}
	whs.Register(ValidatePath, drain.wrap(NewReviewHandler(handler).WithBudget(budget)))
	if o.EnrollLabel != "" {
		k, val, _ := parseEnrollLabel(o.EnrollLabel)
		mut := &NamespaceEnroller{Key: k, Value: val, Exclude: append(append([]string{}, o.Rules.SystemNamespaces...), o.Rules.ControlPlaneNamespaces...)}
		whs.Register(MutatePath, budget.Guard(&crwebhook.Admission{Handler: mut, RecoverPanic: ptrTrue()}))
	}

	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("certificate", src.Check); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("webhook-tls", whs.StartedChecker()); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("context-caches", cc.readyCheck); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("not-draining", drain.check); err != nil {
		return nil, err
	}
	return &Server{Manager: mgr, Validator: v, Metrics: m, NetworkPolicies: npc, Posture: pc, context: cc, drain: drain}, nil
}

// Start runs the server until ctx is done, then shuts down gracefully.
// When ctx is done the server first drains for ShutdownDelay (see drainer).
func (s *Server) Start(ctx context.Context) error {
	inner, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	go func() {
		select {
		case <-ctx.Done():
			s.drain.start(ctrllogFrom(ctx))
			cancel()
		case <-inner.Done():
		}
	}()
	return s.Manager.Start(inner)
}

func ptrTrue() *bool { b := true; return &b }

// everyReplica is a runnable that runs on every replica, leader or not (the
// webhook's context caches).
type everyReplica func(context.Context) error

func (f everyReplica) Start(ctx context.Context) error { return f(ctx) }
func (everyReplica) NeedLeaderElection() bool          { return false }

var _ admission.Handler = (*NamespaceEnroller)(nil)

// leaderElectionNamespace is --leader-election-namespace, else meshguard's own
// namespace (--namespace or $POD_NAMESPACE), else empty: controller-runtime then
// reads the in-cluster service account's namespace, which only exists in a pod.
func leaderElectionNamespace(o *Options) string {
	if o.LeaderElectionNamespace != "" {
		return o.LeaderElectionNamespace
	}
	if o.Certificates != nil && o.Certificates.Namespace != "" {
		return o.Certificates.Namespace
	}
	return os.Getenv(certs.EnvPodNamespace)
}
