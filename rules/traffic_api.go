package rules

import (
	"fmt"
	"strconv"
	"strings"
)

// This file exports, for callers that reason about traffic (the
// allowed-traffic graph), the mesh semantics the rules already compute: how a
// pod takes part in the mesh (podMode, capture annotations), its effective
// mTLS mode per port (PeerAuthentication composition) and what a
// DestinationRule sets for traffic to a host. Nothing here is a second
// implementation: each function is a thin view over the rules' own.

// MeshConfig returns a copy of the configuration the engine was built with.
func (e *Engine) MeshConfig() Config { return *e.cfg.Config }

// PodMesh is how one pod (or pod template) takes part in the mesh.
type PodMesh struct {
	// Mode is ModeSidecar, ModeAmbient, ModeNone or ModeUnknown.
	Mode string
	// OutboundBypass says why the pod's own outbound traffic skips its
	// sidecar (it then leaves in plaintext, without the pod's identity): ""
	// when it is captured or the pod has no sidecar.
	OutboundBypass string

	noInbound   string       // why no inbound port is captured ("" when some are)
	inclInbound map[int]bool // nil: every port
	exclInbound map[int]bool
}

// annAmbientRedirection is set by istio-cni on pods ztunnel captures.
const annAmbientRedirection = "ambient.istio.io/redirection"

// PodMesh returns how a pod takes part in the mesh. meta and spec are the
// pod's (or the pod template's) metadata and spec. postInjection says the
// pod is a live one, seen after admission: its sidecar is then the
// istio-proxy container it really has, and ambient capture istio-cni's
// annotation; before injection the injector's decision is computed from the
// namespace's and pod's labels as the rules compute it.
func (e *Engine) PodMesh(ns Namespace, nsKnown bool, meta, spec map[string]any, postInjection bool) PodMesh {
	labels, ann := stringMap(meta["labels"]), stringMap(meta["annotations"])
	var m PodMesh
	if postInjection {
		m.Mode = ModeNone
		switch {
		case podHasProxy(spec):
			m.Mode = ModeSidecar
		case ann[annAmbientRedirection] == "enabled":
			m.Mode = ModeAmbient
		}
	} else {
		m.Mode = podMode(ns, nsKnown, labels, ann, boolAt(spec, "hostNetwork"), e.cfg, e.cfg.versionFor(injectingRevision(ns, labels)))
	}
	if m.Mode != ModeSidecar {
		return m
	}
	interception := ann[annInterceptionMode]
	if interception == "NONE" {
		m.noInbound = annInterceptionMode + ": NONE captures no traffic"
		m.OutboundBypass = m.noInbound
		return m
	}
	if v, ok := ann[annInclInPorts]; ok && strings.TrimSpace(v) != "*" {
		m.inclInbound = map[int]bool{}
		for _, p := range splitList(v) {
			if n, err := strconv.Atoi(p); err == nil {
				m.inclInbound[n] = true
			}
		}
		if len(m.inclInbound) == 0 {
			m.noInbound = annInclInPorts + " is empty: no inbound port is captured"
		}
	}
	for _, p := range splitList(ann[annExclInPorts]) {
		if n, err := strconv.Atoi(p); err == nil {
			if m.exclInbound == nil {
				m.exclInbound = map[int]bool{}
			}
			m.exclInbound[n] = true
		}
	}
	uid, _ := proxyIDs(ns, e.cfg)
	m.OutboundBypass = proxyUIDContainer(spec, uid)
	return m
}

// InboundCaptured reports whether the pod's proxy receives inbound traffic on
// a port, and if not, why ("" when captured). Only sidecar pods can leave
// ports uncaptured (traffic.sidecar.istio.io/excludeInboundPorts,
// includeInboundPorts, interception mode NONE).
func (m PodMesh) InboundCaptured(port int) (bool, string) {
	if m.Mode != ModeSidecar {
		return m.Mode == ModeAmbient, ""
	}
	switch {
	case m.noInbound != "":
		return false, m.noInbound
	case m.exclInbound[port]:
		return false, fmt.Sprintf("%s names port %d", annExclInPorts, port)
	case m.inclInbound != nil && !m.inclInbound[port]:
		return false, fmt.Sprintf("%s does not name port %d", annInclInPorts, port)
	}
	return true, ""
}

// podHasProxy reports whether a live pod runs Istio's sidecar: an istio-proxy
// container, or a native-sidecar istio-proxy init container.
func podHasProxy(spec map[string]any) bool {
	for _, c := range listAt(spec, "containers") {
		if str(asMap(c), "name") == "istio-proxy" {
			return true
		}
	}
	for _, c := range listAt(spec, "initContainers") {
		if cm := asMap(c); str(cm, "name") == "istio-proxy" && str(cm, "restartPolicy") == "Always" {
			return true
		}
	}
	return false
}

// proxyUIDContainer names the first application container that runs as the
// proxy's UID (its own or the pod's runAsUser): iptables exempts that UID
// from capture, so the container's traffic skips the sidecar.
func proxyUIDContainer(spec map[string]any, uid int64) string {
	podUID, podHas := intAt(mapAt(spec, "securityContext"), "runAsUser")
	for _, c := range listAt(spec, "containers") {
		cm := asMap(c)
		name := str(cm, "name")
		if name == "istio-proxy" {
			continue
		}
		u, has := intAt(mapAt(cm, "securityContext"), "runAsUser")
		if !has {
			u, has = podUID, podHas
		}
		if has && u == uid {
			return fmt.Sprintf("container %q runs as UID %d, the proxy's, which the sidecar does not capture", name, uid)
		}
	}
	return ""
}

