package rules

import (
	"fmt"
	"sort"
	"strings"
)

// Named ports: a Service targetPort or a NetworkPolicy port may name a
// container port instead of numbering it, and the name resolves per pod. To
// see through the name, meshguard resolves it against the pods the context
// knows (the webhook's pod cache, the audited input's Pods); the reverse
// order, a Service first and a pod naming Envoy's port later, is MESH0202 on
// the workload.

// namedPortHit is a name resolved to a port of one pod.
type namedPortHit struct {
	pod  string
	port int64
}

// resolveNamedPort returns, for each distinct port number the name resolves
// to in the pods that match, the first pod (by name) where it does. As the
// endpoints controllers do (FindPort, k8s.io/endpointslice utils.go), a pod
// resolves the name to the first containerPort of that name and protocol
// (protocol "" is TCP, as is a containerPort without one) in its containers,
// then in its restartable (sidecar) init containers; other init containers
// have exited before the pod serves.
func resolveNamedPort(pods []Object, matches func(labels map[string]string) bool, name, protocol string) []namedPortHit {
	if protocol == "" {
		protocol = "TCP"
	}
	seen := map[int64]string{}
	for _, p := range pods {
		meta := mapAt(p, "metadata")
		if !matches(stringMap(meta["labels"])) {
			continue
		}
		podName := str(meta, "name")
		if n, ok := podNamedPort(mapAt(p, "spec"), name, protocol); ok {
			if prev, dup := seen[n]; !dup || podName < prev {
				seen[n] = podName
			}
		}
	}
	out := make([]namedPortHit, 0, len(seen))
	for n, pod := range seen {
		out = append(out, namedPortHit{pod: pod, port: n})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].port < out[j].port })
	return out
}

// podNamedPort is the port a pod spec resolves a named port to (see
// resolveNamedPort).
func podNamedPort(spec map[string]any, name, protocol string) (int64, bool) {
	for _, field := range []string{"containers", "initContainers"} {
		for _, c := range listAt(spec, field) {
			cm := asMap(c)
			if field == "initContainers" && str(cm, "restartPolicy") != "Always" {
				continue
			}
			for _, port := range listAt(cm, "ports") {
				pm := asMap(port)
				proto := str(pm, "protocol")
				if proto == "" {
					proto = "TCP"
				}
				if str(pm, "name") != name || proto != protocol {
					continue
				}
				if n, ok := intAt(pm, "containerPort"); ok {
					return n, true
				}
			}
		}
	}
	return 0, false
}

// labelsMatch reports whether labels carry every key=value of sel (a
// Service selector); an empty selector matches nothing (a Service without a
// selector has no pods of its own).
func labelsMatch(sel map[string]string) func(map[string]string) bool {
	return func(labels map[string]string) bool {
		if len(sel) == 0 {
			return false
		}
		for k, v := range sel {
			if lv, ok := labels[k]; !ok || lv != v {
				return false
			}
		}
		return true
	}
}

// labelSelectorMatch returns a matcher for a metav1.LabelSelector as decoded
// JSON (matchLabels and matchExpressions; an empty selector matches every
// pod, as a NetworkPolicy podSelector does). An expression meshguard cannot
// read matches, so a name is resolved against more pods, never fewer.
func labelSelectorMatch(sel map[string]any) func(map[string]string) bool {
	ml := stringMap(sel["matchLabels"])
	exprs := listAt(sel, "matchExpressions")
	return func(labels map[string]string) bool {
		for k, v := range ml {
			if lv, ok := labels[k]; !ok || lv != v {
				return false
			}
		}
		for _, e := range exprs {
			em := asMap(e)
			key := str(em, "key")
			lv, has := labels[key]
			var values []string
			for _, v := range listAt(em, "values") {
				values = append(values, fmt.Sprint(v))
			}
			in := false
			for _, v := range values {
				in = in || has && lv == v
			}
			switch str(em, "operator") {
			case "In":
				if !in {
					return false
				}
			case "NotIn":
				if in {
					return false
				}
			case "Exists":
				if !has {
					return false
				}
			case "DoesNotExist":
				if has {
					return false
				}
			}
		}
		return true
	}
}

// namespacePods returns the pods of a namespace the context knows, or nil.
func (e *engine) namespacePods(ns string) []Object {
	np, ok := e.ctx.(NamespacePods)
	if !ok {
		return nil
	}
	pods, _ := np.Pods(ns)
	return pods
}

// hitText renders resolved ports for a message: `containerPort 15000 of pod "web-1"`.
func hitText(h namedPortHit) string {
	return fmt.Sprintf("containerPort %d of pod %s", h.port, quote(h.pod))
}

// netpolNamedEnvoyPorts lists the ingress port entries whose name resolves,
// on a pod the policy selects, to a pod-internal Envoy port (MESH0214).
func netpolNamedEnvoyPorts(out []NetpolEnvoyPortFacts, spec map[string]any, pods []Object) []NetpolEnvoyPortFacts {
	matches := labelSelectorMatch(mapAt(spec, "podSelector"))
	for i, r := range listAt(spec, "ingress") {
		for j, p := range listAt(asMap(r), "ports") {
			name, ok := asMap(p)["port"].(string)
			if !ok || name == "" {
				continue
			}
			var hit []namedPortHit
			for _, h := range resolveNamedPort(pods, matches, name, str(asMap(p), "protocol")) {
				if _, internal := envoyInternalPorts[h.port]; internal {
					hit = append(hit, h)
				}
			}
			if len(hit) == 0 {
				continue
			}
			var what []string
			for _, h := range hit {
				what = append(what, fmt.Sprintf("%s (%s)", hitText(h), envoyInternalPorts[h.port]))
			}
			out = append(out, NetpolEnvoyPortFacts{
				At:   fmt.Sprintf("spec.ingress[%d].ports[%d]", i, j),
				Text: fmt.Sprintf("spec.ingress[%d].ports[%d] opens port %s, which is %s", i, j, quote(name), strings.Join(what, ", ")),
			})
		}
	}
	return out
}

// netpolHasNamedPorts reports whether some ingress port entry is named.
func netpolHasNamedPorts(spec map[string]any) bool {
	for _, r := range listAt(spec, "ingress") {
		for _, p := range listAt(asMap(r), "ports") {
			if name, ok := asMap(p)["port"].(string); ok && name != "" {
				return true
			}
		}
	}
	return false
}
