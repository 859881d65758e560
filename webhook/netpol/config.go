// Package netpol gives every namespace the mesh-aware default-deny
// NetworkPolicy set of its profile (RULES.md section 6) and keeps it there.
//
// The set is rendered by pure functions (Render) from a Config with safe
// defaults; the Controller (controller-runtime, leader-elected with the rest
// of `meshguard serve`) creates the policies, repairs drift by patching them
// in place (never by deleting and re-creating, which would open an allow-all
// window), and removes only policies the namespace's profile no longer
// includes. In preview mode it creates nothing and reports what it would do.
// The webhook protects the policies (MESH0215) and the profile label
// (MESH0105, MESH0106).
package netpol

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/meshguard/meshguard/rules"
)

// Profiles.
const (
	// ProfileSidecar is for namespaces whose pods carry a sidecar: default
	// deny, DNS, metrics scraping and the proxies' xDS/CA connection to istiod.
	ProfileSidecar Profile = rules.NetpolProfileSidecar
	// ProfileAmbient is for ambient namespaces: default deny, DNS, metrics
	// scraping, HBONE (15008) between mesh namespaces, the kubelet probes that
	// istio-cni SNATs, and istiod for waypoints.
	ProfileAmbient Profile = rules.NetpolProfileAmbient
	// ProfileGateway locks the ingress gateway pods down to their serving
	// ports, the health port and metrics scraping.
	ProfileGateway Profile = rules.NetpolProfileGateway
	// ProfileNone installs nothing (system namespaces, namespaces outside the
	// mesh, and namespaces an admin opted out).
	ProfileNone Profile = rules.NetpolProfileNone
)

// Profile is a named policy set.
type Profile string

// Labels and annotations meshguard reads and writes.
const (
	// LabelProfile on a Namespace lets an admin choose the profile explicitly:
	// sidecar, ambient, gateway, or none (alias system). Guarded by MESH0105
	// and MESH0106: only meshguard admins may set or change it.
	LabelProfile = "meshguard.io/netpol-profile"
	// LabelManaged marks every object the controller owns.
	LabelManaged = "meshguard.io/managed"
	// LabelManagedBy is the recommended Kubernetes label naming the manager.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// AnnotationVersion is the version of the policy set the object was rendered from.
	AnnotationVersion = "meshguard.io/policy-set-version"
	// AnnotationProfile names the profile the object belongs to (informational).
	AnnotationProfile = "meshguard.io/netpol-profile"
)

// PolicySetVersion is bumped whenever the rendered set changes shape, so the
// controller rewrites every managed policy once after an upgrade.
const PolicySetVersion = "2"

// Mode is what the controller does.
type Mode string

// Modes.
const (
	// ModeEnforce creates, repairs and removes policies.
	ModeEnforce Mode = "enforce"
	// ModePreview creates nothing: it reports per namespace, as Events and a
	// metric, what it would create, repair or remove.
	ModePreview Mode = "preview"
)

