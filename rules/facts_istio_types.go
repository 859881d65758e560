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

// RequestAuthenticationFacts are the facts of a RequestAuthentication.
type RequestAuthenticationFacts struct {
	// MESH0030: ALLOW policies cover its workloads and no ALLOW rule that may apply to them admits a request without
	// a request principal, or a DENY on `notRequestPrincipals: ["*"]` covers them; policies come from its namespace
	// and the root namespace, where a selector matches in every namespace; `istio.io/dry-run` policies do not count;
	// a `when` on `request.auth.principal`, `.audiences`, `.presenter` or `.claims[…]` requires a token.
	TokenRequired bool `json:"tokenRequired"`
	// How many enforced ALLOW policies cover every workload it selects.
	AllowPoliciesCovering float64 `json:"allowPoliciesCovering"`
	// The ALLOW rules that may apply to its workloads and admit a request without a token, e.g. `ALLOW policy
	// "api/orders" spec.rules[1]`.
	TokenlessAllowRules []string `json:"tokenlessAllowRules"`
	// What it applies to, as for AuthorizationPolicy (without the universal-selector reading).
	Target string `json:"target"`
	// MESH0031: each jwtRule whose keys are fetched over HTTP: a `jwksUri`, or its CRD alias `jwks_uri`, with scheme
	// `http` in any case, or neither `jwksUri` nor `jwks` with an `http://` issuer, from which istiod discovers the
	// keys through `/.well-known/openid-configuration`.
	JwksPlaintext []string `json:"jwksPlaintext"`
	// MESH0032: each `forwardOriginalToken: true`, `outputPayloadToHeader` and non-empty `fromParams`, e.g.
	// `spec.jwtRules[0] (issuer "testing@secure.istio.io") sets forwardOriginalToken, so the application receives the
	// bearer token`.
	TokenLeaks []string `json:"tokenLeaks"`
}

var raFactsPool = sync.Pool{New: func() any { return new(RequestAuthenticationFacts) }}

// putRequestAuthenticationFacts empties f, keeping its list arrays, and
// returns it to the pool.
func putRequestAuthenticationFacts(f *RequestAuthenticationFacts) {
	*f = RequestAuthenticationFacts{
		TokenlessAllowRules: clearStrings(f.TokenlessAllowRules), JwksPlaintext: clearStrings(f.JwksPlaintext),
		TokenLeaks: clearStrings(f.TokenLeaks),
	}
	raFactsPool.Put(f)
}

// Map returns the facts as the policies see them.
func (f *RequestAuthenticationFacts) Map() map[string]any {
	return map[string]any{
		"tokenRequired": f.TokenRequired, "allowPoliciesCovering": f.AllowPoliciesCovering,
		"tokenlessAllowRules": anySlice(f.TokenlessAllowRules), "target": f.Target,
		"jwksPlaintext": anySlice(f.JwksPlaintext), "tokenLeaks": anySlice(f.TokenLeaks),
	}
}

