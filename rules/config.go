package rules

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/spf13/pflag"
)

// Namespace modes: how a namespace (or a pod) takes part in the mesh.
const (
	ModeSidecar = "sidecar"
	ModeAmbient = "ambient"
	ModeNone    = "none"
	ModeUnknown = "unknown"
)

// Config is the mesh configuration that rules depend on and that is not in the
// object under review. It is shared by `meshguard audit` and `meshguard serve`,
// so the CLI and the webhook judge the same object the same way.
// NewConfig returns the defaults; AddFlags binds them; Validate checks them.
type Config struct {
	// RootNamespace is Istio's meshConfig.rootNamespace. Default "istio-system".
	RootNamespace string
	// ClusterDomain is the cluster's DNS domain. Default "cluster.local".
	ClusterDomain string
	// ProxyImageRegistries are the registries (repository prefixes) from which an
	// image named proxyv2 counts as Istio's proxy. Defaults: docker.io/istio and
	// gcr.io/istio-release. Add the private mirror your nodes pull through
	// (for example registry.example.com/istio); a mirror missing here turns every
	// injected pod into a false positive.
	ProxyImageRegistries []string
	// ProxyImageNames are the image names (the last path element, without tag)
	// of Istio's proxy. Default proxyv2; vendor builds use others (for example
	// OpenShift Service Mesh's proxyv2-rhel8 or istio-proxyv2-rhel9).
	ProxyImageNames []string
	// ProxyUID and ProxyGID are the proxy's identity (1337). On OpenShift they
	// are derived per namespace from its SCC annotations instead.
	ProxyUID, ProxyGID int64
	// InterceptionMode is the mesh default (meshConfig.defaultConfig.interceptionMode):
	// REDIRECT (default) or TPROXY. Under TPROXY the proxy legitimately adds NET_ADMIN.
	InterceptionMode string
	// ProxyPrivileged mirrors the injector's global.proxy.privileged (default false):
	// when true, privileged istio-init and istio-proxy containers match the injected shape.
	ProxyPrivileged bool
	// SystemNamespaces are never checked by workload and namespace rules (Istio never
	// injects them). Default DefaultSystemNamespaces.
	SystemNamespaces []string
	// ControlPlaneNamespaces hold Istio's own components (istiod, gateways, CNI,
	// ztunnel) and are exempt from workload and namespace rules, but not from the
	// Istio configuration rules. Default istio-system, istio-ingress, istio-egress.
	ControlPlaneNamespaces []string
	// EnableNamespacesByDefault mirrors sidecarInjectorWebhook.enableNamespacesByDefault:
	// unlabelled namespaces are injected. Default false.
	EnableNamespacesByDefault bool
	// DefaultNamespaceMode is the mode assumed for a namespace the context knows
	// nothing about (not in the audited manifests): sidecar, ambient, none or
	// unknown (default). Rules that depend on the mode are conservative when unknown.
	DefaultNamespaceMode string
	// EnvoyFilterNamespaces may hold EnvoyFilters besides the root namespace (MESH0040).
	EnvoyFilterNamespaces []string
	// GatewayNamespaces are the namespaces where Gateways (Istio's and the
	// Gateway API's, not waypoints) may be created besides the root namespace
	// (MESH0063). Empty (the default): MESH0063 is off, as Istio's own samples
	// put Gateways in application namespaces.
	GatewayNamespaces []string
	// AllowedExcludedInboundPorts are inbound ports an admin accepts being excluded
	// from capture (metrics scraped by a non-mesh Prometheus); MESH0122 is Medium for them.
	AllowedExcludedInboundPorts []string
	// InjectorIncludeOutboundIPRanges and InjectorExcludeOutboundIPRanges are the
	// install's global.proxy.includeIPRanges/excludeIPRanges, which the injector
	// writes onto every injected pod; only deviations from them are findings.
	InjectorIncludeOutboundIPRanges string
	InjectorExcludeOutboundIPRanges string
	// ControllerUsername is the identity of meshguard's own controller (its
	// service account), the only user that may change or delete managed
	// NetworkPolicies (MESH0215). Default system:serviceaccount:meshguard:meshguard.
	ControllerUsername string
	// NetpolExcludeNamespaces and NetpolGatewayNamespaces are the default-deny
	// NetworkPolicy controller's --netpol-exclude-namespaces and
	// --netpol-gateway-namespaces: they decide a namespace's profile
	// (NetpolProfile) for MESH0217 and the cluster audit's summary. Defaults:
	// DefaultNetpolExcludeNamespaces, DefaultNetpolGatewayNamespaces.
	NetpolExcludeNamespaces []string
	NetpolGatewayNamespaces []string
	// IstioVersion is the Istio release whose semantics apply (--istio-version,
	// e.g. "1.26"): overrides RevisionVersions. Default "": the detected
	// versions, else the newest supported release.
	IstioVersion string
	// RevisionVersions are istiod's versions by revision ("default" for the
	// default revision), as `meshguard serve` and `audit --cluster` detect
	// them from istiod's Deployments.
	RevisionVersions map[string]string
	// AmbientInstalled says ztunnel and istio-cni's ambient mode run in the
	// cluster, so a pod labelled istio.io/dataplane-mode=ambient is captured
	// in any namespace (istio-cni's default enablement selectors). Without
	// it, a pod that opts out of the sidecar its namespace mandates and
	// labels itself ambient counts as outside the mesh. Default false.
	AmbientInstalled bool
	// Platform is the Kubernetes distribution: PlatformKubernetes,
	// PlatformOpenShift, or "" (auto: `meshguard serve` and `audit --cluster`
	// detect OpenShift by its security.openshift.io API; offline it means
	// kubernetes). Istio's injector reads a namespace's
	// openshift.io/sa.scc.* annotations for the proxy's UID and GID only on
	// OpenShift (its PLATFORM=openshift), so only there do they count.
	Platform string
	// PlatformNamespaceWriters are the users allowed, besides meshguard
	// admins, to set the openshift.io/sa.scc.* namespace annotations (the
	// platform's own allocation controller): usernames, or prefixes ending in
	// "*". Default DefaultPlatformNamespaceWriters.
	PlatformNamespaceWriters []string
}

