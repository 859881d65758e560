package rules

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// The default-deny NetworkPolicy profiles of meshguard's controller
// (webhook/netpol, RULES.md section 6). The decision which profile a
// namespace gets, and which policies (by name) a profile consists of, live
// here so the controller, the rules (MESH0217) and the cluster audit's
// per-namespace summary share one implementation; webhook/netpol renders the
// policies themselves.
const (
	NetpolProfileSidecar = "sidecar"
	NetpolProfileAmbient = "ambient"
	NetpolProfileGateway = "gateway"
	NetpolProfileNone    = "none"
)

// Names of the managed policies, stable across versions: the controller finds
// its objects by name.
const (
	NetpolDefaultDeny     = "mesh-default-deny"
	NetpolAllowDNS        = "mesh-allow-dns"
	NetpolAllowMetrics    = "mesh-allow-metrics-scrape"
	NetpolAllowIstiod     = "mesh-allow-istiod"
	NetpolAllowHBONE      = "mesh-allow-hbone"
	NetpolAllowWaypoint   = "mesh-allow-waypoint-istiod"
	NetpolGatewayLockdown = "mesh-ingressgateway-lockdown"
)

// DefaultNetpolExcludeNamespaces are the namespaces that never get policies
// by default: DefaultSystemNamespaces and Istio's control plane (istio-system).
func DefaultNetpolExcludeNamespaces() []string {
	return append(DefaultSystemNamespaces(), "istio-system")
}

// DefaultNetpolGatewayNamespaces are the namespaces that get the gateway
// profile by default.
func DefaultNetpolGatewayNamespaces() []string { return []string{"istio-ingress"} }

// ParseNetpolProfile reads a meshguard.io/netpol-profile label value;
// "system" is an alias of none.
func ParseNetpolProfile(s string) (string, bool) {
	switch s {
	case NetpolProfileSidecar, NetpolProfileAmbient, NetpolProfileGateway, NetpolProfileNone:
		return s, true
	case "system":
		return NetpolProfileNone, true
	}
	return "", false
}

// NetpolProfile decides a namespace's default-deny NetworkPolicy profile and
// says why. meshMode is the namespace's data plane (ModeSidecar, ModeAmbient,
// ModeNone) as Engine.NamespaceMeshMode computes it; exclude and gateways are
// the controller's --netpol-exclude-namespaces and --netpol-gateway-namespaces.
//
// Order: excluded namespaces get nothing, whatever their labels; then an
// admin's explicit meshguard.io/netpol-profile label (an unknown value is
// ignored, so a typo never removes protection); then the gateway namespaces;
// then the enrollment: sidecar or ambient. Namespaces outside the mesh get none.
func NetpolProfile(namespace string, labels map[string]string, meshMode string, exclude, gateways []string) (profile, why string) {
	if slices.Contains(exclude, namespace) {
		return NetpolProfileNone, "excluded namespace"
	}
	if v, ok := labels[labelNetpolProfile]; ok {
		if p, ok := ParseNetpolProfile(v); ok {
			return p, fmt.Sprintf("label %s=%s", labelNetpolProfile, v)
		}
	}
	if slices.Contains(gateways, namespace) {
		return NetpolProfileGateway, "gateway namespace"
	}
	switch meshMode {
	case ModeSidecar:
		return NetpolProfileSidecar, "sidecar-injected namespace"
	case ModeAmbient:
		return NetpolProfileAmbient, "ambient namespace"
	}
	return NetpolProfileNone, "namespace outside the mesh"
}

// NetpolPolicyNames returns the names of a profile's policies, in render
// order (nil for none).
func NetpolPolicyNames(profile string) []string {
	switch profile {
	case NetpolProfileSidecar:
		return []string{NetpolDefaultDeny, NetpolAllowDNS, NetpolAllowMetrics, NetpolAllowIstiod}
	case NetpolProfileAmbient:
		return []string{NetpolDefaultDeny, NetpolAllowDNS, NetpolAllowMetrics, NetpolAllowHBONE, NetpolAllowWaypoint}
	case NetpolProfileGateway:
		return []string{NetpolGatewayLockdown}
	}
	return nil
}

// ManagedNetworkPolicies is implemented by contexts that know the
// NetworkPolicies meshguard's controller manages (labelled
// meshguard.io/managed: "true"). names are those in a namespace, sorted;
// known is false when the context could not see NetworkPolicies at all (a
// list that failed), in which case nothing can be called missing.
type ManagedNetworkPolicies interface {
	ManagedNetworkPolicies(namespace string) (names []string, known bool)
}

