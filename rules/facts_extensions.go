package rules

import (
	"fmt"
	"sort"
	"strings"
)

// extensionPhases are the WasmPlugin and TrafficExtension phases that place a
// filter ahead of Istio's security filters (extensions.istio.io wasm.proto
// PluginPhase, traffic_extension.proto ExecutionPhase): AUTHN runs before the
// authentication filters, AUTHZ after them and before authorization.
var extensionPhases = map[string]string{
	"AUTHN": "before Istio's authentication filters",
	"AUTHZ": "before Istio's authorization filters",
}

// extensionFacts computes the facts of a WasmPlugin or a TrafficExtension
// (MESH0044).
func (e *engine) extensionFacts(obj Object, kind, ns string) (map[string]any, error) {
	f, err := e.extensionFactsTyped(obj, kind, ns)
	if err != nil {
		return nil, err
	}
	return f.Map(), nil
}

func (e *engine) extensionFactsTyped(obj Object, kind, ns string) (ExtensionFacts, error) {
	if err := checkType(obj, "", "spec", "object"); err != nil {
		return ExtensionFacts{}, err
	}
	spec := mapAt(obj, "spec")
	type field struct{ k, t string }
	fields := []field{{"phase", "string"}, {"selector", "object"}, {"targetRefs", "array"}}
	if kind == "WasmPlugin" {
		fields = append(fields, field{"targetRef", "object"}, field{"url", "string"}, field{"type", "string"})
	} else {
		fields = append(fields, field{"wasm", "object"}, field{"lua", "object"})
	}
	for _, f := range fields {
		if err := checkType(spec, "spec", f.k, f.t); err != nil {
			return ExtensionFacts{}, err
		}
	}
	if err := checkType(mapAt(spec, "selector"), "spec.selector", "matchLabels", "object"); err != nil {
		return ExtensionFacts{}, err
	}

	filter := ""
	switch {
	case kind == "WasmPlugin":
		filter = wasmFilterText(str(spec, "type"), str(spec, "url"))
	case spec["lua"] != nil:
		filter = "Lua code"
	default:
		wasm := mapAt(spec, "wasm")
		for _, f := range []string{"url", "type"} {
			if err := checkType(wasm, "spec.wasm", f, "string"); err != nil {
				return ExtensionFacts{}, err
			}
		}
		filter = wasmFilterText(str(wasm, "type"), str(wasm, "url"))
	}

	refs := listAt(spec, "targetRefs")
	if ref := mapAt(spec, "targetRef"); len(ref) > 0 {
		refs = append([]any{ref}, refs...)
	}
	var refNames []string
	for i, r := range refs {
		rm, ok := r.(map[string]any)
		if !ok {
			return ExtensionFacts{}, fmt.Errorf("spec.targetRefs[%d]: expected object, got %s", i, jsonType(r))
		}
		refNames = append(refNames, str(rm, "kind")+"/"+str(rm, "name"))
	}
	target := fmt.Sprintf("every workload in namespace %s", quote(ns))
	if ns == e.cfg.RootNamespace {
		target = "every workload in the mesh"
	}
	if sel := stringMap(mapAt(spec, "selector")["matchLabels"]); len(sel) > 0 {
		keys := make([]string, 0, len(sel))
		for k := range sel {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + "=" + sel[k]
		}
		target = "workloads " + strings.Join(parts, ",")
	}
	if len(refNames) > 0 {
		target = "targetRefs " + strings.Join(refNames, ", ")
	}

	phase := str(spec, "phase")
	where, before := extensionPhases[phase]
	text := fmt.Sprintf("%s runs %s", kind, filter)
	if phase != "" {
		text += " at phase " + phase
	}
	if before {
		text += " (" + where + ")"
	}
	text += " for " + target
	return ExtensionFacts{
		AllowedNamespace: e.envoyFilterNamespace(ns), Phase: phase, BeforeAuthz: before, Filter: filter, Target: target,
		Text: text,
	}, nil
}

// wasmFilterText names a Wasm module for messages: `Wasm module "url"`, with
// "network" for a NETWORK (L4) plugin.
func wasmFilterText(typ, url string) string {
	s := "Wasm module " + quote(url)
	if typ == "NETWORK" {
		s = "network " + s
	}
	return s
}

// envoyFilterNamespace reports whether a namespace may hold proxy extensions
// (EnvoyFilters, and WasmPlugins and TrafficExtensions at the security
// phases): the root namespace or an admin-allowed one (--envoyfilter-namespaces).
func (e *engine) envoyFilterNamespace(ns string) bool {
	return ns == e.cfg.RootNamespace || e.cfg.efAllowed[ns]
}