// DestinationRuleFacts are the facts of a DestinationRule.
type DestinationRuleFacts struct {
	// `spec.host` as written.
	Host string `json:"host"`
	// The one namespace an in-mesh host names: the DR's own for a short name, `<ns>` for `<svc>.<ns>.svc[.<domain>]`
	// and for wildcards that cover services of `<ns>` only (`*.<ns>.svc.<domain>`, `*api.<ns>.svc.<domain>`); `""` for
	// mesh wildcards, wildcards covering several namespaces (`*prod.svc.<domain>`) and other hosts; for a host in-mesh
	// through a ServiceEntry (`inMeshVia`), the namespace of the workloads it sends to.
	HostNamespace string `json:"hostNamespace"`
	// That namespace's mode as for `$namespace.mode`, `unknown` when the context does not know it (a system namespace
	// is always `none`); `""` without a `hostNamespace`.
	HostNamespaceMode string `json:"hostNamespaceMode"`
	// Why a host that is in-mesh by its spelling reaches no sidecar (`rules/hostmesh.go`): its namespace's mode is
	// `none`, e.g. `namespace "legacy" is outside the mesh`, or it is a control-plane Service: `istiod` or
	// `istiod-<revision>` in the root or a control-plane namespace, or `kubernetes.default`, e.g. `Service
	// istiod.istio-system is Istio's control plane, which runs without a sidecar and terminates its own TLS`; `inMesh`
	// is then false; `""` otherwise, an unknown namespace included.
	OutsideMesh string `json:"outsideMesh"`
	// RULES.md 2.2; an IP address is never in-mesh, and `name.namespace` is taken literally, as Istio does; a host
	// starting with `*` is matched as Istio's `host.Name.Matches` does, the rest being a plain suffix with or without
	// a dot, so it is in-mesh when some `<svc>.<ns>.svc.<clusterDomain>` or `<svc>.<ns>.svc` name ends with it:
	// `*svc.cluster.local`, `*local`, `*prod.svc.cluster.local`; a host that is not in-mesh by its spelling is when a
	// ServiceEntry of the context sends it to in-mesh workloads (`inMeshVia`).
	InMesh bool `json:"inMesh"`
	// For a host in-mesh through a ServiceEntry, ` (<why>)` naming it, for the message; else `""`.
	InMeshVia string `json:"inMeshVia"`
	// The wildcard covers every `<svc>.<ns>.svc.<clusterDomain>` name: `*`, `*l`, `*local`, `*.cluster.local`,
	// `*svc.cluster.local`, ….
	MeshWildcard bool `json:"meshWildcard"`
	// `exportTo` is absent or every entry is `*`.
	ExportedToAll bool `json:"exportedToAll"`
	// The DestinationRule is in the root namespace.
	InRoot bool `json:"inRoot"`
	// Each of the four places TLS can be set that has a `tls` block.
	TLS []DestinationRuleTLSFacts `json:"tls"`
}

// DestinationRuleTLSFacts: a TLS setting of a DestinationRule.
type DestinationRuleTLSFacts struct {
	// Where, e.g. `spec.subsets[v1].trafficPolicy.tls` or `spec.trafficPolicy.portLevelSettings[port 443].tls`.
	At string `json:"at"`
	// `mode` as written, `""` when the block has none.
	Mode string `json:"mode"`
	// The mode Istio uses: `mode`, or `DISABLE` (the enum's zero value, used instead of auto-mTLS) without one.
	EffectiveMode string `json:"effectiveMode"`
	// `<at> sets mode <mode>` or `<at> omits mode (DISABLE)`.
	Text string `json:"text"`
	// `insecureSkipVerify` is true.
	InsecureSkipVerify bool `json:"insecureSkipVerify"`
	// MESH0013: why a SIMPLE or MUTUAL block without `insecureSkipVerify` pins no CA as Istio builds it: no
	// `caCertificates` (the proxy trusts its OS bundle) and no `credentialName`, or a `credentialName` naming a Secret
	// on a DestinationRule without `workloadSelector` (gateways use the Secret, sidecars drop the block and send
	// without TLS); a `configmap://` credentialName counts as a CA; `""` otherwise.
	NoCA string `json:"noCA"`
}

var drFactsPool = sync.Pool{New: func() any { return new(DestinationRuleFacts) }}

// putDestinationRuleFacts empties f, keeping its tls array, and returns it
// to the pool.
func putDestinationRuleFacts(f *DestinationRuleFacts) {
	*f = DestinationRuleFacts{TLS: clearList(f.TLS)}
	drFactsPool.Put(f)
}

