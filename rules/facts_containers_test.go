package rules

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"
)

// Values of the Istio-shaped containers used below, as the injector writes them.
const (
	proxyImage   = "docker.io/istio/proxyv2:1.24.2"
	iptablesArgs = `["istio-iptables", "-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT", "-i", "*", "-x", "", "-b", "*", "-d", "15090,15021,15020"]`
	initSC       = `{capabilities: {add: [NET_ADMIN, NET_RAW], drop: [ALL]}, runAsUser: 0, runAsGroup: 0}`
	proxySC      = `{capabilities: {drop: [ALL]}, runAsUser: 1337, runAsGroup: 1337}`
)

// podFacts computes the workload facts of a manifest written in YAML, in a
// namespace with the given annotations, with the given configuration.
func podFacts(t *testing.T, cfg *Config, manifest string, nsAnnotations map[string]string, postInjection bool) map[string]any {
	t.Helper()
	var obj map[string]any
	if err := yaml.Unmarshal([]byte(manifest), &obj); err != nil {
		t.Fatalf("fixture does not parse: %v", err)
	}
	if cfg == nil {
		cfg = NewConfig()
	}
	cc, err := cfg.compile()
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	apiVersion, _ := obj["apiVersion"].(string)
	kind, _ := obj["kind"].(string)
	info, ok := LookupKind(schema.GroupKind{Group: apiGroup(apiVersion), Kind: kind})
	if !ok {
		t.Fatalf("unknown kind %s", kind)
	}
	e := &engine{cfg: cc, ctx: emptyContext{}}
	ns := Namespace{Name: "shop", Labels: map[string]string{"istio-injection": "enabled"}, Annotations: nsAnnotations}
	facts, err := e.workloadFacts(obj, info, &Request{Object: obj, PostInjection: postInjection}, ns, true)
	if err != nil {
		t.Fatalf("workload facts: %v", err)
	}
	return facts
}

// container returns the facts of the container with the given name.
func container(t *testing.T, facts map[string]any, name string) map[string]any {
	t.Helper()
	for _, c := range facts["containers"].([]any) {
		cm := c.(map[string]any)
		if cm["name"] == name {
			return cm
		}
	}
	t.Fatalf("no container %q in the facts", name)
	return nil
}

// pod is a Pod manifest with the given annotations, init containers and containers (YAML flow lists).
func pod(annotations, initContainers, containers string) string {
	return `
apiVersion: v1
kind: Pod
metadata:
  name: p
  namespace: shop
  annotations: ` + annotations + `
spec:
  initContainers: ` + initContainers + `
  containers: ` + containers + `
`
}

func TestNormalizeCap(t *testing.T) {
	for _, tc := range []struct{ name, raw, want string }{
		{"a canonical name is unchanged", "NET_ADMIN", "NET_ADMIN"},
		{"a lower-case name is upper-cased", "sys_admin", "SYS_ADMIN"},
		{"a mixed-case name is upper-cased", "Net_Bind_Service", "NET_BIND_SERVICE"},
		{"the CAP_ prefix is stripped", "CAP_SYS_ADMIN", "SYS_ADMIN"},
		{"a lower-case cap_ prefix is stripped too", "cap_chown", "CHOWN"},
		{"surrounding spaces are trimmed", " NET_RAW ", "NET_RAW"},
		{"ALL stays ALL", "all", "ALL"},
		{"only a whole CAP_ prefix is stripped", "CAPTURE", "CAPTURE"},
		{"only one CAP_ prefix is stripped", "CAP_CAP_KILL", "CAP_KILL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := normalizeCap(tc.raw); got != tc.want {
				t.Errorf("normalizeCap(%q) = %q, want %q", tc.raw, got, tc.want)
			}
		})
	}
}