// Platforms.
const (
	PlatformKubernetes = "kubernetes"
	PlatformOpenShift  = "openshift"
)

// DefaultPlatformNamespaceWriters are the identities that write a
// namespace's openshift.io/sa.scc.* annotations on OpenShift: the service
// accounts of the infrastructure controllers in openshift-infra (the
// namespace security allocation controller), where tenants cannot create
// service accounts.
func DefaultPlatformNamespaceWriters() []string {
	return []string{"system:serviceaccount:openshift-infra:*"}
}

// DefaultSystemNamespaces are the namespaces of the cluster's own components:
// kube-system, kube-public, kube-node-lease and local-path-storage. This is
// the one list meshguard derives every default from: the namespaces workload
// and namespace rules skip (Config.SystemNamespaces), the ones the workload
// webhooks exclude (`meshguard webhook-config`) and, with Istio's root
// namespace, the ones that never get default-deny NetworkPolicies
// (DefaultNetpolExcludeNamespaces). The chart cannot import Go: its
// systemNamespaces value is tested equal to this list (test/chart).
func DefaultSystemNamespaces() []string {
	return []string{"kube-system", "kube-public", "kube-node-lease", "local-path-storage"}
}

// NewConfig returns a Config with the documented defaults.
func NewConfig() *Config {
	return &Config{
		RootNamespace:                   "istio-system",
		ClusterDomain:                   "cluster.local",
		ProxyImageRegistries:            []string{"docker.io/istio", "gcr.io/istio-release"},
		ProxyImageNames:                 []string{"proxyv2"},
		ProxyUID:                        1337,
		ProxyGID:                        1337,
		InterceptionMode:                "REDIRECT",
		SystemNamespaces:                DefaultSystemNamespaces(),
		ControlPlaneNamespaces:          []string{"istio-system", "istio-ingress", "istio-egress"},
		DefaultNamespaceMode:            ModeUnknown,
		InjectorIncludeOutboundIPRanges: "*",
		ControllerUsername:              "system:serviceaccount:meshguard:meshguard",
		NetpolExcludeNamespaces:         DefaultNetpolExcludeNamespaces(),
		NetpolGatewayNamespaces:         DefaultNetpolGatewayNamespaces(),
		PlatformNamespaceWriters:        DefaultPlatformNamespaceWriters(),
	}
}

