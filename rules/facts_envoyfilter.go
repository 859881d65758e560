package rules

import (
	"fmt"
	"sort"
	"strings"
	"unicode"
)

// EnvoyFilter facts (MESH0040-0043). Istio applies a configPatch to a
// generated filter only when the names match exactly
// (pilot/pkg/networking/core/envoyfilter/listener_patch.go at 1.28/1.29:
// networkFilterMatch, httpFilterMatch, listenerFilterMatch), so the rules
// compare names exactly too. A patch value is protobuf JSON, in which
// snake_case and lowerCamelCase field names are both accepted; values are
// read with their keys in snake_case.

// securityFilters are the filters through which Istio enforces
// AuthorizationPolicy, RequestAuthentication and mTLS, with what each does
// (pkg/wellknown, pilot/pkg/security/authz/builder/builder.go,
// pilot/pkg/security/model/authentication.go; istio_authn exists up to 1.23,
// istio.authn in older releases).
var securityHTTPFilters = map[string]string{
	"envoy.filters.http.rbac":      "which enforces AuthorizationPolicy",
	"envoy.filters.http.jwt_authn": "which validates RequestAuthentication JWTs",
	"envoy.filters.http.ext_authz": "which enforces CUSTOM AuthorizationPolicy",
	"istio_authn":                  "Istio's authentication filter (Istio 1.23 and earlier)",
	"istio.authn":                  "Istio's authentication filter (old releases)",
}

var securityNetworkFilters = map[string]string{
	"envoy.filters.network.rbac":      "which enforces AuthorizationPolicy on TCP",
	"envoy.filters.network.ext_authz": "which enforces CUSTOM AuthorizationPolicy on TCP",
}

const (
	hcmFilter          = "envoy.filters.network.http_connection_manager"
	tlsInspectorFilter = "envoy.filters.listener.tls_inspector"
	tlsTransportSocket = "envoy.transport_sockets.tls"
)

// envoyFilterFacts computes an EnvoyFilter's facts:
//
//   - allowedNamespace: the root namespace or an admin-allowed EnvoyFilter
//     namespace (MESH0040);
//   - weakens[]: patches that remove, replace or weaken Istio's security
//     filters or transport sockets, or put Lua or Wasm code ahead of
//     authorization (MESH0041);
//   - highRisk[]: patches that add listeners, filter chains or clusters,
//     patch the bootstrap, or carry inline Lua or Wasm code (MESH0042).
//
// Each item is {patch, text}; text names the patch index and what it does,
// e.g. `configPatches[0] (HTTP_FILTER REMOVE at SIDECAR_INBOUND) removes the
// HTTP filter "envoy.filters.http.rbac", which enforces AuthorizationPolicy`.
func (e *engine) envoyFilterFacts(obj Object, ns string) (map[string]any, error) {
	f := efFactsPool.Get().(*EnvoyFilterFacts)
	defer putEnvoyFilterFacts(f)
	if err := e.computeEnvoyFilterFacts(f, obj, ns); err != nil {
		return nil, err
	}
	return f.Map(), nil
}

// computeEnvoyFilterFacts fills f (empty, its list arrays maybe reused from
// the pool).
func (e *engine) computeEnvoyFilterFacts(f *EnvoyFilterFacts, obj Object, ns string) error {
	if err := checkType(obj, "", "spec", "object"); err != nil {
		return err
	}
	spec := mapAt(obj, "spec")
	if err := checkType(spec, "spec", "configPatches", "array"); err != nil {
		return err
	}
	for i, raw := range listAt(spec, "configPatches") {
		p, err := readEnvoyPatch(i, raw)
		if err != nil {
			return err
		}
		for _, t := range p.weakens() {
			f.Weakens = append(f.Weakens, EnvoyPatchFacts{Patch: float64(i), Text: p.prefix() + " " + t})
		}
		for _, t := range p.highRisk() {
			f.HighRisk = append(f.HighRisk, EnvoyPatchFacts{Patch: float64(i), Text: p.prefix() + " " + t})
		}
	}
	f.AllowedNamespace = e.envoyFilterNamespace(ns)
	return nil
}