// Config is what the policy sets allow and how the controller runs.
// NewConfig returns the defaults; every address and port is configuration.
type Config struct {
	// Mode is enforce (default) or preview.
	Mode Mode
	// PodGate makes the webhook refuse Pod creation in a namespace whose
	// policy set is not complete yet ("the namespace is being prepared"), so
	// no pod runs unguarded. Needs the webhook to see Pod CREATE; off in preview.
	PodGate bool

	// DNSNamespace and DNSPodLabels select the cluster DNS pods (CoreDNS:
	// kube-system, k8s-app=kube-dns). DNSPorts are their pod ports (53; 5353 on OpenShift).
	DNSNamespace string
	DNSPodLabels map[string]string
	DNSPorts     []int32
	// NodeLocalDNS is the NodeLocal DNSCache address (e.g. 169.254.20.10);
	// empty when it is not deployed.
	NodeLocalDNS string

	// IstiodNamespace, IstiodPodLabels and IstiodPort reach istiod's xDS and
	// CA over TLS (istio-system, app=istiod, 15012). Never 15010 (plaintext)
	// or 15017 (the API server's webhook port).
	IstiodNamespace string
	IstiodPodLabels map[string]string
	IstiodPort      int32

	// PrometheusNamespace and PrometheusPodLabels select the scrapers allowed
	// to reach MetricsPorts (15020 merged metrics, 15090 Envoy stats).
	PrometheusNamespace string
	PrometheusPodLabels map[string]string
	MetricsPorts        []int32

	// ProbeSourceCIDRs are the addresses istio-cni SNATs kubelet probes to in
	// ambient mode (169.254.7.127/32 and its IPv6 twin); drop the IPv6 one on
	// IPv4-only clusters if the CNI rejects it.
	ProbeSourceCIDRs []string
	// WaypointPodLabels select waypoint pods in ambient namespaces, which need istiod.
	WaypointPodLabels map[string]string

	// GatewayNamespaces get the gateway profile unless their label says
	// otherwise; the first is the ingress gateway namespace that may call
	// ambient pods over HBONE. Default istio-ingress.
	GatewayNamespaces []string
	// GatewayPodLabels select the ingress gateway pods (istio=ingressgateway).
	GatewayPodLabels map[string]string
	// GatewayPorts are the gateway's serving container ports (80 and 443 for
	// the Helm gateway chart; 8080 and 8443 for the legacy istio-ingress chart).
	GatewayPorts []int32
	// GatewayHealthPort is the status port load balancers probe (15021).
	GatewayHealthPort int32

	// ExcludeNamespaces never get policies, whatever their labels say (the
	// system namespaces, Istio's control plane, meshguard's own namespace).
	ExcludeNamespaces []string

	// DeriveIntent runs the derivation from the mesh's intent (default
	// true): the derived allows below and the report of cut edges. Off, the
	// controller manages the profile sets alone and caches only its own
	// NetworkPolicies.
	DeriveIntent bool
	// GatewayAllows derives mesh-allow-gateway-to-<service> for every
	// Service a Gateway-bound route leads to (default true).
	GatewayAllows bool
	// FromAuthz derives allows from the ALLOW AuthorizationPolicies of every
	// namespace; FromAuthzNamespaces of only those namespaces. Default off.
	FromAuthz           bool
	FromAuthzNamespaces []string
	// IntentMaxWorkloads bounds the allowed-traffic graph the derivation
	// computes (its cost grows with the square of the workloads): above it
	// only the gateway-to-service allows are derived. 0: no bound.
	IntentMaxWorkloads int
	// IntentMinInterval is the least time between two derivations: changes
	// in between are coalesced into the next one.
	IntentMinInterval time.Duration
}

// FromAuthzEnabled returns whether a namespace's AuthorizationPolicies are
// derived into NetworkPolicies, or nil when none are.
func (c *Config) FromAuthzEnabled() func(string) bool {
	switch {
	case c.FromAuthz:
		return func(string) bool { return true }
	case len(c.FromAuthzNamespaces) > 0:
		set := map[string]bool{}
		for _, ns := range c.FromAuthzNamespaces {
			set[ns] = true
		}
		return func(ns string) bool { return set[ns] }
	}
	return nil
}

// NewConfig returns the documented defaults.
func NewConfig() *Config {
	return &Config{
		Mode:                ModeEnforce,
		DNSNamespace:        "kube-system",
		DNSPodLabels:        map[string]string{"k8s-app": "kube-dns"},
		DNSPorts:            []int32{53},
		IstiodNamespace:     "istio-system",
		IstiodPodLabels:     map[string]string{"app": "istiod"},
		IstiodPort:          15012,
		PrometheusNamespace: "monitoring",
		PrometheusPodLabels: map[string]string{"app.kubernetes.io/name": "prometheus"},
		MetricsPorts:        []int32{15020, 15090},
		ProbeSourceCIDRs:    []string{"169.254.7.127/32", "fd16:9254:7127:1337:ffff:ffff:ffff:ffff/128"},
		WaypointPodLabels:   map[string]string{"gateway.istio.io/managed": "istio.io-mesh-controller"},
		GatewayNamespaces:   rules.DefaultNetpolGatewayNamespaces(),
		GatewayPodLabels:    map[string]string{"istio": "ingressgateway"},
		GatewayPorts:        []int32{80, 443},
		GatewayHealthPort:   15021,
		ExcludeNamespaces:   rules.DefaultNetpolExcludeNamespaces(),
		GatewayAllows:       true,
		DeriveIntent:        true,
		IntentMaxWorkloads:  DefaultIntentMaxWorkloads,
		IntentMinInterval:   DefaultIntentMinInterval,
	}
}