// AddFlags binds the configuration to command-line flags.
func (c *Config) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&c.RootNamespace, "root-namespace", c.RootNamespace, "Istio root namespace (meshConfig.rootNamespace)")
	fs.StringVar(&c.ClusterDomain, "cluster-domain", c.ClusterDomain, "cluster DNS domain, used to recognise in-mesh hosts")
	fs.StringSliceVar(&c.ProxyImageRegistries, "proxy-image-registry", c.ProxyImageRegistries, "registries whose proxyv2 image counts as Istio's proxy; repeat or comma-separate, and include your private mirror")
	fs.StringSliceVar(&c.ProxyImageNames, "proxy-image-name", c.ProxyImageNames, "image names of Istio's proxy in those registries (vendor builds: e.g. proxyv2-rhel8)")
	fs.Int64Var(&c.ProxyUID, "proxy-uid", c.ProxyUID, "UID of the Istio proxy, exempt from traffic capture")
	fs.Int64Var(&c.ProxyGID, "proxy-gid", c.ProxyGID, "GID of the Istio proxy, exempt from traffic capture")
	fs.StringVar(&c.InterceptionMode, "interception-mode", c.InterceptionMode, "mesh default interception mode: REDIRECT or TPROXY")
	fs.BoolVar(&c.ProxyPrivileged, "proxy-privileged", c.ProxyPrivileged, "the install sets global.proxy.privileged=true (privileged Istio containers are expected)")
	fs.StringSliceVar(&c.SystemNamespaces, "system-namespaces", c.SystemNamespaces, "namespaces Istio never injects; workload and namespace rules skip them")
	fs.StringSliceVar(&c.ControlPlaneNamespaces, "control-plane-namespaces", c.ControlPlaneNamespaces, "namespaces of Istio's own components; workload and namespace rules skip them")
	fs.BoolVar(&c.EnableNamespacesByDefault, "enable-namespaces-by-default", c.EnableNamespacesByDefault, "the injector injects unlabelled namespaces (sidecarInjectorWebhook.enableNamespacesByDefault)")
	fs.StringVar(&c.DefaultNamespaceMode, "default-namespace-mode", c.DefaultNamespaceMode, "mesh mode assumed for namespaces not described by the input: sidecar, ambient, none or unknown")
	fs.StringSliceVar(&c.EnvoyFilterNamespaces, "envoyfilter-namespaces", c.EnvoyFilterNamespaces, "namespaces besides the root namespace that may hold EnvoyFilters")
	fs.StringSliceVar(&c.GatewayNamespaces, "gateway-namespaces", c.GatewayNamespaces, "namespaces besides the root namespace where Gateways may be created (MESH0063; empty: anywhere)")
	fs.StringSliceVar(&c.AllowedExcludedInboundPorts, "allowed-excluded-inbound-ports", c.AllowedExcludedInboundPorts, "inbound ports that may be excluded from capture at reduced severity")
	fs.StringVar(&c.InjectorIncludeOutboundIPRanges, "injector-include-outbound-ip-ranges", c.InjectorIncludeOutboundIPRanges, "the install's global.proxy.includeIPRanges, written onto every injected pod")
	fs.StringVar(&c.IstioVersion, "istio-version", c.IstioVersion, "Istio release whose semantics apply (1.22 or newer, e.g. 1.26); default: detected from istiod per revision (serve, audit --cluster), else the newest supported ("+NewestIstioVersion().String()+")")
	fs.BoolVar(&c.AmbientInstalled, "ambient-installed", c.AmbientInstalled, "ztunnel and istio-cni's ambient mode run: a pod labelled istio.io/dataplane-mode=ambient is in the mesh even in a sidecar namespace it opts out of (without this, such an opt-out is MESH0110)")
	fs.StringVar(&c.Platform, "platform", c.Platform, "Kubernetes distribution: kubernetes or openshift (only there do a namespace's openshift.io/sa.scc.* annotations set the proxy's UID and GID); empty: detected from the cluster's APIs (serve, audit --cluster), kubernetes offline")
	fs.StringSliceVar(&c.PlatformNamespaceWriters, "platform-namespace-writers", c.PlatformNamespaceWriters, "users besides meshguard admins that may set a namespace's openshift.io/sa.scc.* annotations (usernames, or prefixes ending in *)")
	fs.StringVar(&c.InjectorExcludeOutboundIPRanges, "injector-exclude-outbound-ip-ranges", c.InjectorExcludeOutboundIPRanges, "the install's global.proxy.excludeIPRanges, written onto every injected pod")
}

var imageNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9._\-]*[a-z0-9])?$`)

var registryRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9.\-]*[a-z0-9])?(:[0-9]+)?(/[a-z0-9]([a-z0-9._\-]*[a-z0-9])?)*$`)

// Validate rejects a configuration that cannot be applied, naming the flag.
func (c *Config) Validate() error {
	if c.RootNamespace == "" {
		return fmt.Errorf("--root-namespace: must not be empty")
	}
	if len(c.ProxyImageRegistries) == 0 {
		return fmt.Errorf("--proxy-image-registry: at least one registry is required")
	}
	for _, r := range c.ProxyImageRegistries {
		if !registryRE.MatchString(strings.TrimSuffix(r, "/")) {
			return fmt.Errorf("--proxy-image-registry: %q is not a registry path such as registry.example.com/istio", r)
		}
	}
	if len(c.ProxyImageNames) == 0 {
		return fmt.Errorf("--proxy-image-name: at least one image name is required")
	}
	for _, n := range c.ProxyImageNames {
		if !imageNameRE.MatchString(n) {
			return fmt.Errorf("--proxy-image-name: %q is not an image name such as proxyv2", n)
		}
	}
	if c.ProxyUID < 0 || c.ProxyGID < 0 {
		return fmt.Errorf("--proxy-uid/--proxy-gid: must not be negative")
	}
	switch c.InterceptionMode {
	case "REDIRECT", "TPROXY":
	default:
		return fmt.Errorf("--interception-mode: %q is not REDIRECT or TPROXY", c.InterceptionMode)
	}
	if _, _, err := c.compileVersions(); err != nil {
		return err
	}
	switch c.Platform {
	case "", PlatformKubernetes, PlatformOpenShift:
	default:
		return fmt.Errorf("--platform: %q is not kubernetes or openshift", c.Platform)
	}
	switch c.DefaultNamespaceMode {
	case ModeSidecar, ModeAmbient, ModeNone, ModeUnknown:
	default:
		return fmt.Errorf("--default-namespace-mode: %q is not sidecar, ambient, none or unknown", c.DefaultNamespaceMode)
	}
	return nil
}