// WorkloadMTLS is the effective PeerAuthentication of one workload: its
// default mode and the port-level modes of its workload policy.
type WorkloadMTLS struct {
	MTLSResolution
	// Ports are the port-level modes (spec.portLevelMtls of the workload's
	// policy), by target port.
	Ports map[int]MTLSResolution
}

// Port returns the mode on one target port.
func (w WorkloadMTLS) Port(port int) MTLSResolution {
	if r, ok := w.Ports[port]; ok {
		return r
	}
	return w.MTLSResolution
}

// WorkloadMTLS composes a workload's effective mTLS as Istio's
// ComposePeerAuthentication does, on top of its namespace's resolution (from
// NamespaceMTLS): the oldest PeerAuthentication of the namespace whose
// selector matches the pod labels sets the mode (UNSET inherits) and its
// portLevelMtls the mode of each port (UNSET inherits the workload's mode).
// Selector policies in the root namespace are ignored, as Istio ignores them.
func (e *Engine) WorkloadMTLS(ctx Context, nsRes MTLSResolution, namespace string, labels map[string]string) WorkloadMTLS {
	out := WorkloadMTLS{MTLSResolution: nsRes}
	if ctx == nil || namespace == e.cfg.RootNamespace {
		return out
	}
	var cands []Object
	for _, pa := range ctx.PeerAuthentications(namespace) {
		sel := selectorLabels(mapAt(pa, "spec"))
		if len(sel) == 0 || !covers(sel, labels) {
			continue
		}
		cands = append(cands, pa)
	}
	p := oldest(cands)
	if p == nil {
		return out
	}
	ns, name := objKey(p)
	if ns == "" {
		ns = namespace
	}
	ref := ns + "/" + name
	if m := paMode(p); m != mtlsUnset {
		out.MTLSResolution = MTLSResolution{Mode: m, Source: ref, Level: "workload"}
	}
	for k, v := range mapAt(p, "spec", "portLevelMtls") {
		port, err := strconv.Atoi(k)
		if err != nil {
			continue
		}
		r := out.MTLSResolution
		if m := str(asMap(v), "mode"); m != "" && m != mtlsUnset {
			r = MTLSResolution{Mode: m, Source: ref, Level: "port"}
		}
		if out.Ports == nil {
			out.Ports = map[int]MTLSResolution{}
		}
		out.Ports[port] = r
	}
	return out
}

// DestinationRuleHostMatches reports whether a DestinationRule host (as
// written in a rule of namespace drNamespace) covers the service whose
// registry name is fqdn (<svc>.<ns>.svc.<clusterDomain>): an exact name, a
// short name resolved in the rule's namespace, <svc>.<ns>.svc, or a wildcard
// whose suffix ends the name (Istio's host.Name.Matches).
func DestinationRuleHostMatches(host, drNamespace, clusterDomain, fqdn string) bool {
	h := strings.ToLower(strings.TrimSpace(host))
	cd := strings.Trim(strings.ToLower(clusterDomain), ".")
	switch {
	case h == "":
		return false
	case strings.HasPrefix(h, "*"):
		return strings.HasSuffix(fqdn, h[1:])
	case !strings.Contains(h, "."):
		return h+"."+drNamespace+".svc."+cd == fqdn
	case strings.HasSuffix(h, ".svc"):
		return h+"."+cd == fqdn
	}
	return h == fqdn
}

// DestinationTLS is the TLS a DestinationRule sets for traffic to one port of
// a host.
type DestinationTLS struct {
	// Mode is the tls.mode in force: DISABLE, SIMPLE, MUTUAL or ISTIO_MUTUAL;
	// "" when the rule sets none (Istio's auto mTLS decides). A tls block
	// without a mode is DISABLE.
	Mode string
	// At is where it is set, e.g. "bookinfo/reviews spec.subsets[v1].trafficPolicy.tls".
	At string
	// Subset is the subset whose policy sets it ("" for the rule's own
	// policy): it applies only to traffic routed to that subset.
	Subset string
}

// DestinationRuleTLS returns what a DestinationRule sets for traffic to a
// service port reaching a pod with these labels: the rule's trafficPolicy,
// its port-level settings for the port, then, for a subset whose labels the
// pod carries, the subset's (which win for traffic routed to the subset).
func DestinationRuleTLS(dr Object, servicePort int, podLabels map[string]string) DestinationTLS {
	ns, name := objKey(dr)
	var out DestinationTLS
	apply := func(tp map[string]any, where, subset string) {
		if tp == nil {
			return
		}
		set := func(t map[string]any, at string) {
			if t == nil {
				return
			}
			mode := str(t, "mode")
			if mode == "" {
				mode = "DISABLE"
			}
			out = DestinationTLS{Mode: mode, At: ns + "/" + name + " " + at, Subset: subset}
		}
		set(mapAt(tp, "tls"), where+".tls")
		for i, pl := range listAt(tp, "portLevelSettings") {
			plm := asMap(pl)
			if n, ok := intAt(mapAt(plm, "port"), "number"); ok && int(n) == servicePort {
				set(mapAt(plm, "tls"), fmt.Sprintf("%s.portLevelSettings[%d].tls", where, i))
			}
		}
	}
	spec := mapAt(dr, "spec")
	apply(mapAt(spec, "trafficPolicy"), "spec.trafficPolicy", "")
	for i, s := range listAt(spec, "subsets") {
		sm := asMap(s)
		sel := stringMap(sm["labels"])
		if len(sel) == 0 || !covers(sel, podLabels) {
			continue
		}
		where := fmt.Sprintf("spec.subsets[%d].trafficPolicy", i)
		if n := str(sm, "name"); n != "" {
			where = fmt.Sprintf("spec.subsets[%s].trafficPolicy", n)
		}
		apply(mapAt(sm, "trafficPolicy"), where, str(sm, "name"))
	}
	return out
}
