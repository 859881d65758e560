package rules

import (
	"encoding/json"
	"fmt"
	"strings"

	"sigs.k8s.io/yaml"
)

// Istio's mesh configuration lives in ConfigMaps in istiod's namespace
// (Istio's istio-discovery chart, templates/configmap.yaml and
// istiod-injector-configmap.yaml): `istio` or `istio-<rev>` with the
// MeshConfig as YAML under the key `mesh`, and `istio-sidecar-injector` or
// `istio-sidecar-injector-<rev>` with the injector's Helm values as JSON under
// the key `values` and its configuration (policy, templates) as YAML under
// the key `config`.
const (
	meshConfigMapName     = "istio"
	meshConfigKey         = "mesh"
	injectorConfigMapName = "istio-sidecar-injector"
	injectorValuesKey     = "values"
	injectorConfigKey     = "config"
)

// Enum values of MeshConfig and ProxyConfig by number (protojson accepts
// the number as well as the name), from istio.io/api mesh/v1alpha1.
var (
	outboundModeNames     = map[int64]string{0: "REGISTRY_ONLY", 1: "ALLOW_ANY", 3: "ALLOW_ANY_DYNAMIC_DNS"}
	normalizationNames    = map[int64]string{0: "DEFAULT", 1: "NONE", 2: "BASE", 3: "MERGE_SLASHES", 4: "DECODE_AND_MERGE_SLASHES"}
	interceptionModeNames = map[int64]string{0: "REDIRECT", 1: "TPROXY", 2: "NONE"}
)

// configMapFacts computes the facts of a ConfigMap: only Istio's mesh
// configuration and injector ConfigMaps in a control-plane namespace (or the
// root namespace) have any; every other ConfigMap gets the same empty facts
// without its data being read.
func (e *engine) configMapFacts(obj Object) (map[string]any, error) {
	var f ConfigMapFacts
	read, err := e.computeConfigMapFacts(&f, obj)
	if err != nil {
		return nil, err
	}
	if !read {
		return emptyConfigMapFacts, nil
	}
	return f.Map(), nil
}

// computeConfigMapFacts fills f, reporting whether the ConfigMap is one of
// Istio's that are read.
func (e *engine) computeConfigMapFacts(f *ConfigMapFacts, obj Object) (bool, error) {
	meta := mapAt(obj, "metadata")
	name, ns := str(meta, "name"), str(meta, "namespace")
	if !strings.HasPrefix(name, meshConfigMapName) || !(e.cfg.controlPlane[ns] || ns == e.cfg.RootNamespace) {
		return false, nil
	}
	if err := checkType(obj, "", "data", "object"); err != nil {
		return true, err
	}
	data := mapAt(obj, "data")
	if raw, ok := data[meshConfigKey]; ok && (name == meshConfigMapName || strings.HasPrefix(name, meshConfigMapName+"-")) {
		doc, err := embeddedDocument(name, ns, meshConfigKey, raw, "YAML", func(b []byte, v any) error { return yaml.Unmarshal(b, v) })
		if err != nil {
			return true, err
		}
		f.Mesh = meshConfigFacts(doc, ns, e.cfg.RootNamespace)
	}
	if raw, ok := data[injectorValuesKey]; ok && (name == injectorConfigMapName || strings.HasPrefix(name, injectorConfigMapName+"-")) {
		doc, err := embeddedDocument(name, ns, injectorValuesKey, raw, "JSON", json.Unmarshal)
		if err != nil {
			return true, err
		}
		f.Injector = injectorValuesFacts(doc)
	}
	if raw, ok := data[injectorConfigKey]; ok && (name == injectorConfigMapName || strings.HasPrefix(name, injectorConfigMapName+"-")) {
		policy, err := injectionPolicy(name, ns, raw)
		if err != nil {
			return true, err
		}
		f.Injector.Read = true
		f.Injector.Policy = OptString{Value: policy, Set: true}
		f.Injector.PolicyKnown = OptBool{Value: policy == "enabled" || policy == "disabled", Set: true}
	}
	return true, nil
}