// envoyPatch is one configPatch, read.
type envoyPatch struct {
	index                     int
	applyTo, op, written, ctx string
	netFilter, subFilter      string // match.listener.filterChain.filter(.subFilter).name
	listenerFilter            string
	value                     map[string]any // patch.value, keys in snake_case
}

func readEnvoyPatch(i int, raw any) (*envoyPatch, error) {
	path := fmt.Sprintf("spec.configPatches[%d]", i)
	cp, ok := raw.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s: expected object, got %s", path, jsonType(raw))
	}
	for _, f := range []struct{ k, t string }{{"applyTo", "string"}, {"match", "object"}, {"patch", "object"}} {
		if err := checkType(cp, path, f.k, f.t); err != nil {
			return nil, err
		}
	}
	match, patch := mapAt(cp, "match"), mapAt(cp, "patch")
	for _, f := range []struct {
		m       map[string]any
		p, k, t string
	}{
		{match, path + ".match", "context", "string"},
		{match, path + ".match", "listener", "object"},
		{mapAt(match, "listener"), path + ".match.listener", "filterChain", "object"},
		{mapAt(match, "listener"), path + ".match.listener", "listenerFilter", "string"},
		{mapAt(match, "listener", "filterChain"), path + ".match.listener.filterChain", "filter", "object"},
		{mapAt(match, "listener", "filterChain", "filter"), path + ".match.listener.filterChain.filter", "name", "string"},
		{mapAt(match, "listener", "filterChain", "filter"), path + ".match.listener.filterChain.filter", "subFilter", "object"},
		{mapAt(match, "listener", "filterChain", "filter", "subFilter"), path + ".match.listener.filterChain.filter.subFilter", "name", "string"},
		{patch, path + ".patch", "operation", "string"},
		{patch, path + ".patch", "value", "object"},
	} {
		if err := checkType(f.m, f.p, f.k, f.t); err != nil {
			return nil, err
		}
	}
	p := &envoyPatch{
		index:          i,
		applyTo:        str(cp, "applyTo"),
		written:        str(patch, "operation"),
		ctx:            str(match, "context"),
		netFilter:      str(mapAt(match, "listener", "filterChain", "filter"), "name"),
		subFilter:      str(mapAt(match, "listener", "filterChain", "filter", "subFilter"), "name"),
		listenerFilter: str(mapAt(match, "listener"), "listenerFilter"),
	}
	if p.ctx == "" {
		p.ctx = "ANY"
	}
	p.op = p.written
	// Istio turns INSERT_* into ADD except for filters and routes
	// (pilot/pkg/model/envoyfilter.go, convertToEnvoyFilterWrapper).
	if strings.HasPrefix(p.op, "INSERT_") {
		switch p.applyTo {
		case "HTTP_FILTER", "NETWORK_FILTER", "HTTP_ROUTE", "LISTENER_FILTER":
		default:
			p.op = "ADD"
		}
	}
	p.value, _ = snakeKeys(patch["value"]).(map[string]any)
	return p, nil
}

func (p *envoyPatch) prefix() string {
	return fmt.Sprintf("configPatches[%d] (%s %s at %s)", p.index, p.applyTo, p.written, p.ctx)
}