// AddFlags binds the configuration to flags prefixed with netpol-.
func (c *Config) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar((*string)(&c.Mode), "netpol-mode", string(c.Mode), "default-deny NetworkPolicy controller mode: enforce (create and repair) or preview (create nothing, report what would be created)")
	fs.BoolVar(&c.PodGate, "netpol-pod-gate", c.PodGate, "refuse Pod creation in a namespace whose managed NetworkPolicies are not in place yet (the namespace is being prepared)")
	fs.StringVar(&c.DNSNamespace, "netpol-dns-namespace", c.DNSNamespace, "namespace of the cluster DNS pods")
	fs.StringToStringVar(&c.DNSPodLabels, "netpol-dns-pod-labels", c.DNSPodLabels, "labels of the cluster DNS pods")
	fs.Int32SliceVar(&c.DNSPorts, "netpol-dns-ports", c.DNSPorts, "container ports of the DNS pods (UDP and TCP), e.g. 5353 on OpenShift")
	fs.StringVar(&c.NodeLocalDNS, "netpol-nodelocal-dns", c.NodeLocalDNS, "NodeLocal DNSCache address to allow, e.g. 169.254.20.10 (empty: not deployed)")
	fs.StringVar(&c.IstiodNamespace, "netpol-istiod-namespace", c.IstiodNamespace, "namespace of istiod")
	fs.StringToStringVar(&c.IstiodPodLabels, "netpol-istiod-pod-labels", c.IstiodPodLabels, "labels of the istiod pods (all revisions)")
	fs.Int32Var(&c.IstiodPort, "netpol-istiod-port", c.IstiodPort, "istiod's xDS and CA port over TLS")
	fs.StringVar(&c.PrometheusNamespace, "netpol-prometheus-namespace", c.PrometheusNamespace, "namespace of the Prometheus that scrapes the proxies")
	fs.StringToStringVar(&c.PrometheusPodLabels, "netpol-prometheus-pod-labels", c.PrometheusPodLabels, "labels of the Prometheus pods")
	fs.Int32SliceVar(&c.MetricsPorts, "netpol-metrics-ports", c.MetricsPorts, "proxy ports Prometheus may scrape")
	fs.StringSliceVar(&c.ProbeSourceCIDRs, "netpol-probe-source-cidrs", c.ProbeSourceCIDRs, "addresses istio-cni SNATs kubelet probes to in ambient namespaces")
	fs.StringSliceVar(&c.GatewayNamespaces, "netpol-gateway-namespaces", c.GatewayNamespaces, "namespaces that get the gateway profile by default (the first may reach ambient pods over HBONE)")
	fs.StringToStringVar(&c.GatewayPodLabels, "netpol-gateway-pod-labels", c.GatewayPodLabels, "labels of the ingress gateway pods")
	fs.Int32SliceVar(&c.GatewayPorts, "netpol-gateway-ports", c.GatewayPorts, "serving container ports of the ingress gateway (legacy istio-ingress chart: 8080,8443)")
	fs.Int32Var(&c.GatewayHealthPort, "netpol-gateway-health-port", c.GatewayHealthPort, "status port of the ingress gateway")
	fs.StringSliceVar(&c.ExcludeNamespaces, "netpol-exclude-namespaces", c.ExcludeNamespaces, "namespaces that never get policies, whatever their labels")
	fs.BoolVar(&c.DeriveIntent, "netpol-intent", c.DeriveIntent, "derive NetworkPolicies from the mesh's intent (routes; AuthorizationPolicies with --netpol-from-authz) and report, per namespace, the edges the managed policies cut (Events, meshguard_netpol_cut_edges); false: the profile sets alone")
	fs.BoolVar(&c.GatewayAllows, "netpol-gateway-allows", c.GatewayAllows, "derive mesh-allow-gateway-to-<service>: admit the ingress gateway's pods to every Service a Gateway-bound VirtualService or HTTPRoute routes to, on its target ports")
	fs.BoolVar(&c.FromAuthz, "netpol-from-authz", c.FromAuthz, "derive NetworkPolicies from the ALLOW AuthorizationPolicies of every namespace: the edges they allow between workloads stay open at L3/4 under default deny (mesh-allow-authz-to-/from-<workload>)")
	fs.StringSliceVar(&c.FromAuthzNamespaces, "netpol-from-authz-namespaces", c.FromAuthzNamespaces, "like --netpol-from-authz, for these destination namespaces only")
	fs.IntVar(&c.IntentMaxWorkloads, "netpol-intent-max-workloads", c.IntentMaxWorkloads, "above this many workloads the allowed-traffic graph is not computed: only the gateway-to-service allows are derived (no allows from AuthorizationPolicies, no cut edges); 0: no bound")
	fs.DurationVar(&c.IntentMinInterval, "netpol-intent-min-interval", c.IntentMinInterval, "least time between two derivations of the mesh's intent; changes in between are coalesced")
}

