package rules

import (
	"strings"
	"testing"
)

func envoyFilterTestEngine(t *testing.T) *engine {
	t.Helper()
	cc, err := NewConfig().compile()
	if err != nil {
		t.Fatal(err)
	}
	return &engine{cfg: cc, ctx: emptyContext{}}
}

// itemTexts returns the text of each item of a facts list.
func itemTexts(t *testing.T, v any) []string {
	t.Helper()
	var out []string
	for _, it := range v.([]any) {
		out = append(out, it.(map[string]any)["text"].(string))
	}
	return out
}

func TestEnvoyFilterFacts(t *testing.T) {
	e := envoyFilterTestEngine(t)
	const hcm = `{name: envoy.filters.network.http_connection_manager, subFilter: {name: %s}}`
	sub := func(name string) string { return strings.Replace(hcm, "%s", name, 1) }
	tests := []struct {
		name, patches string
		weakens       []string
		highRisk      []string
	}{
		{"a REMOVE of RBAC names the patch and the filter",
			`[{applyTo: HTTP_FILTER, match: {context: SIDECAR_INBOUND, listener: {filterChain: {filter: ` + sub("envoy.filters.http.rbac") + `}}}, patch: {operation: REMOVE}}]`,
			[]string{`configPatches[0] (HTTP_FILTER REMOVE at SIDECAR_INBOUND) removes the HTTP filter "envoy.filters.http.rbac", which enforces AuthorizationPolicy`}, nil},
		{"names match exactly, as Istio matches them: another case matches nothing",
			`[{applyTo: HTTP_FILTER, match: {listener: {filterChain: {filter: ` + sub("envoy.filters.http.RBAC") + `}}}, patch: {operation: REMOVE}}]`,
			nil, nil},
		{"a subFilter under a network filter other than the HTTP connection manager matches nothing",
			`[{applyTo: HTTP_FILTER, match: {listener: {filterChain: {filter: {name: envoy.filters.network.tcp_proxy, subFilter: {name: envoy.filters.http.rbac}}}}}, patch: {operation: REMOVE}}]`,
			nil, nil},
		{"a REMOVE without a filter match removes nothing in Istio",
			`[{applyTo: HTTP_FILTER, match: {context: SIDECAR_INBOUND}, patch: {operation: REMOVE}}]`,
			nil, nil},
		{"camelCase protobuf JSON is read like snake_case",
			`[{applyTo: CLUSTER, patch: {operation: MERGE, value: {transportSocket: {name: envoy.transport_sockets.raw_buffer}}}}]`,
			[]string{`configPatches[0] (CLUSTER MERGE at ANY) replaces the cluster's transport socket with "envoy.transport_sockets.raw_buffer": Istio's TLS (mTLS) is dropped`}, nil},
		{"a MERGE of action ALLOW (proto3's zero value, which does not overwrite) is not reported",
			`[{applyTo: HTTP_FILTER, match: {listener: {filterChain: {filter: ` + sub("envoy.filters.http.rbac") + `}}}, patch: {operation: MERGE, value: {typed_config: {rules: {action: ALLOW}}}}}]`,
			nil, nil},
		{"a policy name keeps its spelling when field names are converted",
			`[{applyTo: HTTP_FILTER, match: {listener: {filterChain: {filter: ` + sub("envoy.filters.http.rbac") + `}}}, patch: {operation: MERGE, value: {typedConfig: {rules: {policies: {allowEveryone: {permissions: [{any: true}], principals: [{any: true}]}}}}}}}]`,
			[]string{`configPatches[0] (HTTP_FILTER MERGE at ANY) merges the policy "allowEveryone" matching any request from anyone into "envoy.filters.http.rbac"`}, nil},
		{"INSERT_FIRST of a CLUSTER is an ADD in Istio",
			`[{applyTo: CLUSTER, patch: {operation: INSERT_FIRST, value: {name: extra}}}]`,
			nil, []string{`configPatches[0] (CLUSTER INSERT_FIRST at ANY) adds the cluster "extra", a destination outside Istio's service registry and policies`}},
		{"Lua inserted before the router runs after authorization but is inline code",
			`[{applyTo: HTTP_FILTER, match: {context: SIDECAR_INBOUND, listener: {filterChain: {filter: ` + sub("envoy.filters.http.router") + `}}}, patch: {operation: INSERT_BEFORE, value: {name: envoy.filters.http.lua, typed_config: {inlineCode: x}}}}]`,
			nil, []string{`configPatches[0] (HTTP_FILTER INSERT_BEFORE at SIDECAR_INBOUND) runs inline Lua code (inline_code)`}},
		{"Lua inserted first on outbound listeners is not ahead of any authorization",
			`[{applyTo: HTTP_FILTER, match: {context: SIDECAR_OUTBOUND}, patch: {operation: INSERT_FIRST, value: {name: envoy.filters.http.lua, typed_config: {inline_code: x}}}}]`,
			nil, []string{`configPatches[0] (HTTP_FILTER INSERT_FIRST at SIDECAR_OUTBOUND) runs inline Lua code (inline_code)`}},
		{"a Wasm module over HTTPS with a sha256 is not high risk",
			`[{applyTo: EXTENSION_CONFIG, patch: {operation: ADD, value: {name: w, typed_config: {config: {vm_config: {code: {remote: {http_uri: {uri: "https://x/w.wasm"}, sha256: abc}}}}}}}}]`,
			nil, nil},
		{"a Wasm module without a sha256 is high risk",
			`[{applyTo: EXTENSION_CONFIG, patch: {operation: ADD, value: {name: w, typed_config: {config: {vm_config: {code: {remote: {http_uri: {uri: "https://x/w.wasm"}}}}}}}}}]`,
			nil, []string{`configPatches[0] (EXTENSION_CONFIG ADD at ANY) loads Wasm code from "https://x/w.wasm" without a sha256`}},
		{"an RBACPerRoute with its own rbac replaces Istio's policy for the route",
			`[{applyTo: HTTP_ROUTE, patch: {operation: MERGE, value: {typed_per_filter_config: {envoy.filters.http.rbac: {"@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute, rbac: {rules: {}}}}}}}]`,
			[]string{`configPatches[0] (HTTP_ROUTE MERGE at ANY) replaces Istio's policy of the HTTP filter "envoy.filters.http.rbac" (enforces AuthorizationPolicy) per route in typed_per_filter_config`}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			obj := decode(t, `{metadata: {name: x, namespace: istio-system}, spec: {configPatches: `+tc.patches+`}}`)
			f, err := e.envoyFilterFacts(obj, "istio-system")
			if err != nil {
				t.Fatal(err)
			}
			if got := itemTexts(t, f["weakens"]); strings.Join(got, "\n") != strings.Join(tc.weakens, "\n") {
				t.Errorf("weakens = %q\nwant %q", got, tc.weakens)
			}
			if got := itemTexts(t, f["highRisk"]); strings.Join(got, "\n") != strings.Join(tc.highRisk, "\n") {
				t.Errorf("highRisk = %q\nwant %q", got, tc.highRisk)
			}
		})
	}
}

func TestEnvoyFilterFactsBadInput(t *testing.T) {
	e := envoyFilterTestEngine(t)
	for _, tc := range []struct{ name, spec, field string }{
		{"configPatches that are not a list", `{configPatches: {}}`, "spec.configPatches"},
		{"a patch that is not an object names its index", `{configPatches: [a]}`, "spec.configPatches[0]"},
		{"a numeric operation", `{configPatches: [{applyTo: CLUSTER, patch: {operation: 1}}]}`, "spec.configPatches[0].patch.operation"},
		{"a value that is a string", `{configPatches: [{}, {applyTo: CLUSTER, patch: {operation: ADD, value: x}}]}`, "spec.configPatches[1].patch.value"},
		{"a subFilter name that is a list", `{configPatches: [{applyTo: HTTP_FILTER, match: {listener: {filterChain: {filter: {subFilter: {name: []}}}}}}]}`, "spec.configPatches[0].match.listener.filterChain.filter.subFilter.name"},
		{"a spec that is not an object", `[]`, "spec"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.envoyFilterFacts(decode(t, `{metadata: {name: x, namespace: shop}, spec: `+tc.spec+`}`), "shop")
			if err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Errorf("error = %v, want one naming %s", err, tc.field)
			}
		})
	}
}