func TestParseSCCBlockMax(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     int64
		ok       bool
	}{
		{"a start/size block ends at start+size-1", "1000650000/10000", 1000659999, true},
		{"a start-end block ends at end", "5000-5099", 5099, true},
		{"only the first of several blocks counts", "1000650000/10000,5000/100", 1000659999, true},
		{"spaces around the first block are ignored", " 1000/10 , 2000/10", 1009, true},
		{"a block of size one is its start", "4000/1", 4000, true},
		{"an empty annotation gives nothing", "", 0, false},
		{"a size of zero is invalid", "1000/0", 0, false},
		{"an end before the start is invalid", "2000-1000", 0, false},
		{"a bare number is not a block", "1000650000", 0, false},
		{"a non-numeric block is invalid", "abc/10", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseSCCBlockMax(tc.in)
			if got != tc.want || ok != tc.ok {
				t.Errorf("parseSCCBlockMax(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestProxyIDs(t *testing.T) {
	for _, tc := range []struct {
		name        string
		annotations map[string]string // namespace annotations
		podAnn      string
		uid, gid    float64
	}{
		{"without OpenShift annotations the proxy is 1337/1337", nil, "{}", 1337, 1337},
		{"the UID range gives both IDs when there are no supplemental groups",
			map[string]string{annSCCUIDRange: "1000650000/10000"}, "{}", 1000659999, 1000659999},
		{"the first supplemental-groups block gives the GID",
			map[string]string{annSCCUIDRange: "1000650000/10000", annSCCSupplementals: "5000-5099,6000/10"}, "{}", 1000659999, 5099},
		{"an unparsable range leaves the default",
			map[string]string{annSCCUIDRange: "garbage"}, "{}", 1337, 1337},
		{"TPROXY interception forces the default IDs even on OpenShift",
			map[string]string{annSCCUIDRange: "1000650000/10000"}, "{sidecar.istio.io/interceptionMode: TPROXY}", 1337, 1337},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := NewConfig()
			cfg.Platform = PlatformOpenShift
			f := podFacts(t, cfg, pod(tc.podAnn, "[]", "[{name: app, image: nginx}]"), tc.annotations, false)
			if f["proxyUID"] != tc.uid || f["proxyGID"] != tc.gid {
				t.Errorf("proxy IDs = %v/%v, want %v/%v", f["proxyUID"], f["proxyGID"], tc.uid, tc.gid)
			}
			// Istio reads the annotations only on OpenShift: elsewhere (and
			// with the platform left to detection, offline) they are inert,
			// whoever wrote them.
			for _, p := range []string{PlatformKubernetes, ""} {
				cfg.Platform = p
				f := podFacts(t, cfg, pod(tc.podAnn, "[]", "[{name: app, image: nginx}]"), tc.annotations, false)
				if f["proxyUID"] != float64(1337) || f["proxyGID"] != float64(1337) {
					t.Errorf("platform %q: proxy IDs = %v/%v, want 1337/1337", p, f["proxyUID"], f["proxyGID"])
				}
			}
		})
	}
}

func TestEffectiveRunAsUserAndGroup(t *testing.T) {
	for _, tc := range []struct {
		name       string
		podSC      string
		containers string
		uid, gid   any // of container "app"; nil when unset
		uidText    string
	}{
		{"the container's own value counts", "{}", "[{name: app, image: nginx, securityContext: {runAsUser: 1000, runAsGroup: 2000}}]",
			float64(1000), float64(2000), `container "app" runs as UID 1000`},
		{"the pod's value is inherited and said so", "{runAsUser: 1337, runAsGroup: 1337}", "[{name: app, image: nginx}]",
			float64(1337), float64(1337), `container "app" runs as UID 1337 (inherited from the pod securityContext)`},
		{"the container overrides the pod", "{runAsUser: 1337, runAsGroup: 1337}", "[{name: app, image: nginx, securityContext: {runAsUser: 1001, runAsGroup: 1001}}]",
			float64(1001), float64(1001), `container "app" runs as UID 1001`},
		{"a container UID 0 overrides a pod UID 1337", "{runAsUser: 1337}", "[{name: app, image: nginx, securityContext: {runAsUser: 0}}]",
			float64(0), nil, `container "app" runs as UID 0`},
		{"user and group are inherited independently", "{runAsGroup: 1337}", "[{name: app, image: nginx, securityContext: {runAsUser: 1000}}]",
			float64(1000), float64(1337), `container "app" runs as UID 1000`},
		{"nothing set anywhere is null", "{}", "[{name: app, image: nginx}]", nil, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := `
apiVersion: apps/v1
kind: Deployment
metadata: {name: d, namespace: shop}
spec:
  template:
    spec:
      securityContext: ` + tc.podSC + `
      containers: ` + tc.containers + `
`
			c := container(t, podFacts(t, nil, m, nil, false), "app")
			if c["runAsUser"] != tc.uid || c["runAsGroup"] != tc.gid {
				t.Errorf("runAsUser/runAsGroup = %v/%v, want %v/%v", c["runAsUser"], c["runAsGroup"], tc.uid, tc.gid)
			}
			if c["uidText"] != tc.uidText {
				t.Errorf("uidText = %q, want %q", c["uidText"], tc.uidText)
			}
		})
	}
	t.Run("an ephemeral container inherits the pod's UID", func(t *testing.T) {
		m := `
apiVersion: v1
kind: Pod
metadata: {name: p, namespace: shop}
spec:
  securityContext: {runAsUser: 1337}
  containers: [{name: app, image: nginx, securityContext: {runAsUser: 1000}}]
  ephemeralContainers: [{name: debug, image: busybox}]
`
		c := container(t, podFacts(t, nil, m, nil, false), "debug")
		if c["runAsUser"] != float64(1337) || c["uidText"] != `ephemeral container "debug" runs as UID 1337 (inherited from the pod securityContext)` {
			t.Errorf("got %v, %q", c["runAsUser"], c["uidText"])
		}
	})
}

