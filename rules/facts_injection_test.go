package rules

import (
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

// injectionConfig compiles the default configuration, changed by opts.
func injectionConfig(t *testing.T, opts ...func(*Config)) *compiledConfig {
	t.Helper()
	c := NewConfig()
	for _, o := range opts {
		o(c)
	}
	cc, err := c.compile()
	if err != nil {
		t.Fatalf("compile config: %v", err)
	}
	return cc
}

func enableNamespacesByDefault(c *Config) { c.EnableNamespacesByDefault = true }

func TestNamespaceMode(t *testing.T) {
	cases := []struct {
		name   string
		ns     string
		labels map[string]string
		opts   []func(*Config)
		want   string
	}{
		{name: "a namespace labelled istio-injection=enabled is injected", labels: map[string]string{"istio-injection": "enabled"}, want: ModeSidecar},
		{name: "istio-injection=enabled beats the ambient label", labels: map[string]string{"istio-injection": "enabled", "istio.io/dataplane-mode": "ambient"}, want: ModeSidecar},
		{name: "istio-injection=disabled beats istio.io/rev", labels: map[string]string{"istio-injection": "disabled", "istio.io/rev": "1-24-2"}, want: ModeNone},
		{name: "istio-injection=Enabled disables injection like every value but enabled", labels: map[string]string{"istio-injection": "Enabled"}, want: ModeNone},
		{name: "istio-injection=true disables injection like every value but enabled", labels: map[string]string{"istio-injection": "true"}, want: ModeNone},
		{name: "istio-injection=disabled next to the ambient label leaves the namespace ambient", labels: map[string]string{"istio-injection": "disabled", "istio.io/dataplane-mode": "ambient"}, want: ModeAmbient},
		{name: "an istio.io/rev label alone is injected", labels: map[string]string{"istio.io/rev": "canary"}, want: ModeSidecar},
		{name: "a revision beats the ambient label", labels: map[string]string{"istio.io/rev": "canary", "istio.io/dataplane-mode": "ambient"}, want: ModeSidecar},
		{name: "an empty istio.io/rev names no revision", labels: map[string]string{"istio.io/rev": ""}, want: ModeNone},
		{name: "the ambient label alone is ambient", labels: map[string]string{"istio.io/dataplane-mode": "ambient"}, want: ModeAmbient},
		{name: "istio.io/dataplane-mode=none is outside the mesh", labels: map[string]string{"istio.io/dataplane-mode": "none"}, want: ModeNone},
		{name: "an unlabelled namespace is outside the mesh", want: ModeNone},
		{name: "with enableNamespacesByDefault an unlabelled namespace is injected", opts: []func(*Config){enableNamespacesByDefault}, want: ModeSidecar},
		{name: "with enableNamespacesByDefault an empty istio.io/rev still shuts out the default path", labels: map[string]string{"istio.io/rev": ""}, opts: []func(*Config){enableNamespacesByDefault}, want: ModeNone},
		{name: "with enableNamespacesByDefault istio-injection=disabled is not injected", labels: map[string]string{"istio-injection": "disabled"}, opts: []func(*Config){enableNamespacesByDefault}, want: ModeNone},
		{name: "with enableNamespacesByDefault kube-system is not injected", ns: "kube-system", opts: []func(*Config){enableNamespacesByDefault}, want: ModeNone},
		{name: "kube-system is never injected, whatever its labels", ns: "kube-system", labels: map[string]string{"istio-injection": "enabled"}, want: ModeNone},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name := tc.ns
			if name == "" {
				name = "shop"
			}
			got := namespaceMode(Namespace{Name: name, Labels: tc.labels}, injectionConfig(t, tc.opts...))
			if got != tc.want {
				t.Errorf("namespaceMode(%s %v) = %q, want %q", name, tc.labels, got, tc.want)
			}
		})
	}
}