// compiled is the configuration prepared once for evaluation.
type compiledConfig struct {
	*Config
	proxyImage *regexp.Regexp
	// agentgatewayImage matches <registry>/agentgateway images in the proxy
	// registries: the image istiod deploys for agentgateway Gateways (1.29+).
	agentgatewayImage *regexp.Regexp
	system            map[string]bool
	controlPlane      map[string]bool
	efAllowed         map[string]bool
	gwAllowed         map[string]bool
	portsAllowed      map[string]bool
	// istioVersion is --istio-version (nil: per revision, else the newest).
	istioVersion     *IstioVersion
	revisionVersions map[string]IstioVersion
}

func (c *Config) compile() (*compiledConfig, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	regs := make([]string, 0, len(c.ProxyImageRegistries))
	for _, r := range c.ProxyImageRegistries {
		regs = append(regs, regexp.QuoteMeta(normalizeImageRepo(strings.TrimSuffix(r, "/"))))
	}
	sort.Strings(regs)
	names := make([]string, 0, len(c.ProxyImageNames))
	for _, n := range c.ProxyImageNames {
		names = append(names, regexp.QuoteMeta(n))
	}
	re, err := regexp.Compile(`^(` + strings.Join(regs, "|") + `)/(` + strings.Join(names, "|") + `)(:[^@/]+)?(@sha256:[a-f0-9]{64})?$`)
	if err != nil {
		return nil, fmt.Errorf("--proxy-image-registry: %w", err)
	}
	agw := regexp.MustCompile(`^(` + strings.Join(regs, "|") + `)/agentgateway(:[^@/]+)?(@sha256:[a-f0-9]{64})?$`)
	global, revs, err := c.compileVersions()
	if err != nil {
		return nil, err
	}
	return &compiledConfig{
		istioVersion:      global,
		revisionVersions:  revs,
		Config:            c,
		proxyImage:        re,
		agentgatewayImage: agw,
		system:            toSet(c.SystemNamespaces),
		controlPlane:      toSet(c.ControlPlaneNamespaces),
		efAllowed:         toSet(c.EnvoyFilterNamespaces),
		gwAllowed:         toSet(c.GatewayNamespaces),
		portsAllowed:      toSet(c.AllowedExcludedInboundPorts),
	}, nil
}

// normalizeImageRepo expands Docker Hub shorthands: "istio/proxyv2" and
// "index.docker.io/istio/proxyv2" both mean "docker.io/istio/proxyv2".
func normalizeImageRepo(ref string) string {
	first, rest, found := strings.Cut(ref, "/")
	if !found {
		return "docker.io/library/" + ref
	}
	switch {
	case first == "index.docker.io" || first == "registry-1.docker.io":
		return "docker.io/" + rest
	case first == "localhost" || strings.ContainsAny(first, ".:"):
		return ref
	default:
		return "docker.io/" + ref
	}
}

// isProxyImage reports whether image is an allowed Istio proxy image.
func (c *compiledConfig) isProxyImage(image string) bool {
	// The expression matches only if one of the names follows the last "/" of
	// the normalised reference (names hold no "/", tags and digests neither).
	// normalizeImageRepo only prepends a prefix ending in "/" to the image or
	// to a suffix of it, so that name is then also in the image itself.
	for _, n := range c.ProxyImageNames {
		if strings.Contains(image, n) {
			return c.proxyImage.MatchString(normalizeImageRepo(image))
		}
	}
	return false
}

// platformWriter reports whether username may set the platform's namespace
// annotations (PlatformNamespaceWriters).
func (c *compiledConfig) platformWriter(username string) bool {
	for _, w := range c.PlatformNamespaceWriters {
		if p, ok := strings.CutSuffix(w, "*"); ok && strings.HasPrefix(username, p) || w == username {
			return true
		}
	}
	return false
}

func (c *compiledConfig) exemptNamespace(ns string) bool {
	return c.system[ns] || c.controlPlane[ns]
}

func toSet(list []string) map[string]bool {
	m := make(map[string]bool, len(list))
	for _, s := range list {
		m[s] = true
	}
	return m
}
