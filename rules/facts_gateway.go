package rules

import (
	"sort"
	"strings"
)

// GatewayFacts are the facts of an Istio (`networking.istio.io`) or Gateway API Gateway.
type GatewayFacts struct {
	// MESH0063: the Gateway may live in its namespace: no allow-list is configured (`--gateway-namespaces`), the
	// namespace is the root namespace, a control-plane namespace (`--control-plane-namespaces`, where Istio's own
	// gateways run) or a listed one, or the object is an ambient waypoint (a Gateway API Gateway of class
	// `istio-waypoint` whose listeners all carry HBONE, which serves only its own namespace's workloads and exposes
	// nothing).
	ApprovedNamespace bool `json:"approvedNamespace"`
	// The allowed namespaces, sorted and comma-separated, for the message; `""` when approved.
	ApprovedNamespaces string `json:"approvedNamespaces"`
}

// Map returns the facts as the policies see them.
func (f *GatewayFacts) Map() map[string]any {
	return map[string]any{"approvedNamespace": f.ApprovedNamespace, "approvedNamespaces": f.ApprovedNamespaces}
}

// gatewayFacts are the facts of Istio and Gateway API Gateways (MESH0063).
func (e *engine) gatewayFacts(obj Object, group, ns string) (map[string]any, error) {
	f, err := e.gatewayFactsTyped(obj, group, ns)
	if err != nil {
		return nil, err
	}
	return f.Map(), nil
}

func (e *engine) gatewayFactsTyped(obj Object, group, ns string) (GatewayFacts, error) {
	if err := checkType(obj, "", "spec", "object"); err != nil {
		return GatewayFacts{}, err
	}
	spec := mapAt(obj, "spec")
	approved := len(e.cfg.gwAllowed) == 0 || ns == e.cfg.RootNamespace || e.cfg.controlPlane[ns] || e.cfg.gwAllowed[ns]
	if !approved && group == "gateway.networking.k8s.io" && isWaypoint(spec) {
		approved = true
	}
	text := ""
	if !approved {
		set := map[string]bool{e.cfg.RootNamespace: true}
		for _, n := range e.cfg.ControlPlaneNamespaces {
			set[n] = true
		}
		for _, n := range e.cfg.GatewayNamespaces {
			set[n] = true
		}
		list := make([]string, 0, len(set))
		for n := range set {
			list = append(list, n)
		}
		sort.Strings(list)
		text = strings.Join(list, ", ")
	}
	return GatewayFacts{ApprovedNamespace: approved, ApprovedNamespaces: text}, nil
}

// isWaypoint reports whether a Gateway API Gateway's spec is an ambient
// waypoint: class istio-waypoint and every listener HBONE (a waypoint with
// any other listener also accepts that traffic, so it is judged as a gateway).
func isWaypoint(spec map[string]any) bool {
	if str(spec, "gatewayClassName") != "istio-waypoint" {
		return false
	}
	listeners := listAt(spec, "listeners")
	if len(listeners) == 0 {
		return false
	}
	for _, l := range listeners {
		lm, _ := l.(map[string]any)
		if str(lm, "protocol") != "HBONE" {
			return false
		}
	}
	return true
}