func TestInjectionValue(t *testing.T) {
	old, cur := IstioVersion{Minor: 26}, IstioVersion{Minor: 27}
	cases := []struct {
		name                     string
		labels, annotations      map[string]string
		value, source, wantedRaw string
		// value127 is the value from Istio 1.27 on, when it differs.
		value127 *string
	}{
		{name: "neither label nor annotation means the default"},
		{name: "the label true injects", labels: map[string]string{"sidecar.istio.io/inject": "true"}, value: "true", source: "label", wantedRaw: "true"},
		{name: "the annotation false opts out", annotations: map[string]string{"sidecar.istio.io/inject": "false"}, value: "false", source: "annotation", wantedRaw: "false"},
		{name: "the label true beats the annotation false", labels: map[string]string{"sidecar.istio.io/inject": "true"}, annotations: map[string]string{"sidecar.istio.io/inject": "false"}, value: "true", source: "label", wantedRaw: "true"},
		{name: "the label false beats the annotation true", labels: map[string]string{"sidecar.istio.io/inject": "false"}, annotations: map[string]string{"sidecar.istio.io/inject": "true"}, value: "false", source: "label", wantedRaw: "false"},
		{name: "an empty label beats the annotation and means the default", labels: map[string]string{"sidecar.istio.io/inject": ""}, annotations: map[string]string{"sidecar.istio.io/inject": "false"}, value: "", source: "label", wantedRaw: ""},
		{name: "False opts out up to 1.26, means the default since", labels: map[string]string{"sidecar.istio.io/inject": "False"}, value: "false", source: "label", wantedRaw: "False", value127: ptr("")},
		{name: "no opts out up to 1.26, means the default since", annotations: map[string]string{"sidecar.istio.io/inject": "no"}, value: "false", source: "annotation", wantedRaw: "no", value127: ptr("")},
		{name: "disabled opts out up to 1.26, means the default since", labels: map[string]string{"sidecar.istio.io/inject": "disabled"}, value: "false", source: "label", wantedRaw: "disabled", value127: ptr("")},
		{name: "a padded true opts out up to 1.26, means the default since", annotations: map[string]string{"sidecar.istio.io/inject": " true"}, value: "false", source: "annotation", wantedRaw: " true", value127: ptr("")},
		{name: "yes injects up to 1.26, means the default since", labels: map[string]string{"sidecar.istio.io/inject": "yes"}, value: "true", source: "label", wantedRaw: "yes", value127: ptr("")},
		{name: "Y injects up to 1.26", annotations: map[string]string{"sidecar.istio.io/inject": "Y"}, value: "true", source: "annotation", wantedRaw: "Y", value127: ptr("")},
		{name: "On injects up to 1.26", labels: map[string]string{"sidecar.istio.io/inject": "On"}, value: "true", source: "label", wantedRaw: "On", value127: ptr("")},
		{name: "TRUE injects up to 1.26", labels: map[string]string{"sidecar.istio.io/inject": "TRUE"}, value: "true", source: "label", wantedRaw: "TRUE", value127: ptr("")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			value, source, raw := injectionValue(tc.labels, tc.annotations, old)
			if value != tc.value || source != tc.source || raw != tc.wantedRaw {
				t.Errorf("1.26: injectionValue(%v, %v) = (%q, %q, %q), want (%q, %q, %q)",
					tc.labels, tc.annotations, value, source, raw, tc.value, tc.source, tc.wantedRaw)
			}
			want := tc.value
			if tc.value127 != nil {
				want = *tc.value127
			}
			if value, _, _ := injectionValue(tc.labels, tc.annotations, cur); value != want {
				t.Errorf("1.27: injectionValue(%v, %v) = %q, want %q", tc.labels, tc.annotations, value, want)
			}
			amb := injectionAmbiguous(source, raw, want, cur)
			if (amb != "") != (tc.value127 != nil) {
				t.Errorf("ambiguous = %q, want ambiguous: %v", amb, tc.value127 != nil)
			}
		})
	}
}

func ptr(s string) *string { return &s }

