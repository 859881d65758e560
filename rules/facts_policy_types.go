package rules

import "sync"

// The $facts of NetworkPolicies and AuthorizationPolicies, typed as the
// workload facts are (facts_workload_types.go): json tags are the names
// policies read, Map the map they see, and their tables in catalog/README.md
// are generated from the doc comments. Both are pooled with their list
// arrays, so the typed lists cost no allocation beyond the ones Map builds.

// NetworkPolicyFacts are the facts of a NetworkPolicy, judged by what a rule admits, not how it is spelled (see
// `rules/netpol_sets.go`). A direction is in effect when `policyTypes` lists it or, when that is absent or empty,
// Ingress always and Egress if `egress` has rules.
type NetworkPolicyFacts struct {
	// The ingress rules (only when Ingress is in effect) that admit every source on every port. A rule admits every
	// port when `ports` is absent or empty or its TCP ranges cover 1-65535, an entry without a `port` meaning every
	// port of its protocol, TCP by default; every peer when `from` is absent or empty or its ipBlocks, excepts
	// subtracted, cover every IPv4 or every IPv6 address. The literal form is the path, e.g. `spec.ingress[0]`; other
	// spellings add the reason, e.g. `spec.ingress[0] (its ports carry no port number, so every port)`.
	IngressAllowAll []string `json:"ingressAllowAll"`
	// The same for egress rules (only when Egress is in effect), e.g. `spec.egress[1]`.
	EgressAllowAll []string `json:"egressAllowAll"`
	// `podSelector` absent, empty, or made only of `NotIn` and `DoesNotExist` requirements.
	SelectsAllPods bool `json:"selectsAllPods"`
	// `ingress` when `podSelector.matchLabels` has `istio: ingressgateway`/`eastwestgateway`,
	// `app: istio-ingressgateway`/`istio-eastwestgateway` or a `gateway.networking.k8s.io/gateway-name`; `egress` for
	// `istio: egressgateway` or `app: istio-egressgateway`; else `""`.
	SelectsGateway string `json:"selectsGateway"`
	// Ingress (in effect) peers whose `ipBlock.cidr` has a /0 prefix, `except` or not, e.g.
	// `spec.ingress[0].from[1].ipBlock.cidr 0.0.0.0/0`; without one, the ipBlocks of the direction whose union covers
	// every IPv4 or IPv6 address, as one item, e.g. `spec.ingress[0].from[0].ipBlock 0.0.0.0/1 with
	// spec.ingress[0].from[1].ipBlock 128.0.0.0/1 (together every IPv4 address)`.
	IngressAnyIP []string `json:"ingressAnyIP"`
	// The same for egress peers (in effect).
	EgressAnyIP []string `json:"egressAnyIP"`
	// Ingress (in effect) peers whose `namespaceSelector` matches every namespace (empty, `kubernetes.io/metadata.name
	// Exists`, any `NotIn`, `DoesNotExist` on another key) with a `podSelector` that is absent or matches every pod;
	// the literal form is the path, e.g. `spec.ingress[0].from[0]`, others add the reason.
	IngressAllNamespaces []string `json:"ingressAllNamespaces"`
	// MESH0214: each ingress (in effect) `ports` entry whose numeric `port`, or `port..endPort`, covers 15000, 15001,
	// 15004, 15006 or 15053, and each named port that resolves to one of them on a pod of the context the policy
	// selects; entries without a port are not reported, like a rule without ports.
	IngressEnvoyInternalPorts []NetpolEnvoyPortFacts `json:"ingressEnvoyInternalPorts"`
	// Ingress is in effect.
	IngressOn bool `json:"ingressOn"`
	// MESH0216: for a policy whose `podSelector.matchLabels` has `istio: ingressgateway`, `app: istio-ingressgateway`
	// or a `gateway.networking.k8s.io/gateway-name`, with Ingress in effect: the ingress rules letting sources outside
	// the cluster (no `from` or an `ipBlock` peer) reach a pod port other than the serving ports 80, 443, 8080, 8443
	// and 15021; named ports are not judged.
	IngressGatewayOpen []GatewayOpenFacts `json:"ingressGatewayOpen"`
	ManagedPolicy
}

// NetpolEnvoyPortFacts: an ingress port entry that opens one of Envoy's pod-internal ports.
type NetpolEnvoyPortFacts struct {
	// The entry, e.g. `spec.ingress[0].ports[1]`.
	At string `json:"at"`
	// E.g. `spec.ingress[0].ports[1] opens ports 15000-15010, covering 15000 (Envoy admin), …`, or for a named port
	// `spec.ingress[0].ports[0] opens port "admin", which is containerPort 15000 of pod "web-1" (Envoy admin)`.
	Text string `json:"text"`
}

// GatewayOpenFacts: an ingress rule that opens an ingress gateway beyond its serving ports.
type GatewayOpenFacts struct {
	// E.g. `spec.ingress[0] allows any source (no from) to port 15000, beyond the serving ports`.
	Text string `json:"text"`
}