func TestIstioContainerExemption(t *testing.T) {
	withMirror := NewConfig()
	withMirror.ProxyImageRegistries = append(withMirror.ProxyImageRegistries, "registry.example.com/mirror/istio")
	privileged := NewConfig()
	privileged.ProxyPrivileged = true
	meshTPROXY := NewConfig()
	meshTPROXY.InterceptionMode = "TPROXY"
	initC := func(image, sc string) string {
		return `[{name: istio-init, image: "` + image + `", args: ` + iptablesArgs + `, securityContext: ` + sc + `}]`
	}
	proxyC := func(image, sc string) string {
		return `[{name: app, image: nginx}, {name: istio-proxy, image: "` + image + `", args: [proxy, sidecar], securityContext: ` + sc + `}]`
	}
	for _, tc := range []struct {
		name     string
		cfg      *Config
		manifest string
		post     bool
		target   string // container whose facts are checked
		exempt   bool
		problem  string // a part of infraText when not exempt
	}{
		// istio-init (no CNI).
		{name: "the injected istio-init is exempt", manifest: pod("{}", initC(proxyImage, initSC), "[{name: app, image: nginx}]"), target: "istio-init", exempt: true},
		{name: "kyverno's bad02, istio-init with a foreign image, is not exempt",
			manifest: pod("{}", initC("docker.io/mymalicious/image", initSC), "[{name: app, image: nginx}]"), target: "istio-init",
			problem: `image "docker.io/mymalicious/image" is not an allowed Istio proxy image`},
		{name: "kyverno's bad01, istio-init adding SYS_ADMIN, is not exempt",
			manifest: pod("{}", initC(proxyImage, `{capabilities: {add: [NET_ADMIN, NET_RAW, SYS_ADMIN]}}`), "[{name: app, image: nginx}]"), target: "istio-init",
			problem: `adds capability "SYS_ADMIN" beyond the injected shape`},
		{name: "istio-init with a CAP_ spelling is not the injected shape",
			manifest: pod("{}", initC(proxyImage, `{capabilities: {add: [CAP_NET_ADMIN]}}`), "[{name: app, image: nginx}]"), target: "istio-init",
			problem: `adds capability "CAP_NET_ADMIN"`},
		{name: "istio-init adding ALL is not exempt",
			manifest: pod("{}", initC(proxyImage, `{capabilities: {add: [ALL]}}`), "[{name: app, image: nginx}]"), target: "istio-init",
			problem: `adds capability "ALL"`},
		{name: "istio-init as a regular container is not exempt",
			manifest: pod("{}", "[]", initC(proxyImage, initSC)), target: "istio-init", problem: "is not an init container"},
		{name: "istio-init that does not run istio-iptables is not exempt",
			manifest: pod("{}", `[{name: istio-init, image: "`+proxyImage+`", args: [sh, -c, "iptables -F"], securityContext: `+initSC+`}]`, "[{name: app, image: nginx}]"),
			target:   "istio-init", problem: `does not run "istio-iptables"`},
		{name: "istio-init without args (the injector merges its own in) is exempt",
			manifest: pod("{}", `[{name: istio-init, image: "`+proxyImage+`", securityContext: `+initSC+`}]`, "[{name: app, image: nginx}]"),
			target:   "istio-init", exempt: true},
		{name: "istio-init that overrides the command is not exempt",
			manifest: pod("{}", `[{name: istio-init, image: "`+proxyImage+`", command: [/bin/sh], args: `+iptablesArgs+`}]`, "[{name: app, image: nginx}]"),
			target:   "istio-init", problem: "overrides the image command"},
		{name: "a privileged istio-init is not exempt by default",
			manifest: pod("{}", initC(proxyImage, `{privileged: true, capabilities: {add: [NET_ADMIN, NET_RAW]}}`), "[{name: app, image: nginx}]"),
			target:   "istio-init", problem: "is privileged while the install does not set global.proxy.privileged"},
		{name: "a privileged istio-init is exempt when the install sets global.proxy.privileged", cfg: privileged,
			manifest: pod("{}", initC(proxyImage, `{privileged: true, capabilities: {add: [NET_ADMIN, NET_RAW]}}`), "[{name: app, image: nginx}]"),
			target:   "istio-init", exempt: true},

		// Images.
		{name: "the Docker Hub shorthand istio/proxyv2 is Istio's image",
			manifest: pod("{}", initC("istio/proxyv2:1.24.2", initSC), "[{name: app, image: nginx}]"), target: "istio-init", exempt: true},
		{name: "index.docker.io/istio/proxyv2 is Istio's image",
			manifest: pod("{}", initC("index.docker.io/istio/proxyv2:1.24.2", initSC), "[{name: app, image: nginx}]"), target: "istio-init", exempt: true},
		{name: "gcr.io/istio-release with a distroless tag is Istio's image",
			manifest: pod("{}", initC("gcr.io/istio-release/proxyv2:1.24.2-distroless", initSC), "[{name: app, image: nginx}]"), target: "istio-init", exempt: true},
		{name: "an image pinned by tag and digest is Istio's image",
			manifest: pod("{}", initC("docker.io/istio/proxyv2:1.24.2@sha256:"+strings.Repeat("ab", 32), initSC), "[{name: app, image: nginx}]"), target: "istio-init", exempt: true},
		{name: "an image pinned by digest alone is Istio's image",
			manifest: pod("{}", initC("docker.io/istio/proxyv2@sha256:"+strings.Repeat("0f", 32), initSC), "[{name: app, image: nginx}]"), target: "istio-init", exempt: true},
		{name: "a truncated digest is not Istio's image",
			manifest: pod("{}", initC("docker.io/istio/proxyv2@sha256:abcdef", initSC), "[{name: app, image: nginx}]"), target: "istio-init", problem: "is not an allowed Istio proxy image"},
		{name: "a look-alike organisation is not Istio's image",
			manifest: pod("{}", initC("docker.io/istiofake/proxyv2:1.24.2", initSC), "[{name: app, image: nginx}]"), target: "istio-init", problem: "is not an allowed Istio proxy image"},
		{name: "a look-alike repository is not Istio's image",
			manifest: pod("{}", initC("docker.io/istio/proxyv2-debug:1.24.2", initSC), "[{name: app, image: nginx}]"), target: "istio-init", problem: "is not an allowed Istio proxy image"},
		{name: "another Istio image is not the proxy image",
			manifest: pod("{}", initC("docker.io/istio/pilot:1.24.2", initSC), "[{name: app, image: nginx}]"), target: "istio-init", problem: "is not an allowed Istio proxy image"},
		{name: "a private mirror is not Istio's image until it is configured",
			manifest: pod("{}", initC("registry.example.com/mirror/istio/proxyv2:1.24.2", initSC), "[{name: app, image: nginx}]"), target: "istio-init", problem: "is not an allowed Istio proxy image"},
		{name: "a private mirror added through ProxyImageRegistries is Istio's image", cfg: withMirror,
			manifest: pod("{}", initC("registry.example.com/mirror/istio/proxyv2:1.24.2", initSC), "[{name: app, image: nginx}]"), target: "istio-init", exempt: true},
		{name: "a configured mirror does not admit its other repositories", cfg: withMirror,
			manifest: pod("{}", initC("registry.example.com/mirror/istio/tools/proxyv2:1.24.2", initSC), "[{name: app, image: nginx}]"), target: "istio-init", problem: "is not an allowed Istio proxy image"},

		// istio-validation (CNI).
		{name: "istio-validation adding nothing is exempt",
			manifest: pod("{}", `[{name: istio-validation, image: "`+proxyImage+`", args: [istio-iptables, --run-validation, --skip-rule-apply], securityContext: `+proxySC+`}]`, "[{name: app, image: nginx}]"),
			target:   "istio-validation", exempt: true},
		{name: "istio-validation adding a capability is not exempt",
			manifest: pod("{}", `[{name: istio-validation, image: "`+proxyImage+`", args: [istio-iptables, --run-validation], securityContext: {capabilities: {add: [NET_RAW]}}}]`, "[{name: app, image: nginx}]"),
			target:   "istio-validation", problem: `adds capability "NET_RAW" beyond the injected shape`},
		{name: "istio-validation running something else is not exempt",
			manifest: pod("{}", `[{name: istio-validation, image: "`+proxyImage+`", args: [proxy, sidecar], securityContext: `+proxySC+`}]`, "[{name: app, image: nginx}]"),
			target:   "istio-validation", problem: `does not run "istio-iptables"`},

		// istio-proxy.
		{name: "the injected istio-proxy is exempt", manifest: pod("{}", "[]", proxyC(proxyImage, proxySC)), post: true, target: "istio-proxy", exempt: true},
		{name: "istio-proxy adding NET_ADMIN without TPROXY is not exempt",
			manifest: pod("{}", "[]", proxyC(proxyImage, `{capabilities: {add: [NET_ADMIN]}}`)), target: "istio-proxy",
			problem: `adds capability "NET_ADMIN" beyond the injected shape`},
		{name: "istio-proxy adding NET_ADMIN under the TPROXY annotation is exempt",
			manifest: pod("{sidecar.istio.io/interceptionMode: TPROXY}", "[]", proxyC(proxyImage, `{capabilities: {add: [NET_ADMIN]}, runAsUser: 0}`)), target: "istio-proxy", exempt: true},
		{name: "istio-proxy adding NET_ADMIN under TPROXY in proxy.istio.io/config is exempt",
			manifest: pod(`{proxy.istio.io/config: "interceptionMode: TPROXY"}`, "[]", proxyC(proxyImage, `{capabilities: {add: [NET_ADMIN]}}`)), target: "istio-proxy", exempt: true},
		{name: "istio-proxy adding NET_ADMIN under a mesh-wide TPROXY default is exempt", cfg: meshTPROXY,
			manifest: pod("{}", "[]", proxyC(proxyImage, `{capabilities: {add: [NET_ADMIN]}}`)), target: "istio-proxy", exempt: true},
		{name: "the pod annotation REDIRECT beats a mesh-wide TPROXY default", cfg: meshTPROXY,
			manifest: pod("{sidecar.istio.io/interceptionMode: REDIRECT}", "[]", proxyC(proxyImage, `{capabilities: {add: [NET_ADMIN]}}`)), target: "istio-proxy",
			problem: `adds capability "NET_ADMIN"`},
		{name: "istio-proxy adding NET_BIND_SERVICE is exempt",
			manifest: pod("{}", "[]", proxyC(proxyImage, `{capabilities: {add: [NET_BIND_SERVICE], drop: [ALL]}}`)), target: "istio-proxy", exempt: true},
		{name: "a native-sidecar istio-proxy is exempt",
			manifest: pod("{}", `[{name: istio-proxy, image: "`+proxyImage+`", restartPolicy: Always, args: [proxy, sidecar], securityContext: `+proxySC+`}]`, "[{name: app, image: nginx}]"),
			target:   "istio-proxy", exempt: true},
		{name: "an istio-proxy init container without restartPolicy Always is not exempt",
			manifest: pod("{}", `[{name: istio-proxy, image: "`+proxyImage+`", args: [proxy, sidecar]}]`, "[{name: app, image: nginx}]"),
			target:   "istio-proxy", problem: "is an init container without restartPolicy Always"},
		{name: "istio-proxy running something else is not exempt",
			manifest: pod("{}", "[]", `[{name: istio-proxy, image: "`+proxyImage+`", args: ["-c", "curl example.com"]}]`), target: "istio-proxy",
			problem: `does not run "proxy"`},
		{name: "a gateway template's istio-proxy with image auto is exempt",
			manifest: `
apiVersion: apps/v1
kind: Deployment
metadata: {name: gw, namespace: shop}
spec:
  template:
    metadata: {annotations: {inject.istio.io/templates: gateway}}
    spec:
      containers: [{name: istio-proxy, image: auto}]
`, target: "istio-proxy", exempt: true},
		{name: "an istio-proxy override without image is exempt before injection",
			manifest: pod("{}", "[]", `[{name: app, image: nginx}, {name: istio-proxy, resources: {limits: {cpu: "1"}}}]`), target: "istio-proxy", exempt: true},
		{name: "an istio-proxy without image is not exempt after injection",
			manifest: pod("{}", "[]", `[{name: app, image: nginx}, {name: istio-proxy}]`), post: true, target: "istio-proxy",
			problem: "is not an allowed Istio proxy image"},
		{name: "an istio-proxy with another image is not exempt",
			manifest: pod("{}", "[]", proxyC("docker.io/envoyproxy/envoy:v1.31.0", proxySC)), target: "istio-proxy",
			problem: `image "docker.io/envoyproxy/envoy:v1.31.0" is not an allowed Istio proxy image`},

		// Names.
		{name: "an ephemeral container named istio-proxy is never exempt",
			manifest: `
apiVersion: v1
kind: Pod
metadata: {name: p, namespace: shop}
spec:
  containers: [{name: app, image: nginx}]
  ephemeralContainers: [{name: istio-proxy, image: "` + proxyImage + `", args: [proxy, sidecar]}]
`, target: "istio-proxy"},
		{name: "an application container with Istio's image is not exempt",
			manifest: pod("{}", "[]", `[{name: app, image: "`+proxyImage+`"}]`), target: "app"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := container(t, podFacts(t, tc.cfg, tc.manifest, nil, tc.post), tc.target)
			if c["exempt"] != tc.exempt {
				t.Fatalf("exempt = %v, want %v (infraText %q)", c["exempt"], tc.exempt, c["infraText"])
			}
			text, _ := c["infraText"].(string)
			if tc.exempt && text != "" {
				t.Errorf("an exempt container has infraText %q", text)
			}
			if !strings.Contains(text, tc.problem) {
				t.Errorf("infraText = %q, want it to mention %q", text, tc.problem)
			}
			if tc.problem != "" && !c["istioName"].(bool) {
				t.Errorf("istioName = false for a container with an Istio name")
			}
		})
	}
}

