package rules

import (
	"encoding/json"
	"strconv"
)

// The $facts of Istio's mesh configuration ConfigMaps, typed as the workload
// facts are (facts_workload_types.go): json tags are the names policies read,
// Map the map they see, and their tables in catalog/README.md are generated
// from the doc comments.

// ConfigMapFacts are the facts of a ConfigMap.
type ConfigMapFacts struct {
	// Null but for ConfigMap `istio` or `istio-<rev>` with key `mesh` (the MeshConfig as YAML), read with Istio's
	// defaults for absent fields; an enum given by number is named.
	Mesh MeshConfigFacts `json:"mesh"`
	// Null but for ConfigMap `istio-sidecar-injector` or `istio-sidecar-injector-<rev>` with key `values` (the
	// injector's Helm values as JSON) or `config` (the injector's configuration as YAML).
	Injector InjectorFacts `json:"injector"`
}

// MeshConfigFacts: the MeshConfig settings rules judge.
type MeshConfigFacts struct {
	// The ConfigMap holds the MeshConfig; the facts are null otherwise.
	Read bool `json:"-"`
	// `outboundTrafficPolicy.mode`, `ALLOW_ANY` when absent.
	OutboundMode string `json:"outboundMode"`
	// `outboundTrafficPolicy.mode` is set.
	OutboundModeSet bool `json:"outboundModeSet"`
	// `enableAutoMtls`: true unless the boolean false.
	EnableAutoMtls bool `json:"enableAutoMtls"`
	// `pathNormalization.normalization`, `""` when absent.
	PathNormalization string `json:"pathNormalization"`
	// `defaultConfig.interceptionMode`, `""` when absent.
	InterceptionMode string `json:"interceptionMode"`
	// `rootNamespace`, istiod's namespace (the ConfigMap's) when absent.
	RootNamespace string `json:"rootNamespace"`
	// `rootNamespace` is set.
	RootNamespaceSet bool `json:"rootNamespaceSet"`
	// meshguard's `--root-namespace`.
	ExpectedRootNamespace string `json:"expectedRootNamespace"`
}

// InjectorFacts: the injector settings rules judge.
type InjectorFacts struct {
	// The ConfigMap holds the injector's values or configuration; the facts are null otherwise.
	Read bool `json:"-"`
	// `global.proxy.privileged` in `values` is true, or the string "true", which the injection template prints the
	// same.
	ProxyPrivileged bool `json:"proxyPrivileged"`
	// With the key `config`: the policy as istiod decodes it, `""` when absent.
	Policy OptString `json:"policy,omitzero"`
	// With the key `config`: the policy is `enabled` or `disabled`; any other policy injects no pod.
	PolicyKnown OptBool `json:"policyKnown,omitzero"`
}

// OptBool is a JSON boolean that is absent (with omitzero) unless Set.
type OptBool struct {
	Value bool
	Set   bool
}

// MarshalJSON writes the boolean.
func (b OptBool) MarshalJSON() ([]byte, error) { return strconv.AppendBool(nil, b.Value), nil }

// emptyConfigMapFacts are the facts of every ConfigMap that is not Istio's
// mesh configuration, shared (facts are read only).
var emptyConfigMapFacts = map[string]any{"mesh": nil, "injector": nil}

// Map returns the facts as the policies see them.
func (f *ConfigMapFacts) Map() map[string]any {
	m := map[string]any{"mesh": nil, "injector": nil}
	if f.Mesh.Read {
		m["mesh"] = f.Mesh.Map()
	}
	if f.Injector.Read {
		m["injector"] = f.Injector.Map()
	}
	return m
}

// MarshalJSON writes the facts, or null when not Read.
func (f MeshConfigFacts) MarshalJSON() ([]byte, error) {
	if !f.Read {
		return []byte("null"), nil
	}
	type plain MeshConfigFacts
	return json.Marshal(plain(f))
}

// MarshalJSON writes the facts, or null when not Read.
func (f InjectorFacts) MarshalJSON() ([]byte, error) {
	if !f.Read {
		return []byte("null"), nil
	}
	type plain InjectorFacts
	return json.Marshal(plain(f))
}

// Map returns the facts as the policies see them.
func (f *MeshConfigFacts) Map() map[string]any {
	return map[string]any{
		"outboundMode": f.OutboundMode, "outboundModeSet": f.OutboundModeSet, "enableAutoMtls": f.EnableAutoMtls,
		"pathNormalization": f.PathNormalization, "interceptionMode": f.InterceptionMode,
		"rootNamespace": f.RootNamespace, "rootNamespaceSet": f.RootNamespaceSet,
		"expectedRootNamespace": f.ExpectedRootNamespace,
	}
}

// Map returns the facts as the policies see them.
func (f *InjectorFacts) Map() map[string]any {
	m := map[string]any{"proxyPrivileged": f.ProxyPrivileged}
	if f.Policy.Set {
		m["policy"] = f.Policy.Value
	}
	if f.PolicyKnown.Set {
		m["policyKnown"] = f.PolicyKnown.Value
	}
	return m
}
