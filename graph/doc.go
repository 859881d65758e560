// Package graph computes the allowed-traffic graph of a mesh from policy:
// for every workload, the ingress gateway and the outside world, and every
// port of every workload, whether a connection is allowed and with what
// protection. It reads the objects `meshguard audit` reads (manifests, or a
// live cluster's objects) and decides each edge with the rules' own
// semantics (package rules):
//
//   - L3/4: NetworkPolicies, ingress on the destination's pods and egress
//     on the source's, with Kubernetes' default allow for a pod no policy
//     selects in that direction;
//   - transport: the destination's effective PeerAuthentication mode on the
//     port (mesh, namespace, workload, port level), the source's proxy (auto
//     mTLS) and the DestinationRule that applies to the source's traffic;
//   - L7: AuthorizationPolicies with Istio's precedence (CUSTOM, DENY, ALLOW,
//     allow by default), the caller's identity known only over mTLS, what
//     only a request carries (paths, methods, hosts, tokens, addresses)
//     making an edge conditional, and ambient's split between ztunnel (L4)
//     and waypoints (targetRefs).
//
// Compute is the one computation: `meshguard graph` renders it (dot, json,
// svg, html), and NetworkPolicies derived from the mesh's intent reuse it.
// Policies are indexed once (selectors resolved to endpoint bitsets,
// authorization decisions memoized per policy set, port and identity), so
// the cost is one small step per (source, destination port) pair.
package graph
