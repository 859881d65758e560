package rules

import (
	"strings"
	"testing"
)

func TestExtensionFacts(t *testing.T) {
	cfg := NewConfig()
	cfg.EnvoyFilterNamespaces = []string{"istio-ingress"}
	cc, err := cfg.compile()
	if err != nil {
		t.Fatal(err)
	}
	e := &engine{cfg: cc, ctx: emptyContext{}}
	tests := []struct {
		name, kind, ns, spec string
		allowed, before      bool
		text                 string
	}{
		{"a WasmPlugin at AUTHN in an application namespace runs before authentication", "WasmPlugin", "shop",
			`{url: "oci://r/f:1", phase: AUTHN, selector: {matchLabels: {app: web, tier: fe}}}`, false, true,
			`WasmPlugin runs Wasm module "oci://r/f:1" at phase AUTHN (before Istio's authentication filters) for workloads app=web,tier=fe`},
		{"a network WasmPlugin at AUTHZ for the whole namespace", "WasmPlugin", "shop",
			`{url: "oci://r/f:1", phase: AUTHZ, type: NETWORK}`, false, true,
			`WasmPlugin runs network Wasm module "oci://r/f:1" at phase AUTHZ (before Istio's authorization filters) for every workload in namespace "shop"`},
		{"a WasmPlugin at STATS runs after authorization", "WasmPlugin", "shop",
			`{url: "oci://r/f:1", phase: STATS}`, false, false,
			`WasmPlugin runs Wasm module "oci://r/f:1" at phase STATS for every workload in namespace "shop"`},
		{"a WasmPlugin without a phase runs last", "WasmPlugin", "shop",
			`{url: "oci://r/f:1"}`, false, false,
			`WasmPlugin runs Wasm module "oci://r/f:1" for every workload in namespace "shop"`},
		{"the root namespace is allowed and applies mesh-wide", "WasmPlugin", "istio-system",
			`{url: "oci://r/f:1", phase: AUTHN}`, true, true,
			`WasmPlugin runs Wasm module "oci://r/f:1" at phase AUTHN (before Istio's authentication filters) for every workload in the mesh`},
		{"an admin-allowed EnvoyFilter namespace is allowed", "WasmPlugin", "istio-ingress",
			`{url: "oci://r/f:1", phase: AUTHZ, targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: public}]}`, true, true,
			`WasmPlugin runs Wasm module "oci://r/f:1" at phase AUTHZ (before Istio's authorization filters) for targetRefs Gateway/public`},
		{"the hidden targetRef counts as a target", "WasmPlugin", "shop",
			`{url: "oci://r/f:1", phase: AUTHN, targetRef: {kind: Service, name: api}}`, false, true,
			`WasmPlugin runs Wasm module "oci://r/f:1" at phase AUTHN (before Istio's authentication filters) for targetRefs Service/api`},
		{"a TrafficExtension with Lua at AUTHZ", "TrafficExtension", "shop",
			`{phase: AUTHZ, lua: {inlineCode: "function envoy_on_request(h) end"}}`, false, true,
			`TrafficExtension runs Lua code at phase AUTHZ (before Istio's authorization filters) for every workload in namespace "shop"`},
		{"a TrafficExtension with Wasm at AUTHN", "TrafficExtension", "shop",
			`{phase: AUTHN, wasm: {url: "https://f/x.wasm", type: HTTP}}`, false, true,
			`TrafficExtension runs Wasm module "https://f/x.wasm" at phase AUTHN (before Istio's authentication filters) for every workload in namespace "shop"`},
		{"a TrafficExtension at UNSPECIFIED runs last", "TrafficExtension", "shop",
			`{phase: UNSPECIFIED, lua: {inlineCode: x}}`, false, false,
			`TrafficExtension runs Lua code at phase UNSPECIFIED for every workload in namespace "shop"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			obj := decode(t, `{metadata: {name: x, namespace: `+tc.ns+`}, spec: `+tc.spec+`}`)
			f, err := e.extensionFacts(obj, tc.kind, tc.ns)
			if err != nil {
				t.Fatal(err)
			}
			if f["allowedNamespace"] != tc.allowed || f["beforeAuthz"] != tc.before || f["text"] != tc.text {
				t.Errorf("facts = allowed %v, beforeAuthz %v, text %q\nwant allowed %v, beforeAuthz %v, text %q",
					f["allowedNamespace"], f["beforeAuthz"], f["text"], tc.allowed, tc.before, tc.text)
			}
		})
	}
}

func TestExtensionFactsBadInput(t *testing.T) {
	cc, err := NewConfig().compile()
	if err != nil {
		t.Fatal(err)
	}
	e := &engine{cfg: cc, ctx: emptyContext{}}
	for _, tc := range []struct{ name, kind, spec, field string }{
		{"a numeric phase names spec.phase", "WasmPlugin", `{url: x, phase: 1}`, "spec.phase"},
		{"a list selector names spec.selector", "WasmPlugin", `{url: x, selector: []}`, "spec.selector"},
		{"matchLabels that are not an object name spec.selector.matchLabels", "WasmPlugin", `{url: x, selector: {matchLabels: a}}`, "spec.selector.matchLabels"},
		{"a targetRefs entry that is not an object names its index", "WasmPlugin", `{url: x, targetRefs: [a]}`, "spec.targetRefs[0]"},
		{"a numeric url names spec.url", "WasmPlugin", `{url: 3}`, "spec.url"},
		{"a TrafficExtension wasm that is not an object names spec.wasm", "TrafficExtension", `{wasm: x}`, "spec.wasm"},
		{"a TrafficExtension wasm url that is not a string names spec.wasm.url", "TrafficExtension", `{wasm: {url: [1]}}`, "spec.wasm.url"},
		{"a spec that is not an object names spec", "TrafficExtension", `[]`, "spec"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.extensionFacts(decode(t, `{metadata: {name: x, namespace: shop}, spec: `+tc.spec+`}`), tc.kind, "shop")
			if err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Errorf("error = %v, want one naming %s", err, tc.field)
			}
		})
	}
}
