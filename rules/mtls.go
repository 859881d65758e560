package rules

import "k8s.io/apimachinery/pkg/runtime/schema"

// Namespace-level mesh facts for reports (`meshguard audit --cluster`'s
// per-namespace summary), resolved exactly as the rules resolve them.

// MTLSResolution is the effective namespace-wide mTLS mode of a namespace.
type MTLSResolution struct {
	// Mode is STRICT, PERMISSIVE or DISABLE: what a workload without its own
	// PeerAuthentication gets.
	Mode string `json:"mode"`
	// Source is the PeerAuthentication that decided the mode
	// ("namespace/name"), or "" when none did (Istio's default, PERMISSIVE).
	Source string `json:"source,omitempty"`
	// Level is where the deciding policy lives: "namespace", "mesh" or
	// "default" (no policy applies).
	Level string `json:"level"`
}

// NamespaceMTLS resolves a namespace's effective mTLS mode the way Istio
// composes PeerAuthentications: PERMISSIVE by default, then the mesh-wide
// policy (the oldest selector-less one in the root namespace), then the
// namespace-wide policy (the oldest selector-less one in the namespace); a
// policy whose mode is UNSET inherits. Workload and port-level policies are
// not namespace-wide and do not count.
func (e *Engine) NamespaceMTLS(ctx Context, namespace string) MTLSResolution {
	if ctx == nil {
		ctx = emptyContext{}
	}
	res := MTLSResolution{Mode: mtlsPermissive, Level: "default"}
	apply := func(p Object, level string) {
		if p == nil {
			return
		}
		if m := paMode(p); m != mtlsUnset {
			ns, name := objKey(p)
			res = MTLSResolution{Mode: m, Source: ns + "/" + name, Level: level}
		}
	}
	apply(levelPolicy(ctx, e.cfg.RootNamespace, nil), "mesh")
	if namespace != e.cfg.RootNamespace {
		apply(levelPolicy(ctx, namespace, nil), "namespace")
	}
	return res
}

// NamespaceMeshMode returns how a namespace takes part in the mesh from its
// labels: ModeSidecar, ModeAmbient or ModeNone (system namespaces are never
// in the mesh). It follows the injector's selectors, as the rules do.
func (e *Engine) NamespaceMeshMode(ns Namespace) string { return namespaceMode(ns, e.cfg) }

// AuthzResolution says whether a namespace's authorization is default-deny:
// a request that no policy explicitly allows is refused.
type AuthzResolution struct {
	// DefaultDeny is true when a namespace-wide or mesh-wide policy refuses
	// what nothing allows: an ALLOW policy that does not match every request
	// (an ALLOW policy applies, so unmatched requests are denied), with no
	// namespace-wide or mesh-wide ALLOW policy matching every request beside
	// it; or a DENY policy matching every request.
	DefaultDeny bool `json:"defaultDeny"`
	// Source is the policy that decided ("namespace/name"), or "" when none did.
	Source string `json:"source,omitempty"`
	// Level is where the deciding policy lives: "namespace", "mesh" or
	// "default" (no namespace-wide or mesh-wide policy: Istio allows).
	Level string `json:"level"`
}