// ManagedPolicy: for MESH0215 (a NetworkPolicy the default-deny controller manages) and MESH0025 (an
// AuthorizationPolicy), what the request does to a policy meshguard manages.
type ManagedPolicy struct {
	// The policy as it was before the request, or the deleted one, carries `meshguard.io/managed: "true"`; false on
	// CREATE.
	Managed bool `json:"managed"`
	// It also carries `meshguard.io/quarantine`: a quarantine's policy, which meshguard admins may remove.
	QuarantinePolicy bool `json:"quarantinePolicy"`
	// What the request does to it: `deletes it`, `changes its spec`, a change of any `meshguard.io/` label or
	// annotation or of `app.kubernetes.io/managed-by`, e.g. `removes label meshguard.io/managed="true"`, `changes its
	// owner references`.
	Tamper []string `json:"tamper"`
	// `meshguard` for the controller's own username, `namespace-deletion` for the namespace controller or garbage
	// collector deleting it while the namespace terminates, else `""`.
	Actor string `json:"actor"`
	// Why such a system actor is not trusted, e.g. ` (namespace "shop" is not terminating)`, for the message.
	ActorNote string `json:"actorNote"`
}

// put writes the managed-policy facts into m.
func (f *ManagedPolicy) put(m map[string]any) {
	m["managed"], m["quarantinePolicy"], m["tamper"] = f.Managed, f.QuarantinePolicy, anySlice(f.Tamper)
	m["actor"], m["actorNote"] = f.Actor, f.ActorNote
}

// reset empties f, keeping its tamper array.
func (f *ManagedPolicy) reset() {
	t := f.Tamper
	clear(t[:cap(t)])
	*f = ManagedPolicy{Tamper: t[:0]}
}

var npFactsPool = sync.Pool{New: func() any { return new(NetworkPolicyFacts) }}

// putNetworkPolicyFacts empties f, keeping its list arrays, and returns it
// to the pool.
func putNetworkPolicyFacts(f *NetworkPolicyFacts) {
	f.ManagedPolicy.reset()
	*f = NetworkPolicyFacts{
		IngressAllowAll: clearStrings(f.IngressAllowAll), EgressAllowAll: clearStrings(f.EgressAllowAll),
		IngressAnyIP: clearStrings(f.IngressAnyIP), EgressAnyIP: clearStrings(f.EgressAnyIP),
		IngressAllNamespaces:      clearStrings(f.IngressAllNamespaces),
		IngressEnvoyInternalPorts: clearList(f.IngressEnvoyInternalPorts), IngressGatewayOpen: clearList(f.IngressGatewayOpen),
		ManagedPolicy: f.ManagedPolicy,
	}
	npFactsPool.Put(f)
}

// clearStrings empties a pooled list, keeping its array.
func clearStrings(s []string) []string { return clearList(s) }

func clearList[T any](s []T) []T {
	clear(s[:cap(s)])
	return s[:0]
}

// Map returns the facts as the policies see them.
func (f *NetworkPolicyFacts) Map() map[string]any {
	ports := make([]any, len(f.IngressEnvoyInternalPorts))
	for i, p := range f.IngressEnvoyInternalPorts {
		ports[i] = map[string]any{"at": p.At, "text": p.Text}
	}
	open := make([]any, len(f.IngressGatewayOpen))
	for i, o := range f.IngressGatewayOpen {
		open[i] = map[string]any{"text": o.Text}
	}
	m := make(map[string]any, 15)
	m["ingressAllowAll"], m["egressAllowAll"] = anySlice(f.IngressAllowAll), anySlice(f.EgressAllowAll)
	m["selectsAllPods"], m["selectsGateway"] = f.SelectsAllPods, f.SelectsGateway
	m["ingressAnyIP"], m["egressAnyIP"] = anySlice(f.IngressAnyIP), anySlice(f.EgressAnyIP)
	m["ingressAllNamespaces"], m["ingressEnvoyInternalPorts"] = anySlice(f.IngressAllNamespaces), ports
	m["ingressOn"], m["ingressGatewayOpen"] = f.IngressOn, open
	f.ManagedPolicy.put(m)
	return m
}

