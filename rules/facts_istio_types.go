package rules

import "sync"

// The $facts of Istio security resources, typed as the workload facts are
// (facts_workload_types.go): json tags are the names policies read, Map the
// map they see, and their tables in catalog/README.md are generated from the
// doc comments.

// PeerAuthenticationFacts are the facts of a PeerAuthentication.
type PeerAuthenticationFacts struct {
	// `mesh`, `namespace`, `workload`, or `ignored` (a policy with a selector in the root namespace).
	Scope string `json:"scope"`
	// `spec.mtls.mode`, `UNSET` when absent.
	Mode string `json:"mode"`
	// The mode its workloads (or namespace, or mesh) get after inheritance.
	EffectiveMode string `json:"effectiveMode"`
	// The namespace's effective mode.
	NamespaceMode string `json:"namespaceMode"`
	// The mesh's effective mode.
	MeshMode string `json:"meshMode"`
	// A mesh-wide policy exists.
	MeshPolicy bool `json:"meshPolicy"`
	// PERMISSIVE and DISABLE `portLevelMtls` entries, by port (Istio applies `portLevelMtls` only at workload
	// scope).
	WeakPorts []WeakPortFacts `json:"weakPorts"`
	// The selector's labels as `app=web,tier=db`, sorted; empty without one.
	Selector string `json:"selector"`
	// MESH0007: the other PeerAuthentications of its namespace Istio weighs against it, as
	// `ComposePeerAuthentication` does: at mesh or namespace scope every other one without a selector, e.g.
	// `PeerAuthentication "migration" is also namespace-wide in namespace "foo", and Istio applies only the older of
	// the two, "default"`; at workload scope every one whose `matchLabels` may select a common pod (no label required
	// with two values), e.g. `PeerAuthentication "reviews" (selector app=reviews) may select the same pods, which get
	// only the older of the two, "reviews"`; the winner is the oldest by `creationTimestamp`, or `whichever is created
	// first` for manifests without one; empty at `ignored` scope.
	Conflicts []string `json:"conflicts"`

	conflictsBoxed []any // Conflicts as built, boxed once
}

// WeakPortFacts: a PERMISSIVE or DISABLE port-level mTLS exception.
type WeakPortFacts struct {
	// The port, as written.
	Port string `json:"port"`
	// PERMISSIVE or DISABLE.
	Mode string `json:"mode"`
	// The port is in `--allowed-excluded-inbound-ports`.
	Allowed bool `json:"allowed"`
	// The webhook configuration and Service (its name, in the same namespace), e.g. `shop-validator via Service
	// hooks`, when a PERMISSIVE workload exception is exactly the pod port the API server calls as an admission webhook
	// (resolved from the webhook configurations and Services in the context); else `""`.
	Webhook string `json:"webhook"`
	// E.g. `port 8080 is DISABLE`.
	Text string `json:"text"`
}

// paFactsPool recycles PeerAuthenticationFacts with their weakPorts array,
// so the typed list costs no allocation beyond the maps Map builds.
var paFactsPool = sync.Pool{New: func() any { return new(PeerAuthenticationFacts) }}

// putPeerAuthenticationFacts empties f, keeping its weakPorts array, and
// returns it to the pool.
func putPeerAuthenticationFacts(f *PeerAuthenticationFacts) {
	ports := f.WeakPorts
	clear(ports[:cap(ports)])
	*f = PeerAuthenticationFacts{WeakPorts: ports[:0]}
	paFactsPool.Put(f)
}

// Map returns the facts as the policies see them.
func (f *PeerAuthenticationFacts) Map() map[string]any {
	ports := make([]any, len(f.WeakPorts))
	for i, p := range f.WeakPorts {
		ports[i] = map[string]any{"port": p.Port, "mode": p.Mode, "allowed": p.Allowed, "webhook": p.Webhook, "text": p.Text}
	}
	conflicts := f.conflictsBoxed
	if conflicts == nil {
		conflicts = anySlice(f.Conflicts)
	}
	return map[string]any{
		"scope": f.Scope, "mode": f.Mode, "effectiveMode": f.EffectiveMode, "namespaceMode": f.NamespaceMode,
		"meshMode": f.MeshMode, "meshPolicy": f.MeshPolicy, "weakPorts": ports, "selector": f.Selector,
		"conflicts": conflicts,
	}
}