func TestParseIstioVersion(t *testing.T) {
	for in, want := range map[string]int{"1.26": 26, "1.27.3": 27, "v1.28.0": 28, "1.29.0-beta.1": 29, "1.27-dev": 27, "1.31.0": 31} {
		v, err := ParseIstioVersion(in)
		if err != nil || v.Minor != want {
			t.Errorf("ParseIstioVersion(%q) = %v, %v; want 1.%d", in, v, err, want)
		}
	}
	for _, bad := range []string{"", "1", "2.1", "1.21.5", "latest", "1.x"} {
		if _, err := ParseIstioVersion(bad); err == nil {
			t.Errorf("ParseIstioVersion(%q) accepted", bad)
		}
	}
	c := NewConfig()
	c.IstioVersion = "1.20"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "--istio-version") {
		t.Errorf("Validate: %v", err)
	}
	c.IstioVersion = ""
	c.RevisionVersions = map[string]string{"default": "1.26.2", "canary": "1.28.1"}
	cc, err := c.compile()
	if err != nil {
		t.Fatal(err)
	}
	for rev, want := range map[string]int{"": 26, "default": 26, "canary": 28, "unknown": 26} {
		if got := cc.versionFor(rev); got.Minor != want {
			t.Errorf("versionFor(%q) = %v, want 1.%d", rev, got, want)
		}
	}
	c.IstioVersion = "1.27"
	cc, _ = c.compile()
	if got := cc.versionFor("canary"); got.Minor != 27 {
		t.Errorf("--istio-version must override the detected versions, got %v", got)
	}
}