func TestCapAddFacts(t *testing.T) {
	f := podFacts(t, nil, pod("{}", initC2(), `[{name: app, image: nginx, securityContext: {capabilities: {add: [chown, CAP_SYS_ADMIN, NET_BIND_SERVICE]}}}]`), nil, false)
	want := []struct {
		raw, cap  string
		canonical bool
		exempt    bool
	}{
		{"NET_ADMIN", "NET_ADMIN", true, true},
		{"NET_RAW", "NET_RAW", true, true},
		{"chown", "CHOWN", false, false},
		{"CAP_SYS_ADMIN", "SYS_ADMIN", false, false},
		{"NET_BIND_SERVICE", "NET_BIND_SERVICE", true, false},
	}
	adds := f["capAdds"].([]any)
	if len(adds) != len(want) {
		t.Fatalf("got %d capAdds, want %d: %v", len(adds), len(want), adds)
	}
	for i, w := range want {
		a := adds[i].(map[string]any)
		if a["raw"] != w.raw || a["cap"] != w.cap || a["canonical"] != w.canonical || a["exempt"] != w.exempt {
			t.Errorf("capAdds[%d] = %v, want raw %s cap %s canonical %v exempt %v", i, a, w.raw, w.cap, w.canonical, w.exempt)
		}
	}
	if got := adds[2].(map[string]any)["text"]; got != `container "app" adds capability "chown"` {
		t.Errorf("text = %q", got)
	}
}

func initC2() string {
	return `[{name: istio-init, image: "` + proxyImage + `", args: ` + iptablesArgs + `, securityContext: ` + initSC + `}]`
}