// weakens lists what a patch does to Istio's security enforcement (MESH0041).
func (p *envoyPatch) weakens() []string {
	var out []string
	verb := map[string]string{"REMOVE": "removes", "REPLACE": "replaces"}[p.op]
	switch p.applyTo {
	case "HTTP_FILTER":
		// A subFilter matches only inside the HTTP connection manager.
		if p.netFilter != hcmFilter {
			break
		}
		if what, ok := securityHTTPFilters[p.subFilter]; ok {
			if verb != "" {
				out = append(out, fmt.Sprintf("%s the HTTP filter %s, %s", verb, quote(p.subFilter), what))
			}
			if p.op == "MERGE" {
				out = append(out, mergeWeakens(p.subFilter, p.value)...)
			}
		}
		if t := p.codeBeforeAuthz(); t != "" {
			out = append(out, t)
		}
	case "NETWORK_FILTER":
		if what, ok := securityNetworkFilters[p.netFilter]; ok {
			if verb != "" {
				out = append(out, fmt.Sprintf("%s the network filter %s, %s", verb, quote(p.netFilter), what))
			}
			if p.op == "MERGE" {
				out = append(out, mergeWeakens(p.netFilter, p.value)...)
			}
		}
		if p.netFilter == hcmFilter && p.op == "REPLACE" {
			out = append(out, fmt.Sprintf("replaces the network filter %s with its own, dropping the HTTP filters Istio generates (AuthorizationPolicy and RequestAuthentication)", quote(hcmFilter)))
		}
		if t := p.codeBeforeAuthz(); t != "" {
			out = append(out, t)
		}
	case "LISTENER_FILTER":
		if p.listenerFilter == tlsInspectorFilter && verb != "" {
			out = append(out, fmt.Sprintf("%s the listener filter %s, which detects TLS so that the mTLS filter chains match", verb, quote(tlsInspectorFilter)))
		}
	case "FILTER_CHAIN":
		if p.op == "MERGE" {
			out = append(out, transportSocketWeakens("filter chain", mapAt(p.value, "transport_socket"))...)
		}
	case "CLUSTER":
		if p.op == "MERGE" {
			out = append(out, transportSocketWeakens("cluster", mapAt(p.value, "transport_socket"))...)
		}
	}
	// Per-route overrides can turn the security filters off for routes.
	switch p.applyTo {
	case "ROUTE_CONFIGURATION", "VIRTUAL_HOST", "HTTP_ROUTE":
		if p.op != "REMOVE" {
			out = append(out, perRouteOverrides(p.value)...)
		}
	}
	return out
}

// codeBeforeAuthz reports a Lua or Wasm filter inserted ahead of Istio's
// authorization on inbound or gateway listeners: it can answer or rewrite a
// request before AuthorizationPolicy runs.
func (p *envoyPatch) codeBeforeAuthz() string {
	if p.ctx != "SIDECAR_INBOUND" && p.ctx != "GATEWAY" && p.ctx != "ANY" {
		return ""
	}
	code := filterCode(p.value)
	if code == "" {
		return ""
	}
	name := p.subFilter
	security := securityHTTPFilters
	if p.applyTo == "NETWORK_FILTER" {
		name, security = p.netFilter, securityNetworkFilters
	} else if p.netFilter != hcmFilter && p.netFilter != "" {
		return ""
	}
	where := ""
	switch {
	case p.op == "INSERT_FIRST":
		where = "first, before Istio's authentication and authorization filters"
	case p.op == "INSERT_BEFORE" && name == "":
		// Without a filter match, INSERT_BEFORE inserts first.
		where = "first (INSERT_BEFORE without a filter match), before Istio's authentication and authorization filters"
	case p.op == "INSERT_BEFORE" && security[name] != "":
		where = "before " + quote(name)
	default:
		return ""
	}
	return fmt.Sprintf("inserts %s %s, where it can answer or rewrite requests before authorization", code, where)
}

// filterCode names the Lua or Wasm code a filter value runs, or "".
func filterCode(v map[string]any) string {
	name := str(v, "name")
	typ := str(mapAt(v, "typed_config"), "@type") + " " + str(mapAt(v, "typed_config"), "type_url")
	switch {
	case name == "envoy.filters.http.lua" || strings.Contains(typ, "filters.http.lua."):
		return "the Lua filter " + quote(name)
	case strings.Contains(typ, ".wasm.v3.Wasm") || strings.Contains(strings.ToLower(name), "wasm"):
		return "the Wasm filter " + quote(name)
	}
	return ""
}

// typedConfig returns a filter's typed_config, unwrapping a TypedStruct.
func typedConfig(v map[string]any) map[string]any {
	tc := mapAt(v, "typed_config")
	if strings.Contains(str(tc, "@type"), "TypedStruct") {
		return mapAt(tc, "value")
	}
	return tc
}