func TestPodMode(t *testing.T) {
	enabled := map[string]string{"istio-injection": "enabled"}
	ambient := map[string]string{"istio.io/dataplane-mode": "ambient"}
	inject := func(v string) map[string]string { return map[string]string{"sidecar.istio.io/inject": v} }
	cases := []struct {
		name        string
		ns          string
		nsLabels    map[string]string
		nsUnknown   bool
		labels      map[string]string
		annotations map[string]string
		hostNetwork bool
		opts        []func(*Config)
		want        string
	}{
		{name: "a pod in an injected namespace gets a sidecar", nsLabels: enabled, want: ModeSidecar},
		{name: "the label false opts out of an injected namespace", nsLabels: enabled, labels: inject("false"), want: ModeNone},
		{name: "the annotation false opts out of an injected namespace", nsLabels: enabled, annotations: inject("false"), want: ModeNone},
		{name: "the label true beats the annotation false", nsLabels: enabled, labels: inject("true"), annotations: inject("false"), want: ModeSidecar},
		{name: "up to 1.26 the label False passes the webhook selector but injectRequired refuses it", nsLabels: enabled, labels: inject("False"), opts: []func(*Config){func(c *Config) { c.IstioVersion = "1.26" }}, want: ModeNone},
		{name: "since 1.27 the label False means the namespace default: injected", nsLabels: enabled, labels: inject("False"), want: ModeSidecar},
		{name: "the version of the revision that injects decides", nsLabels: map[string]string{"istio.io/rev": "old"}, labels: inject("no"), opts: []func(*Config){func(c *Config) { c.RevisionVersions = map[string]string{"old": "1.25.4", "default": "1.28.0"} }}, want: ModeNone},
		{name: "an empty label means the namespace default", nsLabels: enabled, labels: inject(""), annotations: inject("false"), want: ModeSidecar},
		{name: "istio-injection=disabled beats a pod labelled inject=true", nsLabels: map[string]string{"istio-injection": "disabled"}, labels: inject("true"), want: ModeNone},
		{name: "istio-injection=Enabled shuts out a pod labelled inject=true", nsLabels: map[string]string{"istio-injection": "Enabled"}, labels: inject("true"), want: ModeNone},
		{name: "istio-injection=disabled beats a pod revision label", nsLabels: map[string]string{"istio-injection": "disabled"}, labels: map[string]string{"istio.io/rev": "canary"}, want: ModeNone},
		{name: "a pod in a revision-labelled namespace gets a sidecar", nsLabels: map[string]string{"istio.io/rev": "canary"}, want: ModeSidecar},
		{name: "a revision-labelled namespace honours the opt-out", nsLabels: map[string]string{"istio.io/rev": "canary"}, labels: inject("false"), want: ModeNone},
		{name: "an empty namespace revision injects nobody, not even inject=true", nsLabels: map[string]string{"istio.io/rev": ""}, labels: inject("true"), want: ModeNone},
		{name: "in an unlabelled namespace the label inject=true selects the injector", labels: inject("true"), want: ModeSidecar},
		{name: "in an unlabelled namespace the label inject=yes misses the exact-match object selector", labels: inject("yes"), want: ModeNone},
		{name: "in an unlabelled namespace the annotation inject=true is not enough", annotations: inject("true"), want: ModeNone},
		{name: "in an unlabelled namespace a pod revision label selects the injector", labels: map[string]string{"istio.io/rev": "canary"}, want: ModeSidecar},
		{name: "in an unlabelled namespace a pod revision label honours the annotation opt-out", labels: map[string]string{"istio.io/rev": "canary"}, annotations: inject("false"), want: ModeNone},
		{name: "in an unlabelled namespace an empty pod revision label blocks inject=true", labels: map[string]string{"istio.io/rev": "", "sidecar.istio.io/inject": "true"}, want: ModeNone},
		{name: "an unlabelled namespace is outside the mesh", want: ModeNone},
		{name: "with enableNamespacesByDefault an unlabelled pod is injected", opts: []func(*Config){enableNamespacesByDefault}, want: ModeSidecar},
		{name: "with enableNamespacesByDefault the annotation false opts out", annotations: inject("false"), opts: []func(*Config){enableNamespacesByDefault}, want: ModeNone},
		{name: "with enableNamespacesByDefault a pod label inject=yes matches no webhook", labels: inject("yes"), opts: []func(*Config){enableNamespacesByDefault}, want: ModeNone},
		{name: "with enableNamespacesByDefault kube-system is never injected", ns: "kube-system", opts: []func(*Config){enableNamespacesByDefault}, want: ModeNone},
		{name: "kube-system pods are never injected, whatever the labels", ns: "kube-system", nsLabels: enabled, labels: inject("true"), want: ModeNone},
		{name: "a hostNetwork pod is never injected", nsLabels: enabled, labels: inject("true"), hostNetwork: true, want: ModeNone},
		{name: "a hostNetwork pod is never captured by ambient", nsLabels: ambient, hostNetwork: true, want: ModeNone},
		{name: "a pod in an ambient namespace is captured", nsLabels: ambient, want: ModeAmbient},
		{name: "a pod labelled dataplane-mode=none leaves ambient", nsLabels: ambient, labels: map[string]string{"istio.io/dataplane-mode": "none"}, want: ModeNone},
		{name: "a pod labelled inject=true in an ambient namespace gets a sidecar", nsLabels: ambient, labels: inject("true"), want: ModeSidecar},
		{name: "a pod labelled dataplane-mode=ambient is captured outside an ambient namespace", labels: map[string]string{"istio.io/dataplane-mode": "ambient"}, want: ModeAmbient},
		{name: "a pod that opts out of the sidecar for ambient is ambient where ambient runs", nsLabels: enabled, labels: map[string]string{"sidecar.istio.io/inject": "false", "istio.io/dataplane-mode": "ambient"}, opts: []func(*Config){func(c *Config) { c.AmbientInstalled = true }}, want: ModeAmbient},
		{name: "a pod that opts out of the sidecar for ambient is outside the mesh unless ambient is known to run", nsLabels: enabled, labels: map[string]string{"sidecar.istio.io/inject": "false", "istio.io/dataplane-mode": "ambient"}, want: ModeNone},
		{name: "the same in an unknown namespace stays unknown", nsUnknown: true, labels: map[string]string{"sidecar.istio.io/inject": "false", "istio.io/dataplane-mode": "ambient"}, want: ModeUnknown},
		{name: "a pod in an unknown namespace has an unknown mode", nsUnknown: true, want: ModeUnknown},
		{name: "a pod in an unknown namespace enrolled by its own inject=true label gets a sidecar", nsUnknown: true, labels: inject("true"), want: ModeSidecar},
		{name: "a default namespace mode stands in for an unknown namespace", nsUnknown: true, opts: []func(*Config){func(c *Config) { c.DefaultNamespaceMode = ModeSidecar }}, want: ModeSidecar},
		{name: "a default namespace mode still honours the opt-out", nsUnknown: true, labels: inject("false"), opts: []func(*Config){func(c *Config) { c.DefaultNamespaceMode = ModeSidecar }}, want: ModeNone},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name := tc.ns
			if name == "" {
				name = "shop"
			}
			ns := Namespace{Name: name, Labels: tc.nsLabels}
			cc := injectionConfig(t, tc.opts...)
			got := podMode(ns, !tc.nsUnknown, tc.labels, tc.annotations, tc.hostNetwork, cc, cc.versionFor(injectingRevision(ns, tc.labels)))
			if got != tc.want {
				t.Errorf("podMode(ns %s %v, labels %v, annotations %v, hostNetwork %v) = %q, want %q",
					name, tc.nsLabels, tc.labels, tc.annotations, tc.hostNetwork, got, tc.want)
			}
		})
	}
}