// injectionPolicy reads the injector's policy from its config (YAML) as
// istiod does (pkg/kube/inject UnmarshalConfig: sigs.k8s.io/yaml into a
// struct, so the key matches case-insensitively). "enabled" injects every pod
// of an enrolled namespace that does not opt out; "disabled" only pods that
// opt in; any other value, an absent one included, injects no pod at all.
func injectionPolicy(name, ns string, raw any) (string, error) {
	s, ok := raw.(string)
	if !ok {
		return "", fmt.Errorf("ConfigMap %s/%s: data.%s: expected string, got %s", ns, name, injectorConfigKey, jsonType(raw))
	}
	var cfg struct {
		Policy string `json:"policy"`
	}
	if err := yaml.Unmarshal([]byte(s), &cfg); err != nil {
		return "", fmt.Errorf("ConfigMap %s/%s: data.%s is not a valid injector configuration: %v", ns, name, injectorConfigKey, err)
	}
	return cfg.Policy, nil
}

// embeddedDocument decodes the object held as text under data[key].
func embeddedDocument(name, ns, key string, raw any, format string, unmarshal func([]byte, any) error) (map[string]any, error) {
	s, ok := raw.(string)
	if !ok {
		return nil, fmt.Errorf("ConfigMap %s/%s: data.%s: expected string, got %s", ns, name, key, jsonType(raw))
	}
	var doc any
	if err := unmarshal([]byte(s), &doc); err != nil {
		return nil, fmt.Errorf("ConfigMap %s/%s: data.%s is not valid %s: %v", ns, name, key, format, err)
	}
	if doc == nil {
		return map[string]any{}, nil
	}
	m, ok := doc.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("ConfigMap %s/%s: data.%s: expected a %s object, got %s", ns, name, key, format, jsonType(doc))
	}
	return m, nil
}

// meshConfigFacts reads the MeshConfig settings rules judge, with Istio's
// defaults for absent fields (outboundTrafficPolicy.mode ALLOW_ANY,
// enableAutoMtls true, rootNamespace istiod's own namespace).
func meshConfigFacts(mesh map[string]any, ns, expectedRoot string) MeshConfigFacts {
	outbound := enumName(mapAt(mesh, "outboundTrafficPolicy")["mode"], outboundModeNames)
	outboundSet := outbound != ""
	if !outboundSet {
		outbound = "ALLOW_ANY"
	}
	autoMtls := true
	if b, ok := mesh["enableAutoMtls"].(bool); ok {
		autoMtls = b
	}
	root, _ := mesh["rootNamespace"].(string)
	rootSet := true
	if root == "" {
		root, rootSet = ns, false
	}
	return MeshConfigFacts{
		Read: true, OutboundMode: outbound, OutboundModeSet: outboundSet, EnableAutoMtls: autoMtls,
		PathNormalization: enumName(mapAt(mesh, "pathNormalization")["normalization"], normalizationNames),
		InterceptionMode:  enumName(mapAt(mesh, "defaultConfig")["interceptionMode"], interceptionModeNames),
		RootNamespace:     root, RootNamespaceSet: rootSet, ExpectedRootNamespace: expectedRoot,
	}
}

// injectorValuesFacts reads the injector values rules judge.
func injectorValuesFacts(values map[string]any) InjectorFacts {
	privileged := false
	// The injection template prints the value as text, so the string "true"
	// renders the same as the boolean.
	switch v := mapAt(values, "global", "proxy")["privileged"].(type) {
	case bool:
		privileged = v
	case string:
		privileged = strings.EqualFold(v, "true")
	}
	return InjectorFacts{Read: true, ProxyPrivileged: privileged}
}

// enumName returns an enum's name from its name or number ("" when absent
// or not a known value).
func enumName(v any, names map[int64]string) string {
	if s, ok := v.(string); ok {
		return s
	}
	if n, ok := intValue(v); ok {
		return names[n]
	}
	return ""
}
