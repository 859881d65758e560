package rules

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