func TestCaptureFacts(t *testing.T) {
	installRanges := func(c *Config) {
		c.InjectorIncludeOutboundIPRanges = "10.0.0.0/8"
		c.InjectorExcludeOutboundIPRanges = "169.254.169.254/32"
	}
	allowMetrics := func(c *Config) { c.AllowedExcludedInboundPorts = []string{"9102"} }
	cases := []struct {
		name          string
		annotations   map[string]string
		postInjection bool
		opts          []func(*Config)
		want          map[string]any // the facts compared; others are ignored
	}{
		{
			name:          "an injected Pod's includeInboundPorts * and excludeInboundPorts 15020 are not deviations",
			annotations:   map[string]string{annInclInPorts: "*", annExclInPorts: "15020", annInclOutRanges: "*"},
			postInjection: true,
			want:          map[string]any{"includeInboundPorts": nil, "excludeInboundPorts": []any{}, "includeOutboundIPRanges": nil},
		},
		{
			name:        "the proxy's own ports are dropped and user ports kept, trimmed",
			annotations: map[string]string{annExclInPorts: "15090, 8080,15021,,9000 "},
			want:        map[string]any{"excludeInboundPorts": []any{"8080", "9000"}, "excludeInboundPortsAllowed": false},
		},
		{
			name:        "admin-allowed excluded ports are marked allowed",
			annotations: map[string]string{annExclInPorts: "9102,15020"},
			opts:        []func(*Config){allowMetrics},
			want:        map[string]any{"excludeInboundPorts": []any{"9102"}, "excludeInboundPortsAllowed": true},
		},
		{
			name:        "an empty includeInboundPorts is kept, as it disables inbound capture",
			annotations: map[string]string{annInclInPorts: ""},
			want:        map[string]any{"includeInboundPorts": ""},
		},
		{
			name:          "the install's includeIPRanges on an injected Pod is not a deviation",
			annotations:   map[string]string{annInclOutRanges: "10.0.0.0/8", annExclOutRanges: "169.254.169.254/32"},
			postInjection: true,
			opts:          []func(*Config){installRanges},
			want:          map[string]any{"includeOutboundIPRanges": nil, "excludeOutboundIPRanges": []any{}, "excludeOutboundIPRangesLinkLocal": false},
		},
		{
			name:        "the same ranges on a template are the user's own",
			annotations: map[string]string{annInclOutRanges: "10.0.0.0/8", annExclOutRanges: "169.254.169.254/32"},
			opts:        []func(*Config){installRanges},
			want:        map[string]any{"includeOutboundIPRanges": "10.0.0.0/8", "excludeOutboundIPRanges": []any{"169.254.169.254/32"}},
		},
		{
			name:        "an IPv4 range wider than /8 is wide",
			annotations: map[string]string{annExclOutRanges: "0.0.0.0/0"},
			want:        map[string]any{"excludeOutboundIPRangesWide": true, "excludeOutboundIPRangesLinkLocal": false},
		},
		{
			name:        "a /8 is not wider than /8",
			annotations: map[string]string{annExclOutRanges: "10.0.0.0/8"},
			want:        map[string]any{"excludeOutboundIPRangesWide": false},
		},
		{
			name:        "* is wide",
			annotations: map[string]string{annExclOutRanges: "*"},
			want:        map[string]any{"excludeOutboundIPRangesWide": true},
		},
		{
			name:        "::/0 is wide",
			annotations: map[string]string{annExclOutRanges: "fd00::/64,::/0"},
			want:        map[string]any{"excludeOutboundIPRangesWide": true},
		},
		{
			name:        "the cloud metadata server alone is link-local",
			annotations: map[string]string{annExclOutRanges: "169.254.169.254/32, 169.254.170.2"},
			want:        map[string]any{"excludeOutboundIPRangesLinkLocal": true, "excludeOutboundIPRangesWide": false},
		},
		{
			name:        "link-local next to a routable range is not link-local",
			annotations: map[string]string{annExclOutRanges: "169.254.169.254/32,10.96.0.1/32"},
			want:        map[string]any{"excludeOutboundIPRangesLinkLocal": false},
		},
		{
			name:        "a range that merely starts in link-local space but is wider than it is not link-local",
			annotations: map[string]string{annExclOutRanges: "169.0.0.0/8"},
			want:        map[string]any{"excludeOutboundIPRangesLinkLocal": false},
		},
		{
			name:        "excluded outbound ports are split and trimmed",
			annotations: map[string]string{annExclOutPorts: "5432, 6379"},
			want:        map[string]any{"excludeOutboundPorts": []any{"5432", "6379"}},
		},
		{
			name:        "no annotations give empty lists, never null",
			annotations: map[string]string{},
			want: map[string]any{"excludeInboundPorts": []any{}, "excludeOutboundIPRanges": []any{}, "excludeOutboundPorts": []any{},
				"excludeOutboundIPRangesWide": false, "excludeOutboundIPRangesLinkLocal": false},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := &engine{cfg: injectionConfig(t, tc.opts...)}
			cf := e.captureFacts(tc.annotations, tc.postInjection, tc.annotations[annInterceptionMode], "")
			got := cf.Map()
			for k, want := range tc.want {
				v, ok := got[k]
				if want == nil {
					if ok {
						t.Errorf("%s = %#v, want it absent", k, v)
					}
					continue
				}
				if !reflect.DeepEqual(v, want) {
					t.Errorf("%s = %#v, want %#v", k, v, want)
				}
			}
		})
	}
}

