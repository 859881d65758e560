package rules

import (
	"reflect"
	"strings"
	"testing"
)

func TestConfigMapFacts(t *testing.T) {
	cc, err := NewConfig().compile()
	if err != nil {
		t.Fatal(err)
	}
	e := &engine{cfg: cc, ctx: emptyContext{}}
	cm := func(name, ns string, data any) Object {
		return Object{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": name, "namespace": ns}, "data": data}
	}
	errs := []struct {
		name string
		obj  Object
		want string
	}{
		{"mesh not YAML", cm("istio", "istio-system", map[string]any{"mesh": "rootNamespace: [a"}),
			"ConfigMap istio-system/istio: data.mesh is not valid YAML"},
		{"mesh a list", cm("istio-canary", "istio-system", map[string]any{"mesh": "- a"}),
			"ConfigMap istio-system/istio-canary: data.mesh: expected a YAML object, got array"},
		{"values not JSON", cm("istio-sidecar-injector", "istio-system", map[string]any{"values": "{global:"}),
			"ConfigMap istio-system/istio-sidecar-injector: data.values is not valid JSON"},
		{"data not an object", cm("istio", "istio-system", "x"), "data: expected object, got string"},
	}
	for _, tc := range errs {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.configMapFacts(tc.obj)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
	// Outside istiod's namespaces, and for other names, nothing is read:
	// malformed data is no error there.
	for _, obj := range []Object{
		cm("istio", "shop", map[string]any{"mesh": "rootNamespace: [a"}),
		cm("web-config", "istio-system", map[string]any{"mesh": "rootNamespace: [a"}),
		cm("istio-ca-root-cert", "istio-system", map[string]any{"root-cert.pem": "x"}),
	} {
		facts, err := e.configMapFacts(obj)
		if err != nil || facts["mesh"] != nil || facts["injector"] != nil {
			t.Errorf("%v: facts %v, error %v; want none", obj["metadata"], facts, err)
		}
	}
	facts, err := e.configMapFacts(cm("istio", "istio-system", map[string]any{"mesh": "outboundTrafficPolicy:\n  mode: 0\ndefaultConfig:\n  interceptionMode: 2\n"}))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"outboundMode": "REGISTRY_ONLY", "outboundModeSet": true, "enableAutoMtls": true, "pathNormalization": "",
		"interceptionMode": "NONE", "rootNamespace": "istio-system", "rootNamespaceSet": false, "expectedRootNamespace": "istio-system",
	}
	if !reflect.DeepEqual(facts["mesh"], want) {
		t.Errorf("mesh facts %v, want %v", facts["mesh"], want)
	}
}

// The injector's policy is read as istiod's UnmarshalConfig reads it.
func TestInjectionPolicy(t *testing.T) {
	for _, tc := range []struct{ config, want string }{
		{"policy: enabled\ntemplates: {}", "enabled"},
		{"Policy: disabled", "disabled"}, // encoding/json matches keys case-insensitively
		{"policy: off", "false"},         // YAML 1.1 boolean, decoded into a string
		{"defaultTemplates: [sidecar]", ""},
	} {
		got, err := injectionPolicy("istio-sidecar-injector", "istio-system", tc.config)
		if err != nil || got != tc.want {
			t.Errorf("%q: policy %q, %v; want %q", tc.config, got, err, tc.want)
		}
	}
	if _, err := injectionPolicy("istio-sidecar-injector", "istio-system", "policy: [a"); err == nil ||
		!strings.Contains(err.Error(), "ConfigMap istio-system/istio-sidecar-injector: data.config is not a valid injector configuration") {
		t.Errorf("error %v", err)
	}
}