// NamespaceAuthz resolves whether authorization is default-deny for a
// namespace as a whole, from its own and the root namespace's
// AuthorizationPolicies that reach the whole namespace (no selector, or one
// made only of labels every injected pod carries). Policies in dry-run
// (istio.io/dry-run) are not enforced and do not count; workload policies do
// not change the namespace's answer.
func (e *Engine) NamespaceAuthz(ctx Context, namespace string) AuthzResolution {
	if ctx == nil {
		ctx = emptyContext{}
	}
	root := e.cfg.RootNamespace
	policies := ctx.AuthorizationPolicies(namespace)
	if namespace != root {
		policies = append(append([]Object{}, policies...), ctx.AuthorizationPolicies(root)...)
	}
	var allowNothing, allowAll, denyAll Object
	for _, ap := range policies {
		if apDryRun(ap) {
			continue
		}
		apNS, _ := objKey(ap)
		if apNS == "" {
			apNS = namespace
		}
		spec := mapAt(ap, "spec")
		if apScope(spec, apNS, root) == "workload" {
			continue
		}
		matchesAll := false
		for _, r := range listAt(spec, "rules") {
			if ruleMatchesAny(asMap(r)) {
				matchesAll = true
				break
			}
		}
		switch apAction(spec) {
		case "ALLOW":
			if matchesAll {
				allowAll = firstObject(allowAll, ap)
			} else {
				allowNothing = firstObject(allowNothing, ap)
			}
		case "DENY":
			if matchesAll {
				denyAll = firstObject(denyAll, ap)
			}
		}
	}
	decide := func(p Object, deny bool) AuthzResolution {
		ns, name := objKey(p)
		level := "namespace"
		if ns == root && namespace != root {
			level = "mesh"
		}
		return AuthzResolution{DefaultDeny: deny, Source: ns + "/" + name, Level: level}
	}
	switch {
	case denyAll != nil:
		return decide(denyAll, true)
	case allowAll != nil:
		return decide(allowAll, false)
	case allowNothing != nil:
		return decide(allowNothing, true)
	}
	return AuthzResolution{Level: "default"}
}

// firstObject keeps the first of two objects in (namespace, name) order, so
// that the answer does not depend on the context's listing order.
func firstObject(cur, next Object) Object {
	if cur == nil {
		return next
	}
	cns, cname := objKey(cur)
	nns, nname := objKey(next)
	if nns+"/"+nname < cns+"/"+cname {
		return next
	}
	return cur
}

// WorkloadMeshMode returns how the pods an object runs take part in the mesh
// (ModeSidecar, ModeAmbient, ModeNone or ModeUnknown), as the rules decide
// it, and whether the object is a top-level workload: an object with a pod
// template, or a Pod that no controller owns (its controller counts
// instead). A running Pod (postInjection) counts as sidecar only with an
// istio-proxy container, whatever its namespace asks for.
func (e *Engine) WorkloadMeshMode(ctx Context, obj Object, defaultNamespace string, postInjection bool) (string, bool) {
	apiVersion, _ := obj["apiVersion"].(string)
	kind, _ := obj["kind"].(string)
	info, ok := LookupKind(schema.GroupKind{Group: apiGroup(apiVersion), Kind: kind})
	if !ok || !info.HasPod() {
		return "", false
	}
	meta := mapAt(obj, "metadata")
	if kind == "Pod" && info.Group == "" {
		for _, o := range listAt(meta, "ownerReferences") {
			if boolAt(asMap(o), "controller") {
				return "", false
			}
		}
	}
	tmpl := obj
	for _, p := range info.PodTemplate {
		tmpl = mapAt(tmpl, p)
	}
	if tmpl == nil {
		// No pod template (an Argo Rollout with spec.workloadRef): the
		// workload it refers to counts instead.
		return "", false
	}
	tmeta, spec := mapAt(tmpl, "metadata"), mapAt(tmpl, "spec")
	if ctx == nil {
		ctx = emptyContext{}
	}
	nsName := str(meta, "namespace")
	if nsName == "" {
		nsName = defaultNamespace
	}
	ns, known := ctx.Namespace(nsName)
	if !known {
		ns = Namespace{Name: nsName}
	}
	labels, annotations := stringMap(tmeta["labels"]), stringMap(tmeta["annotations"])
	st := &engine{cfg: e.cfg, ctx: ctx, eng: e}
	mode := podMode(ns, known, labels, annotations, boolAt(spec, "hostNetwork"), e.cfg, st.istioVersionFor(injectingRevision(ns, labels)))
	if postInjection && kind == "Pod" && mode == ModeSidecar {
		hasProxy := false
		for _, f := range []string{"containers", "initContainers"} {
			for _, c := range listAt(spec, f) {
				hasProxy = hasProxy || str(asMap(c), "name") == "istio-proxy"
			}
		}
		if !hasProxy {
			mode = ModeNone
		}
	}
	return mode, true
}