// AuthorizationPolicyFacts are the facts of an AuthorizationPolicy.
type AuthorizationPolicyFacts struct {
	// MESH0024: annotation `istio.io/dry-run` parses as true (as `strconv.ParseBool`), so the policy is not enforced.
	DryRun bool `json:"dryRun"`
	// The annotation's value as written, `""` when absent.
	DryRunRaw string `json:"dryRunRaw"`
	// `spec.action`, ALLOW when absent.
	Action string `json:"action"`
	// `mesh`, `namespace` or `workload`.
	Scope string `json:"scope"`
	// The parenthesis of `target` when a selector reads as none, `""` otherwise.
	ScopeReason string `json:"scopeReason"`
	// What it applies to, for messages: `every workload in the mesh`, `every workload in namespace "shop"`,
	// `workloads app=web`, `workloads app=web in every namespace` for a root-namespace selector, `targetRefs
	// Gateway/public`; a selector made only of labels the injector puts on every injected pod,
	// `security.istio.io/tlsMode: istio`, reads as no selector, e.g. `every workload in namespace "shop" (selector
	// security.istio.io/tlsMode=istio selects every injected pod)`, and gives `scope` `namespace`, or `mesh` in the
	// root namespace.
	Target string `json:"target"`
	// Paths of rules that match every request (RULES.md 2.3 `ruleMatchesAny`), except that `from` and `to` entries
	// are alternatives as in Istio: one unconstrained source, and one unconstrained operation, suffice; judged by what
	// the values admit: `ipBlocks`/`remoteIpBlocks` whose CIDRs together cover every IPv4 or every IPv6 address (plain
	// addresses are /32 or /128), `ports` naming every port, `not*` operation lists that match no request (`notPaths`
	// not starting with `/`, `notMethods` that are not HTTP tokens, `notHosts` with characters a Host cannot hold,
	// `notPorts` `["0"]`), `when` values on `source.ip`, `remote.ip`, `destination.ip` covering every address or on
	// `destination.port` naming every port; a `notIpBlocks` or IP `notValues` list that excludes every address
	// matches nothing.
	MatchAllRules []string `json:"matchAllRules"`
	// For those rules, each list that matches everything without reading so, e.g.
	// `spec.rules[0].from[0].source.ipBlocks ["0.0.0.0/1","128.0.0.0/1"] cover every IPv4 address` or
	// `spec.rules[0].to[0].operation.notPaths ["nothing"] match no request path`.
	MatchAllNotes []string `json:"matchAllNotes"`
	// MESH0022: each non-empty `not*` field of a source, operation or `when` condition not paired with a positive
	// list of the same field that narrows it (a list of only `*`, `/*`, `0.0.0.0/0` or `::/0`, or one that matches
	// everything as above, does not), e.g. `spec.rules[0].to[0].operation.notPaths ["/admin"] without paths`; `not*`
	// lists that match no request are left out.
	NegativeMatches []string `json:"negativeMatches"`
	// MESH0021, ALLOW only: rules that admit every authenticated workload and nothing narrower: some source sets only
	// identity wildcards (`principals`, `namespaces` or `trustDomains` `"*"`, `principals` covering a trust domain
	// such as `cluster.local/*`; catch-all ipBlocks allowed) or is unconstrained, some operation is unconstrained,
	// every condition is unconstrained or `source.principal`/`source.namespace` `"*"`, and some identity wildcard is
	// set; rules that match every request are left to `matchAllRules`; e.g. `spec.rules[0] (from[0].source.principals
	// ["*"])`.
	AnyPeerRules []string `json:"anyPeerRules"`
	// MESH0023, DENY only: each operation's `paths` or `hosts` list that does not match everything and has no
	// `notPaths`/`notHosts` beside it, e.g. `spec.rules[0].to[0].operation.paths ["/headers"]`.
	DenyPositive []string `json:"denyPositive"`
	ManagedPolicy
}

var apFactsPool = sync.Pool{New: func() any { return new(AuthorizationPolicyFacts) }}

// putAuthorizationPolicyFacts empties f, keeping its list arrays, and
// returns it to the pool.
func putAuthorizationPolicyFacts(f *AuthorizationPolicyFacts) {
	f.ManagedPolicy.reset()
	*f = AuthorizationPolicyFacts{
		MatchAllRules: clearStrings(f.MatchAllRules), MatchAllNotes: clearStrings(f.MatchAllNotes),
		NegativeMatches: clearStrings(f.NegativeMatches), AnyPeerRules: clearStrings(f.AnyPeerRules),
		DenyPositive: clearStrings(f.DenyPositive), ManagedPolicy: f.ManagedPolicy,
	}
	apFactsPool.Put(f)
}

// Map returns the facts as the policies see them.
func (f *AuthorizationPolicyFacts) Map() map[string]any {
	m := make(map[string]any, 16)
	m["dryRun"], m["dryRunRaw"], m["action"], m["scope"] = f.DryRun, f.DryRunRaw, f.Action, f.Scope
	m["scopeReason"], m["target"] = f.ScopeReason, f.Target
	m["matchAllRules"], m["matchAllNotes"] = anySlice(f.MatchAllRules), anySlice(f.MatchAllNotes)
	m["negativeMatches"], m["anyPeerRules"] = anySlice(f.NegativeMatches), anySlice(f.AnyPeerRules)
	m["denyPositive"] = anySlice(f.DenyPositive)
	f.ManagedPolicy.put(m)
	return m
}