// The opt-out text quotes the value as written, so "False" reads as such.
func TestInjectionFactText(t *testing.T) {
	info, ok := LookupKind(schema.GroupKind{Group: "apps", Kind: "Deployment"})
	if !ok {
		t.Fatal("Deployment is not a known kind")
	}
	obj := Object{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": "web", "namespace": "shop"},
		"spec": map[string]any{"template": map[string]any{
			"metadata": map[string]any{"labels": map[string]any{"sidecar.istio.io/inject": "False"}},
			"spec":     map[string]any{"containers": []any{map[string]any{"name": "web", "image": "web:1"}}},
		}},
	}
	e := &engine{cfg: injectionConfig(t, func(c *Config) { c.IstioVersion = "1.26" }), ctx: emptyContext{}}
	ns := Namespace{Name: "shop", Labels: map[string]string{"istio-injection": "enabled"}}
	facts, err := e.workloadFacts(obj, info, &Request{Object: obj}, ns, true)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"value": "false", "source": "label", "raw": "False", "optOut": true, "text": `label sidecar.istio.io/inject is "False"`,
		"ambiguous": `label sidecar.istio.io/inject is "False", which Istio 1.26 reads as an opt-out; Istio 1.27 and later read only "true" and "false", earlier releases any YAML boolean`}
	if got := facts["injection"]; !reflect.DeepEqual(got, want) {
		t.Errorf("injection = %#v, want %#v", got, want)
	}
	if facts["mode"] != ModeNone || facts["namespaceMode"] != ModeSidecar {
		t.Errorf("mode = %v, namespaceMode = %v, want none in a sidecar namespace", facts["mode"], facts["namespaceMode"])
	}
}
