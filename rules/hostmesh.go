package rules

import (
	"fmt"
	"net"
	"regexp"
	"strings"
)

// revisionRE is a revision name as istiod's Service carries it
// (istiod-<revision>): a DNS label.
var revisionRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// hostService returns the Service and namespace a plain DestinationRule host
// names: a short name in the DR's namespace, or <svc>.<ns>.svc[.<domain>].
// Wildcards, addresses and other names give "".
func hostService(host, namespace, clusterDomain string) (svc, ns string) {
	h := strings.ToLower(strings.TrimSpace(host))
	if h == "" || strings.HasPrefix(h, "*") || net.ParseIP(h) != nil {
		return "", ""
	}
	if !strings.Contains(h, ".") {
		return h, namespace
	}
	cd := strings.Trim(strings.ToLower(clusterDomain), ".")
	for _, tail := range []string{".svc." + cd, ".svc"} {
		if rest, ok := strings.CutSuffix(h, tail); ok {
			if s, n, ok := strings.Cut(rest, "."); ok && s != "" && n != "" && !strings.Contains(n, ".") {
				return s, n
			}
			return "", ""
		}
	}
	return "", ""
}

// controlPlaneService reports whether a Service is one Istio's control plane
// or Kubernetes itself serves without a sidecar: istiod and istiod-<revision>
// in the root namespace or a control-plane namespace (istiod terminates its
// own TLS on 15012 and 15017; Istio's samples/multicluster/expose-istiod-https.yaml
// originates SIMPLE TLS to it from the east-west gateway), and
// kubernetes.default, the API server.
func (c *compiledConfig) controlPlaneService(svc, ns string) string {
	switch {
	case svc == "kubernetes" && ns == "default":
		return "the Kubernetes API server, which runs without a sidecar"
	case ns != c.RootNamespace && !c.controlPlane[ns]:
		return ""
	case svc == "istiod":
	case strings.HasPrefix(svc, "istiod-") && revisionRE.MatchString(strings.TrimPrefix(svc, "istiod-")):
	default:
		return ""
	}
	return "Istio's control plane, which runs without a sidecar and terminates its own TLS"
}

// hostOutsideMesh decides, from the host's namespace and the known
// control-plane Services, whether a DestinationRule host that names in-mesh
// services by its spelling (meshHost) reaches a service without a sidecar. It
// returns the mode of the one namespace the host names (as hostNamespaceMode:
// the context's answer, else --default-namespace-mode, else unknown; "" when
// the host names no single namespace) and why the host is outside the mesh, ""
// when it is in the mesh or nothing is known: an unknown namespace keeps the
// conservative answer. A namespace whose mode is none is outside the mesh;
// the system namespaces always are, known or not (Istio never injects them).
//
// This is the namespace-mode part of the in-mesh decision only; other parts
// (ServiceEntries that alias a host) are decided by their own functions.
func (e *engine) hostOutsideMesh(host, drNS, hostNS string) (mode, reason string) {
	svc, svcNS := hostService(host, drNS, e.cfg.ClusterDomain)
	if svc != "" {
		if why := e.cfg.controlPlaneService(svc, svcNS); why != "" {
			reason = fmt.Sprintf("Service %s.%s is %s", svc, svcNS, why)
		}
	}
	if hostNS == "" {
		return "", reason
	}
	mode = ModeUnknown
	if n, known := e.ctx.Namespace(hostNS); known || e.cfg.system[hostNS] {
		if n.Name == "" {
			n.Name = hostNS
		}
		mode = namespaceMode(n, e.cfg)
	} else if e.cfg.DefaultNamespaceMode != ModeUnknown {
		mode = e.cfg.DefaultNamespaceMode
	}
	if reason == "" && mode == ModeNone {
		reason = fmt.Sprintf("namespace %q is outside the mesh", hostNS)
	}
	return mode, reason
}
