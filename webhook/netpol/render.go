package netpol

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/meshguard/meshguard/rules"
)

// Policy names, stable across versions: the controller finds its objects by
// name. They are defined with the profiles in package rules, which MESH0217
// and the cluster audit share.
const (
	NameDefaultDeny       = rules.NetpolDefaultDeny
	NameAllowDNS          = rules.NetpolAllowDNS
	NameAllowMetrics      = rules.NetpolAllowMetrics
	NameAllowIstiod       = rules.NetpolAllowIstiod
	NameAllowHBONE        = rules.NetpolAllowHBONE
	NameAllowWaypoint     = rules.NetpolAllowWaypoint
	NameGatewayLockdown   = rules.NetpolGatewayLockdown
	labelNamespaceName    = "kubernetes.io/metadata.name"
	hbonePort             = 15008
	labelInjection        = "istio-injection"
	labelRev              = "istio.io/rev"
	labelDataplaneMode    = "istio.io/dataplane-mode"
	dataplaneModeAmbient  = "ambient"
	injectionEnabledValue = "enabled"
)

// ParseProfile reads a profile label value; "system" is an alias of none.
func ParseProfile(s string) (Profile, bool) {
	p, ok := rules.ParseNetpolProfile(s)
	return Profile(p), ok
}

// Profiles lists every profile that installs policies.
func Profiles() []Profile { return []Profile{ProfileSidecar, ProfileAmbient, ProfileGateway} }

// ProfileFor decides a namespace's profile and says why. meshMode is the
// namespace's data plane from its enrollment labels (sidecar, ambient, none),
// as the rules engine computes it with Istio's precedence.
//
// The decision is rules.NetpolProfile (excluded namespaces, then the
// meshguard.io/netpol-profile label, then the gateway namespaces, then the
// enrollment), shared with MESH0217 and `meshguard audit --cluster`.
func (c *Config) ProfileFor(ns *corev1.Namespace, meshMode string) (Profile, string) {
	p, why := rules.NetpolProfile(ns.Name, ns.Labels, meshMode, c.ExcludeNamespaces, c.GatewayNamespaces)
	return Profile(p), why
}

// Names returns the policy names of a profile, in render order.
func Names(p Profile) []string { return rules.NetpolPolicyNames(string(p)) }

// Render returns the policy set of a profile for a namespace (nil for none).
// It is deterministic: the same input renders byte-identical objects.
func (c *Config) Render(namespace string, p Profile) []*networkingv1.NetworkPolicy {
	var out []*networkingv1.NetworkPolicy
	for _, name := range Names(p) {
		out = append(out, c.render(namespace, p, name))
	}
	return out
}

var (
	ingress = networkingv1.PolicyTypeIngress
	egress  = networkingv1.PolicyTypeEgress
	tcp     = corev1.ProtocolTCP
	udp     = corev1.ProtocolUDP
)

func (c *Config) render(namespace string, p Profile, name string) *networkingv1.NetworkPolicy {
	np := &networkingv1.NetworkPolicy{
		TypeMeta: metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Namespace:   namespace,
			Labels:      ManagedLabels(),
			Annotations: map[string]string{AnnotationVersion: PolicySetVersion, AnnotationProfile: string(p)},
		},
	}
	s := &np.Spec
	defer func() {
		if name != NameDefaultDeny {
			s.PodSelector = ExcludeQuarantined(s.PodSelector)
		}
	}()
	switch name {
	case NameDefaultDeny:
		s.PolicyTypes = []networkingv1.PolicyType{ingress, egress}
	case NameAllowDNS:
		s.PolicyTypes = []networkingv1.PolicyType{egress}
		s.Egress = c.dnsEgress()
	case NameAllowMetrics:
		s.PolicyTypes = []networkingv1.PolicyType{ingress}
		s.Ingress = []networkingv1.NetworkPolicyIngressRule{c.metricsIngress()}
	case NameAllowIstiod:
		s.PolicyTypes = []networkingv1.PolicyType{egress}
		s.Egress = []networkingv1.NetworkPolicyEgressRule{c.istiodEgress()}
	case NameAllowHBONE:
		s.PolicyTypes = []networkingv1.PolicyType{ingress, egress}
		from := meshNamespacePeers()
		if len(c.GatewayNamespaces) > 0 {
			from = append(from, networkingv1.NetworkPolicyPeer{NamespaceSelector: nsSelector(c.GatewayNamespaces[0])})
		}
		s.Ingress = []networkingv1.NetworkPolicyIngressRule{{From: from, Ports: tcpPorts(hbonePort)}}
		if len(c.ProbeSourceCIDRs) > 0 {
			var probes []networkingv1.NetworkPolicyPeer
			for _, cidr := range c.ProbeSourceCIDRs {
				probes = append(probes, networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: cidr}})
			}
			s.Ingress = append(s.Ingress, networkingv1.NetworkPolicyIngressRule{From: probes})
		}
		s.Egress = []networkingv1.NetworkPolicyEgressRule{{To: meshNamespacePeers(), Ports: tcpPorts(hbonePort)}}
	case NameAllowWaypoint:
		s.PodSelector = metav1.LabelSelector{MatchLabels: copyMap(c.WaypointPodLabels)}
		s.PolicyTypes = []networkingv1.PolicyType{egress}
		s.Egress = []networkingv1.NetworkPolicyEgressRule{c.istiodEgress()}
	case NameGatewayLockdown:
		s.PodSelector = metav1.LabelSelector{MatchLabels: copyMap(c.GatewayPodLabels)}
		s.PolicyTypes = []networkingv1.PolicyType{ingress, egress}
		s.Ingress = []networkingv1.NetworkPolicyIngressRule{
			{Ports: tcpPorts(c.GatewayPorts...)},
			{Ports: tcpPorts(c.GatewayHealthPort)},
			c.metricsIngress(),
		}
		s.Egress = append(c.dnsEgress(), c.istiodEgress(), networkingv1.NetworkPolicyEgressRule{To: meshNamespacePeers()})
	}
	return np
}