// Validate rejects a configuration that cannot render valid policies, naming the flag.
func (c *Config) Validate() error {
	switch c.Mode {
	case ModeEnforce, ModePreview:
	default:
		return fmt.Errorf("--netpol-mode: %q is not enforce or preview", c.Mode)
	}
	for _, ns := range append([]string{c.DNSNamespace, c.IstiodNamespace, c.PrometheusNamespace}, c.GatewayNamespaces...) {
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return fmt.Errorf("netpol: namespace %q: %s", ns, strings.Join(errs, "; "))
		}
	}
	for what, l := range map[string]map[string]string{
		"--netpol-dns-pod-labels": c.DNSPodLabels, "--netpol-istiod-pod-labels": c.IstiodPodLabels,
		"--netpol-prometheus-pod-labels": c.PrometheusPodLabels, "--netpol-gateway-pod-labels": c.GatewayPodLabels,
		"waypoint pod labels": c.WaypointPodLabels,
	} {
		if len(l) == 0 {
			return fmt.Errorf("%s: at least one label is required (an empty selector would select every pod)", what)
		}
		for k, v := range l {
			if errs := validation.IsQualifiedName(k); len(errs) > 0 {
				return fmt.Errorf("%s: key %q: %s", what, k, strings.Join(errs, "; "))
			}
			if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
				return fmt.Errorf("%s: value %q: %s", what, v, strings.Join(errs, "; "))
			}
		}
	}
	ports := map[string][]int32{
		"--netpol-dns-ports": c.DNSPorts, "--netpol-metrics-ports": c.MetricsPorts, "--netpol-gateway-ports": c.GatewayPorts,
		"--netpol-istiod-port": {c.IstiodPort}, "--netpol-gateway-health-port": {c.GatewayHealthPort},
	}
	for flag, ps := range ports {
		if len(ps) == 0 {
			return fmt.Errorf("%s: at least one port is required", flag)
		}
		for _, p := range ps {
			if p <= 0 || p > 65535 {
				return fmt.Errorf("%s: %d is not a port", flag, p)
			}
		}
	}
	for _, p := range c.GatewayPorts {
		if slices.Contains(envoyInternalPorts, p) {
			return fmt.Errorf("--netpol-gateway-ports: %d is one of the proxy's internal ports and must never be reachable", p)
		}
	}
	if c.NodeLocalDNS != "" {
		if _, err := netip.ParseAddr(c.NodeLocalDNS); err != nil {
			return fmt.Errorf("--netpol-nodelocal-dns: %w", err)
		}
	}
	for _, cidr := range c.ProbeSourceCIDRs {
		p, err := netip.ParsePrefix(cidr)
		if err != nil {
			return fmt.Errorf("--netpol-probe-source-cidrs: %w", err)
		}
		if p.Bits() < p.Addr().BitLen()-8 {
			return fmt.Errorf("--netpol-probe-source-cidrs: %s is not a narrow probe source address", cidr)
		}
	}
	if !c.DeriveIntent && (c.FromAuthz || len(c.FromAuthzNamespaces) > 0) {
		return errors.New("--netpol-from-authz needs --netpol-intent (the derivation it is part of)")
	}
	if c.IntentMaxWorkloads < 0 {
		return fmt.Errorf("--netpol-intent-max-workloads: %d is negative", c.IntentMaxWorkloads)
	}
	if c.IntentMinInterval < time.Second {
		return fmt.Errorf("--netpol-intent-min-interval: %s is below 1s", c.IntentMinInterval)
	}
	if c.FromAuthz && len(c.FromAuthzNamespaces) > 0 {
		return errors.New("--netpol-from-authz and --netpol-from-authz-namespaces: choose every namespace or a list, not both")
	}
	for _, ns := range c.FromAuthzNamespaces {
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return fmt.Errorf("--netpol-from-authz-namespaces: %q: %s", ns, strings.Join(errs, "; "))
		}
	}
	if len(c.ExcludeNamespaces) == 0 {
		return errors.New("--netpol-exclude-namespaces: the system namespaces must be excluded")
	}
	return nil
}

// envoyInternalPorts have no legitimate remote client (RULES.md MESH0214).
var envoyInternalPorts = []int32{15000, 15001, 15004, 15006, 15053}