// Map returns the facts as the policies see them.
func (f *DestinationRuleFacts) Map() map[string]any {
	tls := make([]any, len(f.TLS))
	for i, t := range f.TLS {
		tls[i] = map[string]any{
			"at": t.At, "mode": t.Mode, "effectiveMode": t.EffectiveMode, "text": t.Text,
			"insecureSkipVerify": t.InsecureSkipVerify, "noCA": t.NoCA,
		}
	}
	return map[string]any{
		"host": f.Host, "hostNamespace": f.HostNamespace, "hostNamespaceMode": f.HostNamespaceMode,
		"outsideMesh": f.OutsideMesh, "inMesh": f.InMesh, "inMeshVia": f.InMeshVia, "meshWildcard": f.MeshWildcard,
		"exportedToAll": f.ExportedToAll, "inRoot": f.InRoot, "tls": tls,
	}
}

// ServiceEntryFacts are the facts of a ServiceEntry.
type ServiceEntryFacts struct {
	// `spec.resolution` as written.
	Resolution string `json:"resolution"`
	// `spec.hosts`, each as text.
	Hosts []string `json:"hosts"`
	// MESH0066: for `DNS` and `DNS_ROUND_ROBIN` entries, each `spec.endpoints[].address` that is the DNS name of an
	// in-mesh Service, `<service>.<namespace>.svc` with or without the cluster domain and a trailing dot.
	InMeshDNSAliases []ServiceEntryAliasFacts `json:"inMeshDNSAliases"`
	// MESH0010, at admission only (offline the DestinationRule carries the finding): when the ServiceEntry sends its
	// hosts to in-mesh workloads (as for the DestinationRule's `inMeshVia`), each TLS setting of a DestinationRule of
	// the context whose host is not in-mesh by its spelling and names or covers one of the ServiceEntry's hosts, that
	// disables TLS (DISABLE, or a block without a mode).
	AliasedTLSDisable []AliasedTLSFacts `json:"aliasedTLSDisable"`
	// MESH0011, the same for settings that originate SIMPLE or MUTUAL TLS, unless the in-mesh Service's namespace is
	// known to be outside the mesh.
	AliasedTLSOrigination []AliasedTLSFacts `json:"aliasedTLSOrigination"`
}

// ServiceEntryAliasFacts: a ServiceEntry endpoint that is an in-mesh Service's DNS name.
type ServiceEntryAliasFacts struct {
	// The address, lower-case, without a trailing dot.
	Address string `json:"address"`
	// E.g. `spec.endpoints[0].address "reviews.bookinfo.svc.cluster.local" is the in-mesh Service of namespace
	// "bookinfo"`.
	Text string `json:"text"`
}

// AliasedTLSFacts: a DestinationRule's TLS setting towards a host a ServiceEntry sends to in-mesh workloads.
type AliasedTLSFacts struct {
	// E.g. `DestinationRule shop/reviews-alias: spec.trafficPolicy.tls sets mode DISABLE towards
	// "reviews-alias.example.com", which this ServiceEntry sends to in-mesh "reviews.shop.svc.cluster.local"`.
	Text string `json:"text"`
}

var seFactsPool = sync.Pool{New: func() any { return new(ServiceEntryFacts) }}

// putServiceEntryFacts empties f, keeping its list arrays, and returns it
// to the pool.
func putServiceEntryFacts(f *ServiceEntryFacts) {
	*f = ServiceEntryFacts{
		Hosts: clearStrings(f.Hosts), InMeshDNSAliases: clearList(f.InMeshDNSAliases),
		AliasedTLSDisable: clearList(f.AliasedTLSDisable), AliasedTLSOrigination: clearList(f.AliasedTLSOrigination),
	}
	seFactsPool.Put(f)
}

// Map returns the facts as the policies see them.
func (f *ServiceEntryFacts) Map() map[string]any {
	aliases := make([]any, len(f.InMeshDNSAliases))
	for i, a := range f.InMeshDNSAliases {
		aliases[i] = map[string]any{"address": a.Address, "text": a.Text}
	}
	return map[string]any{
		"resolution": f.Resolution, "hosts": anySlice(f.Hosts), "inMeshDNSAliases": aliases,
		"aliasedTLSDisable": aliasedTLSList(f.AliasedTLSDisable), "aliasedTLSOrigination": aliasedTLSList(f.AliasedTLSOrigination),
	}
}