// LabelQuarantined marks the pods (and workloads) `meshguard quarantine`
// isolates; its value is the quarantine's ID. LabelQuarantine marks the
// quarantine's own NetworkPolicy, which the controller leaves alone.
const (
	LabelQuarantined = "meshguard.io/quarantined"
	LabelQuarantine  = "meshguard.io/quarantine"
)

// ExcludeQuarantined returns sel narrowed to pods without the quarantine
// label: every managed allow policy is built through it, so that no allow
// meshguard manages admits traffic to or from a quarantined pod
// (NetworkPolicies are additive; the quarantine's deny-all alone would not
// win against an allow that also selects the pod).
func ExcludeQuarantined(sel metav1.LabelSelector) metav1.LabelSelector {
	out := *sel.DeepCopy()
	for _, r := range out.MatchExpressions {
		if r.Key == LabelQuarantined && r.Operator == metav1.LabelSelectorOpDoesNotExist {
			return out
		}
	}
	out.MatchExpressions = append(out.MatchExpressions, metav1.LabelSelectorRequirement{Key: LabelQuarantined, Operator: metav1.LabelSelectorOpDoesNotExist})
	return out
}

// ManagedLabels are the labels on every managed object.
func ManagedLabels() map[string]string {
	return map[string]string{LabelManagedBy: "meshguard", LabelManaged: "true"}
}

func (c *Config) dnsEgress() []networkingv1.NetworkPolicyEgressRule {
	var ports []networkingv1.NetworkPolicyPort
	for _, p := range sortedPorts(c.DNSPorts) {
		ports = append(ports, port(udp, p), port(tcp, p))
	}
	rules := []networkingv1.NetworkPolicyEgressRule{{
		To: []networkingv1.NetworkPolicyPeer{{
			NamespaceSelector: nsSelector(c.DNSNamespace),
			PodSelector:       &metav1.LabelSelector{MatchLabels: copyMap(c.DNSPodLabels)},
		}},
		Ports: ports,
	}}
	if c.NodeLocalDNS != "" {
		bits := 32
		if strings.Contains(c.NodeLocalDNS, ":") {
			bits = 128
		}
		rules = append(rules, networkingv1.NetworkPolicyEgressRule{
			To:    []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: fmt.Sprintf("%s/%d", c.NodeLocalDNS, bits)}}},
			Ports: []networkingv1.NetworkPolicyPort{port(udp, 53), port(tcp, 53)},
		})
	}
	return rules
}

func (c *Config) metricsIngress() networkingv1.NetworkPolicyIngressRule {
	return networkingv1.NetworkPolicyIngressRule{
		From: []networkingv1.NetworkPolicyPeer{{
			NamespaceSelector: nsSelector(c.PrometheusNamespace),
			PodSelector:       &metav1.LabelSelector{MatchLabels: copyMap(c.PrometheusPodLabels)},
		}},
		Ports: tcpPorts(c.MetricsPorts...),
	}
}

func (c *Config) istiodEgress() networkingv1.NetworkPolicyEgressRule {
	return networkingv1.NetworkPolicyEgressRule{
		To: []networkingv1.NetworkPolicyPeer{{
			NamespaceSelector: nsSelector(c.IstiodNamespace),
			PodSelector:       &metav1.LabelSelector{MatchLabels: copyMap(c.IstiodPodLabels)},
		}},
		Ports: tcpPorts(c.IstiodPort),
	}
}

// meshNamespacePeers are the namespaces in the mesh: ambient, sidecar-injected
// and revision-labelled (ORed peers).
func meshNamespacePeers() []networkingv1.NetworkPolicyPeer {
	return []networkingv1.NetworkPolicyPeer{
		{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{labelDataplaneMode: dataplaneModeAmbient}}},
		{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{labelInjection: injectionEnabledValue}}},
		{NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: labelRev, Operator: metav1.LabelSelectorOpExists}}}},
	}
}

func nsSelector(name string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: map[string]string{labelNamespaceName: name}}
}

func port(proto corev1.Protocol, p int32) networkingv1.NetworkPolicyPort {
	pr := proto
	v := intstr.FromInt32(p)
	return networkingv1.NetworkPolicyPort{Protocol: &pr, Port: &v}
}

func tcpPorts(ps ...int32) []networkingv1.NetworkPolicyPort {
	var out []networkingv1.NetworkPolicyPort
	for _, p := range sortedPorts(ps) {
		out = append(out, port(tcp, p))
	}
	return out
}

func sortedPorts(ps []int32) []int32 {
	out := append([]int32(nil), ps...)
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return slices.Compact(out)
}

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