// NetpolState compares a namespace's managed NetworkPolicies with its
// profile's set, by name.
type NetpolState struct {
	// Profile is the profile the controller would apply; Why says why.
	Profile string `json:"profile"`
	Why     string `json:"why"`
	// Status is "complete" (every policy of the set is present), "partial"
	// (some are), "missing" (none is), "none" (the profile installs
	// nothing) or "unknown" (NetworkPolicies could not be read).
	Status string `json:"status"`
	// Expected are the set's policy names; Present the managed policies
	// found (also those outside the set); Missing the expected ones not
	// found; Extra the managed ones the profile does not include (the
	// controller would remove them).
	Expected []string `json:"expected"`
	Present  []string `json:"present"`
	Missing  []string `json:"missing"`
	Extra    []string `json:"extra"`
}

// Netpol statuses.
const (
	NetpolComplete = "complete"
	NetpolPartial  = "partial"
	NetpolMissing  = "missing"
	NetpolNone     = "none"
	NetpolUnknown  = "unknown"
)

// CompareNetpols builds a NetpolState from a profile and the managed policy
// names present (known is false when they could not be read).
func CompareNetpols(profile, why string, present []string, known bool) NetpolState {
	s := NetpolState{Profile: profile, Why: why, Expected: nonNilStrings(NetpolPolicyNames(profile)),
		Present: []string{}, Missing: []string{}, Extra: []string{}}
	if !known {
		s.Status = NetpolUnknown
		return s
	}
	s.Present = append(s.Present, present...)
	sort.Strings(s.Present)
	for _, n := range s.Expected {
		if !slices.Contains(present, n) {
			s.Missing = append(s.Missing, n)
		}
	}
	for _, n := range s.Present {
		if !slices.Contains(s.Expected, n) && !NetpolDerived(n) {
			s.Extra = append(s.Extra, n)
		}
	}
	switch {
	case len(s.Expected) == 0:
		s.Status = NetpolNone
	case len(s.Missing) == 0:
		s.Status = NetpolComplete
	case len(s.Missing) == len(s.Expected):
		s.Status = NetpolMissing
	default:
		s.Status = NetpolPartial
	}
	return s
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// NamespaceNetpol returns the profile the controller would give a namespace
// (with this engine's mesh configuration and netpol namespaces) and how the
// context's managed NetworkPolicies compare with the profile's set. A context
// that does not implement ManagedNetworkPolicies gives status unknown.
func (e *Engine) NamespaceNetpol(ctx Context, ns Namespace) NetpolState {
	return namespaceNetpol(e.cfg, ctx, ns)
}

func namespaceNetpol(cfg *compiledConfig, ctx Context, ns Namespace) NetpolState {
	profile, why := NetpolProfile(ns.Name, ns.Labels, namespaceMode(ns, cfg), cfg.NetpolExcludeNamespaces, cfg.NetpolGatewayNamespaces)
	var present []string
	known := false
	if mp, ok := ctx.(ManagedNetworkPolicies); ok {
		present, known = mp.ManagedNetworkPolicies(ns.Name)
	}
	return CompareNetpols(profile, why, present, known)
}

// netpolFacts is the Namespace fact `netpol` (MESH0217).
func (e *engine) netpolFacts(ns Namespace, terminating bool) NamespaceNetpolFacts {
	st := namespaceNetpol(e.cfg, e.ctx, ns)
	return NamespaceNetpolFacts{
		Profile:     st.Profile,
		Why:         st.Why,
		Known:       st.Status != NetpolUnknown,
		Status:      st.Status,
		Expected:    st.Expected,
		Present:     st.Present,
		Missing:     st.Missing,
		DefaultDeny: slices.Contains(st.Present, NetpolDefaultDeny),
		Terminating: terminating,
	}
}

// ManagedNetworkPolicies implements ManagedNetworkPolicies from the
// NetworkPolicies added to the snapshot. The snapshot knows them unless
// NetworkPoliciesUnknown was called (a cluster audit whose list failed).
func (s *Snapshot) ManagedNetworkPolicies(namespace string) ([]string, bool) {
	if s.netpolsUnknown {
		return nil, false
	}
	out := append([]string(nil), s.netpols[namespace]...)
	sort.Strings(out)
	return out, true
}

// NetworkPoliciesUnknown records that the snapshot could not be given the
// NetworkPolicies (their list failed or the kind is not served): no managed
// policy can then be called missing.
func (s *Snapshot) NetworkPoliciesUnknown() { s.netpolsUnknown = true }

// gatewayServingPorts are the pod ports an ingress gateway serves on: 80 and
// 443 (the Helm `gateway` chart), 8080 and 8443 (the legacy istio-ingress
// chart's targetPorts) and 15021 (health checks) (RULES.md MESH0216).
var gatewayServingPorts = map[int64]bool{80: true, 443: true, 8080: true, 8443: true, 15021: true}

// selectsIngressGateway reports podSelector labels naming ingress gateway
// pods: `istio: ingressgateway`, `app: istio-ingressgateway`, or a Gateway
// API gateway's `gateway.networking.k8s.io/gateway-name`.
func selectsIngressGateway(labels map[string]string) bool {
	return labels["istio"] == "ingressgateway" || labels["app"] == "istio-ingressgateway" ||
		labels["gateway.networking.k8s.io/gateway-name"] != ""
}

// gatewayOpenPorts appends to out, for a NetworkPolicy selecting ingress gateway
// pods, the ingress rules that let sources outside the cluster (no `from`,
// or an ipBlock) reach pod ports other than the serving ports (MESH0216).
// Named ports are not judged: they resolve per pod.
func gatewayOpenPorts(out []GatewayOpenFacts, spec map[string]any, ingressOn bool) []GatewayOpenFacts {
	if !ingressOn || !selectsIngressGateway(stringMap(mapAt(spec, "podSelector")["matchLabels"])) {
		return out
	}
	for i, r := range listAt(spec, "ingress") {
		rm := asMap(r)
		at := fmt.Sprintf("spec.ingress[%d]", i)
		source := ""
		if from := listAt(rm, "from"); len(from) == 0 {
			source = "any source (no from)"
		} else {
			for j, p := range from {
				if b := mapAt(asMap(p), "ipBlock"); b != nil {
					source = fmt.Sprintf("%s.from[%d].ipBlock %s", at, j, str(b, "cidr"))
					break
				}
			}
		}
		if source == "" {
			continue
		}
		ports := listAt(rm, "ports")
		if len(ports) == 0 {
			out = append(out, GatewayOpenFacts{Text: fmt.Sprintf("%s allows %s to every port", at, source)})
			continue
		}
		for j, p := range ports {
			pm := asMap(p)
			port, ok := intAt(pm, "port")
			if !ok {
				if _, named := pm["port"].(string); !named {
					out = append(out, GatewayOpenFacts{Text: fmt.Sprintf("%s allows %s to every port (%s.ports[%d] has no port)", at, source, at, j)})
				}
				continue
			}
			end, hasEnd := intAt(pm, "endPort")
			if !hasEnd || end < port {
				end = port
			}
			beyond := false
			for q := port; q <= end && !beyond; q++ {
				beyond = !gatewayServingPorts[q]
			}
			if !beyond {
				continue
			}
			what := "port " + strconv.FormatInt(port, 10)
			if end > port {
				what = fmt.Sprintf("ports %d-%d", port, end)
			}
			out = append(out, GatewayOpenFacts{Text: fmt.Sprintf("%s allows %s to %s, beyond the serving ports", at, source, what)})
		}
	}
	return out
}

// Prefixes of the managed policies the controller derives from the mesh's
// intent (routes, AuthorizationPolicies) and of a quarantine's, which no
// profile names: they are neither missing nor extra in a profile's set.
const (
	NetpolPrefixGatewayAllow = "mesh-allow-gateway-to-"
	NetpolPrefixAuthzTo      = "mesh-allow-authz-to-"
	NetpolPrefixAuthzFrom    = "mesh-allow-authz-from-"
	NetpolPrefixQuarantine   = "meshguard-quarantine-"
)

// NetpolDerived reports whether a managed policy's name is one the
// controller derives or a quarantine's, outside every profile's set.
func NetpolDerived(name string) bool {
	return NetpolIntentDerived(name) || strings.HasPrefix(name, NetpolPrefixQuarantine)
}

// NetpolIntentDerived reports whether a managed policy's name is one the
// controller derives from the mesh's intent (routes, AuthorizationPolicies).
func NetpolIntentDerived(name string) bool {
	for _, p := range []string{NetpolPrefixGatewayAllow, NetpolPrefixAuthzTo, NetpolPrefixAuthzFrom} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}