func aliasedTLSList(l []AliasedTLSFacts) []any {
	out := make([]any, len(l))
	for i, a := range l {
		out[i] = map[string]any{"text": a.Text}
	}
	return out
}

// EnvoyFilterFacts are the facts of an EnvoyFilter. Filter names match exactly, as Istio matches them.
type EnvoyFilterFacts struct {
	// MESH0040: the EnvoyFilter is in the root namespace or an admin-allowed one (`--envoyfilter-namespaces`).
	AllowedNamespace bool `json:"allowedNamespace"`
	// MESH0041: patches that remove, replace or weaken Istio's security filters, transport sockets or per-route filter
	// settings, or insert Lua or Wasm ahead of authorization.
	Weakens []EnvoyPatchFacts `json:"weakens"`
	// MESH0042: patches that add listeners, filter chains or clusters, patch the bootstrap, or carry inline Lua or
	// Wasm code.
	HighRisk []EnvoyPatchFacts `json:"highRisk"`
}

// EnvoyPatchFacts: what one configPatch does.
type EnvoyPatchFacts struct {
	// The `configPatches` index.
	Patch float64 `json:"patch"`
	// E.g. `configPatches[0] (HTTP_FILTER REMOVE at SIDECAR_INBOUND) removes the HTTP filter
	// "envoy.filters.http.rbac", which enforces AuthorizationPolicy`.
	Text string `json:"text"`
}

var efFactsPool = sync.Pool{New: func() any { return new(EnvoyFilterFacts) }}

// putEnvoyFilterFacts empties f, keeping its list arrays, and returns it to
// the pool.
func putEnvoyFilterFacts(f *EnvoyFilterFacts) {
	*f = EnvoyFilterFacts{Weakens: clearList(f.Weakens), HighRisk: clearList(f.HighRisk)}
	efFactsPool.Put(f)
}

// Map returns the facts as the policies see them.
func (f *EnvoyFilterFacts) Map() map[string]any {
	return map[string]any{
		"allowedNamespace": f.AllowedNamespace, "weakens": envoyPatchList(f.Weakens), "highRisk": envoyPatchList(f.HighRisk),
	}
}

func envoyPatchList(l []EnvoyPatchFacts) []any {
	out := make([]any, len(l))
	for i, p := range l {
		out[i] = map[string]any{"patch": p.Patch, "text": p.Text}
	}
	return out
}

// ExtensionFacts are the facts of a WasmPlugin or TrafficExtension (MESH0044).
type ExtensionFacts struct {
	// As for EnvoyFilter: the root namespace or an admin-allowed one.
	AllowedNamespace bool `json:"allowedNamespace"`
	// `spec.phase` as written, `""` when absent (the control plane then puts the filter last, before the router).
	Phase string `json:"phase"`
	// Phase `AUTHN` or `AUTHZ`: the filter runs before Istio's authentication or authorization filters.
	BeforeAuthz bool `json:"beforeAuthz"`
	// What runs: `Wasm module "<url>"`, `network Wasm module "<url>"` for `type: NETWORK`, or `Lua code`.
	Filter string `json:"filter"`
	// What it applies to: `every workload in namespace "shop"`, `every workload in the mesh` in the root namespace,
	// `workloads app=web`, `targetRefs Gateway/public`.
	Target string `json:"target"`
	// The sentence for messages, e.g. `WasmPlugin runs Wasm module "oci://…" at phase AUTHN (before Istio's
	// authentication filters) for workloads app=web`.
	Text string `json:"text"`
}

// Map returns the facts as the policies see them.
func (f *ExtensionFacts) Map() map[string]any {
	return map[string]any{
		"allowedNamespace": f.AllowedNamespace, "phase": f.Phase, "beforeAuthz": f.BeforeAuthz, "filter": f.Filter,
		"target": f.Target, "text": f.Text,
	}
}