// mergeWeakens lists what a MERGE does to a security filter's config. Istio
// merges only a MERGE's name and typed_config (mergeHTTPFilter), so a
// `disabled: true` there has no effect, and proto3 merging does not
// overwrite with zero values (action ALLOW is 0). A `disabled: true` is
// still reported, as an attempt to turn the filter off.
func mergeWeakens(filter string, v map[string]any) []string {
	tc := typedConfig(v)
	var out []string
	if boolAt(v, "disabled") {
		out = append(out, fmt.Sprintf("merges disabled: true into %s (Istio 1.28/1.29 merge only a filter's name and typed_config and ignore it, but the patch means to turn the filter off)", quote(filter)))
	}
	switch {
	case strings.HasSuffix(filter, ".rbac"):
		rules := mapAt(tc, "rules")
		if str(rules, "action") == "LOG" {
			out = append(out, fmt.Sprintf("merges rules.action LOG into %s: AuthorizationPolicy is logged, not enforced", quote(filter)))
		}
		var names []string
		for name, pol := range mapAt(rules, "policies") {
			if anyMatch(listAt(asMap(pol), "permissions")) && anyMatch(listAt(asMap(pol), "principals")) {
				names = append(names, name)
			}
		}
		sort.Strings(names)
		for _, n := range names {
			out = append(out, fmt.Sprintf("merges the policy %s matching any request from anyone into %s", quote(n), quote(filter)))
		}
	case strings.HasSuffix(filter, ".ext_authz"):
		if boolAt(tc, "failure_mode_allow") {
			out = append(out, fmt.Sprintf("merges failure_mode_allow: true into %s: requests pass when the authorization service fails", quote(filter)))
		}
	case filter == "envoy.filters.http.jwt_authn":
		if len(mapAt(tc, "providers")) > 0 {
			out = append(out, fmt.Sprintf("merges JWT providers into %s: issuers and keys Istio's RequestAuthentications do not list", quote(filter)))
		}
	}
	return out
}

// anyMatch reports an RBAC permission or principal list holding `any: true`.
func anyMatch(l []any) bool {
	for _, x := range l {
		if boolAt(asMap(x), "any") {
			return true
		}
	}
	return false
}

// transportSocketWeakens reports a MERGE that replaces a filter chain's or
// cluster's TLS transport socket: Istio deep-merges only a socket of the same
// name and otherwise replaces it (mergeTransportSocketListener,
// mergeTransportSocketCluster).
func transportSocketWeakens(what string, ts map[string]any) []string {
	if ts == nil {
		return nil
	}
	name := str(ts, "name")
	if name != tlsTransportSocket {
		return []string{fmt.Sprintf("replaces the %s's transport socket with %s: Istio's TLS (mTLS) is dropped", what, quote(name))}
	}
	tc := typedConfig(ts)
	var out []string
	if v, ok := tc["require_client_certificate"].(bool); ok && !v && what == "filter chain" {
		out = append(out, "merges require_client_certificate: false into the filter chain's TLS, meaning to accept clients without a certificate (no mTLS; proto merging keeps a true Istio already set)")
	}
	if str(mapAt(tc, "common_tls_context", "validation_context"), "trust_chain_verification") == "ACCEPT_UNTRUSTED" {
		out = append(out, fmt.Sprintf("merges trust_chain_verification: ACCEPT_UNTRUSTED into the %s's TLS: peer certificates are not verified", what))
	}
	return out
}

// perRouteOverrides lists typed_per_filter_config entries, anywhere in a
// route patch, that override a security filter for routes.
func perRouteOverrides(v any) []string {
	var out []string
	var walk func(any)
	walk = func(x any) {
		switch t := x.(type) {
		case map[string]any:
			keys := make([]string, 0, len(t))
			for k := range t {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				if k != "typed_per_filter_config" {
					walk(t[k])
					continue
				}
				pf := asMap(t[k])
				names := make([]string, 0, len(pf))
				for n := range pf {
					names = append(names, n)
				}
				sort.Strings(names)
				for _, n := range names {
					what := securityHTTPFilters[n]
					if what == "" {
						continue
					}
					// FilterConfig{disabled}, ExtAuthzPerRoute{disabled},
					// jwt_authn PerRouteConfig{disabled}; an RBACPerRoute
					// without rbac disables RBAC, with rbac replaces it.
					cfg := asMap(pf[n])
					how, note := "", ""
					switch {
					case boolAt(cfg, "disabled") || boolAt(mapAt(cfg, "config"), "disabled"):
						how = "disables"
					case strings.Contains(str(cfg, "@type"), "RBACPerRoute") && cfg["rbac"] == nil:
						how, note = "disables", " (an RBACPerRoute without rbac)"
					case strings.Contains(str(cfg, "@type"), "RBACPerRoute"):
						how = "replaces Istio's policy of"
					default:
						continue
					}
					out = append(out, fmt.Sprintf("%s the HTTP filter %s (%s) per route in typed_per_filter_config%s", how, quote(n), strings.TrimPrefix(what, "which "), note))
				}
			}
		case []any:
			for _, e := range t {
				walk(e)
			}
		}
	}
	walk(v)
	return out
}

