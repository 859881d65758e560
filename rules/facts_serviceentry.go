package rules

import (
	"fmt"
	"strings"
)

// serviceEntryFacts fills f (empty, its list arrays maybe reused from the
// pool) with the hosts of a ServiceEntry and the endpoints of a ServiceEntry that resolve, by
// DNS, to an in-mesh Service (MESH0066). Istio sends traffic for such a
// ServiceEntry's hosts to the addresses DNS returns, as endpoints without
// Istio's tlsMode metadata, so auto mTLS does not apply: the client's proxy
// speaks plaintext to meshed pods unless a DestinationRule for the
// ServiceEntry's host sets ISTIO_MUTUAL (and a DISABLE one makes it explicit).
// Endpoints chosen by workloadSelector are mesh workloads and keep mTLS.
func (e *engine) serviceEntryFacts(f *ServiceEntryFacts, obj Object, ns string) error {
	if err := checkType(obj, "", "spec", "object"); err != nil {
		return err
	}
	spec := mapAt(obj, "spec")
	if err := checkType(spec, "spec", "endpoints", "array"); err != nil {
		return err
	}
	resolution := str(spec, "resolution")
	if resolution == "DNS" || resolution == "DNS_ROUND_ROBIN" {
		for i, ep := range listAt(spec, "endpoints") {
			// A fully qualified name may end with the root's dot.
			addr := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(str(asMap(ep), "address"))), ".")
			inMesh, _, hostNS := meshHost(addr, ns, e.cfg.ClusterDomain)
			// Only a Service's DNS name (<svc>.<ns>.svc[.<domain>]) is resolved
			// by DNS to an in-mesh Service; a short name is not a DNS name here.
			if !inMesh || hostNS == "" || addr == hostNS || !strings.Contains(addr, ".") {
				continue
			}
			f.InMeshDNSAliases = append(f.InMeshDNSAliases, ServiceEntryAliasFacts{
				Address: addr,
				Text:    fmt.Sprintf("spec.endpoints[%d].address %s is the in-mesh Service of namespace %s", i, quote(addr), quote(hostNS)),
			})
		}
	}
	for _, h := range listAt(spec, "hosts") {
		s, ok := h.(string)
		if !ok {
			s = fmt.Sprint(h)
		}
		f.Hosts = append(f.Hosts, s)
	}
	f.Resolution = resolution
	return nil
}