// highRisk lists what a patch adds outside Istio's generated configuration
// (MESH0042).
func (p *envoyPatch) highRisk() []string {
	var out []string
	switch {
	case p.applyTo == "LISTENER" && p.op == "ADD":
		out = append(out, fmt.Sprintf("adds the listener %s, which has none of Istio's authentication and authorization filters", quote(str(p.value, "name"))))
	case p.applyTo == "FILTER_CHAIN" && p.op == "ADD":
		out = append(out, "adds a filter chain, which has none of Istio's authentication and authorization filters")
	case p.applyTo == "CLUSTER" && p.op == "ADD":
		out = append(out, fmt.Sprintf("adds the cluster %s, a destination outside Istio's service registry and policies", quote(str(p.value, "name"))))
	case p.applyTo == "BOOTSTRAP":
		out = append(out, "patches the proxy bootstrap (admin interface, static listeners and clusters)")
	}
	out = append(out, inlineCode(p.value)...)
	return out
}

// inlineCode lists the Lua and Wasm code a patch value carries.
func inlineCode(v any) []string {
	var out []string
	var walk func(any)
	walk = func(x any) {
		switch t := x.(type) {
		case map[string]any:
			if _, ok := t["inline_code"].(string); ok {
				out = append(out, "runs inline Lua code (inline_code)")
			}
			if s := str(mapAt(t, "default_source_code"), "inline_string"); s != "" {
				out = append(out, "runs inline Lua code (default_source_code)")
			}
			if len(mapAt(t, "source_codes")) > 0 {
				out = append(out, "runs inline Lua code (source_codes)")
			}
			if s := str(mapAt(t, "source_code"), "inline_string"); s != "" {
				out = append(out, "runs inline Lua code (source_code)")
			}
			if vm := mapAt(t, "vm_config"); vm != nil {
				code := mapAt(vm, "code")
				local, remote := mapAt(code, "local"), mapAt(code, "remote")
				switch {
				case local != nil:
					out = append(out, "runs Wasm code from vm_config.code.local (not a verified image)")
				case strings.HasPrefix(strings.ToLower(str(mapAt(remote, "http_uri"), "uri")), "http://"):
					out = append(out, fmt.Sprintf("loads Wasm code over plaintext HTTP from %s", quote(str(mapAt(remote, "http_uri"), "uri"))))
				case remote != nil && str(remote, "sha256") == "":
					out = append(out, fmt.Sprintf("loads Wasm code from %s without a sha256", quote(str(mapAt(remote, "http_uri"), "uri"))))
				}
			}
			keys := make([]string, 0, len(t))
			for k := range t {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				walk(t[k])
			}
		case []any:
			for _, e := range t {
				walk(e)
			}
		}
	}
	walk(v)
	return out
}

// snakeKeys copies a protobuf-JSON value with its field names in snake_case
// (lowerCamelCase is accepted by Istio too). Keys holding dots or starting
// with "@" (filter names, "@type") are kept.
func snakeKeys(v any) any { return snakeKeysIn(v, false) }

// userKeyed are protobuf map fields keyed by the user's own strings (policy,
// provider and filter names), whose keys are kept as written.
var userKeyed = map[string]bool{"policies": true, "providers": true, "typed_per_filter_config": true, "filter_metadata": true, "typed_filter_metadata": true, "requirement_map": true}

func snakeKeysIn(v any, keepKeys bool) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			if keepKeys {
				out[k] = snakeKeysIn(x, false)
				continue
			}
			sk := snakeCase(k)
			out[sk] = snakeKeysIn(x, userKeyed[sk])
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = snakeKeysIn(x, false)
		}
		return out
	}
	return v
}

func snakeCase(k string) string {
	if strings.HasPrefix(k, "@") || strings.ContainsAny(k, ".:/-_") {
		return k
	}
	var b strings.Builder
	for i, r := range k {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('_')
			}
			b.WriteRune(unicode.ToLower(r))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
