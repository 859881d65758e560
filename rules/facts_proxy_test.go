package rules

import (
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

// proxyFactsOf computes the workload facts of obj for a request with the
// given operation and old object.
func proxyFactsOf(t *testing.T, manifest, operation, oldManifest string, postInjection bool) map[string]any {
	t.Helper()
	obj := decode(t, manifest)
	req := &Request{Object: obj, Operation: operation, PostInjection: postInjection}
	if oldManifest != "" {
		req.OldObject = decode(t, oldManifest)
	}
	cc, err := NewConfig().compile()
	if err != nil {
		t.Fatal(err)
	}
	apiVersion, _ := obj["apiVersion"].(string)
	kind, _ := obj["kind"].(string)
	info, ok := LookupKind(schema.GroupKind{Group: apiGroup(apiVersion), Kind: kind})
	if !ok {
		t.Fatalf("unknown kind %s", kind)
	}
	e := &engine{cfg: cc, ctx: emptyContext{}}
	ns := Namespace{Name: "shop", Labels: map[string]string{"istio-injection": "enabled"}}
	facts, err := e.workloadFacts(obj, info, req, ns, true)
	if err != nil {
		t.Fatalf("workload facts: %v", err)
	}
	return facts
}

func texts(facts map[string]any, key string) []string {
	out := []string{}
	for _, x := range facts[key].([]any) {
		out = append(out, x.(map[string]any)["text"].(string))
	}
	return out
}

func deployment(annotations, containers string) string {
	return `{apiVersion: apps/v1, kind: Deployment, metadata: {name: d, namespace: shop},
  spec: {template: {metadata: {annotations: ` + annotations + `}, spec: {containers: ` + containers + `}}}}`
}

func podWithProxy(image string, annotations string) string {
	return `{apiVersion: v1, kind: Pod, metadata: {name: p, namespace: shop, annotations: ` + annotations + `},
  spec: {containers: [{name: app, image: app}, {name: istio-proxy, image: "` + image + `", args: [proxy, sidecar]}]}}`
}

func TestProxyImageOverrides(t *testing.T) {
	tests := []struct {
		name, manifest, operation, old string
		postInjection                  bool
		want                           []string // substrings, one per override, in order
	}{
		{"a proxyImage annotation with a foreign image is an override",
			deployment(`{sidecar.istio.io/proxyImage: "registry.example.com/envoy:1"}`, `[{name: app, image: app}]`), "", "", false,
			[]string{`annotation sidecar.istio.io/proxyImage is "registry.example.com/envoy:1"`}},
		{"a proxyImage annotation with an allowed proxy image is not",
			deployment(`{sidecar.istio.io/proxyImage: "docker.io/istio/proxyv2:1.24.2"}`, `[{name: app, image: app}]`), "", "", false, nil},
		{"an empty proxyImage annotation changes nothing",
			deployment(`{sidecar.istio.io/proxyImage: " "}`, `[{name: app, image: app}]`), "", "", false, nil},
		{"a template's istio-proxy with image auto takes the injected image",
			deployment(`{}`, `[{name: istio-proxy, image: auto}]`), "", "", false, nil},
		{"a template's istio-proxy without an image takes the injected image",
			deployment(`{}`, `[{name: app, image: app}, {name: istio-proxy, resources: {}}]`), "", "", false, nil},
		{"a template's istio-proxy with a foreign image keeps it",
			deployment(`{}`, `[{name: istio-proxy, image: "ghcr.io/x/proxyv2:1"}]`), "", "", false,
			[]string{`container "istio-proxy" declares image "ghcr.io/x/proxyv2:1", not an allowed Istio proxy image`}},
		{"a container with another name is not the proxy",
			deployment(`{}`, `[{name: envoy, image: "envoyproxy/envoy:v1"}]`), "", "", false, nil},
		{"a Pod manifest before injection may still say auto",
			podWithProxy("auto", `{}`), "", "", false, nil},
		{"a Pod after injection running auto runs a literal image",
			podWithProxy("auto", `{}`), "CREATE", "", true,
			[]string{`container "istio-proxy" runs image "auto" ("auto" is replaced only when the injector injects a new pod`}},
		{"a Pod UPDATE to auto is a literal image change",
			podWithProxy("auto", `{}`), "UPDATE", podWithProxy(proxyImage, `{}`), false,
			[]string{`container "istio-proxy" changes image from "docker.io/istio/proxyv2:1.24.2" to "auto" on a running pod`}},
		{"a Pod UPDATE to a foreign image is an override",
			podWithProxy("evil/envoy:1", `{}`), "UPDATE", podWithProxy(proxyImage, `{}`), false,
			[]string{`container "istio-proxy" changes image from "docker.io/istio/proxyv2:1.24.2" to "evil/envoy:1" on a running pod, not an allowed Istio proxy image`}},
		{"a Pod UPDATE between allowed images is not",
			podWithProxy("docker.io/istio/proxyv2:1.24.3", `{}`), "UPDATE", podWithProxy(proxyImage, `{}`), false, nil},
		{"an unchanged foreign image on UPDATE reads as when it was admitted, so the webhook grandfathers it",
			podWithProxy("evil/envoy:1", `{}`), "UPDATE", podWithProxy("evil/envoy:1", `{}`), false,
			[]string{`container "istio-proxy" runs image "evil/envoy:1", not an allowed Istio proxy image`}},
		{"a proxyImage annotation added on a Pod UPDATE changes nothing: the injector does not run",
			podWithProxy(proxyImage, `{sidecar.istio.io/proxyImage: "evil/envoy:1"}`), "UPDATE", podWithProxy(proxyImage, `{}`), false, nil},
		{"a native sidecar declared in a template keeps its image",
			`{apiVersion: batch/v1, kind: Job, metadata: {name: j, namespace: shop}, spec: {template: {spec: {
  initContainers: [{name: istio-proxy, image: "evil/envoy:1", restartPolicy: Always}], containers: [{name: app, image: app}]}}}}`, "", "", false,
			[]string{`init container "istio-proxy" declares image "evil/envoy:1"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := texts(proxyFactsOf(t, tc.manifest, tc.operation, tc.old, tc.postInjection), "proxyImageOverrides")
			if len(got) != len(tc.want) {
				t.Fatalf("overrides = %q, want %d matching %q", got, len(tc.want), tc.want)
			}
			for i := range got {
				if !strings.Contains(got[i], tc.want[i]) {
					t.Errorf("override %d = %q, want it to contain %q", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestProxyCustomizations(t *testing.T) {
	type entry struct {
		hostPath bool
		text     string
	}
	tests := []struct {
		name, annotations, operation string
		want                         []entry
	}{
		{"a bootstrap override names its ConfigMap", `{sidecar.istio.io/bootstrapOverride: my-bootstrap}`, "",
			[]entry{{false, `annotation sidecar.istio.io/bootstrapOverride replaces the proxy's Envoy bootstrap with ConfigMap "my-bootstrap"`}}},
		{"an empty bootstrap override is still an override", `{sidecar.istio.io/bootstrapOverride: ""}`, "",
			[]entry{{false, `annotation sidecar.istio.io/bootstrapOverride replaces the proxy's Envoy bootstrap with ConfigMap ""`}}},
		{"a user volume keyed by name is one entry per key", `{sidecar.istio.io/userVolume: '{"b":{"secret":{"secretName":"s"}},"a":{"emptyDir":{}}}'}`, "",
			[]entry{{false, `annotation sidecar.istio.io/userVolume adds emptyDir volume "a" to the pod`}, {false, `annotation sidecar.istio.io/userVolume adds secret volume "b" to the pod`}}},
		{"a hostPath user volume is marked", `{sidecar.istio.io/userVolume: '{"run":{"hostPath":{"path":"/var/run"}}}'}`, "",
			[]entry{{true, `annotation sidecar.istio.io/userVolume adds hostPath volume "run" with host path "/var/run"`}}},
		{"hostPath in another case is a hostPath for encoding/json", `{sidecar.istio.io/userVolume: '{"r":{"HOSTPATH":{"PATH":"/"}}}'}`, "",
			[]entry{{true, `annotation sidecar.istio.io/userVolume adds HOSTPATH volume "r" with host path "/"`}}},
		{"an array of volumes uses their names, or their index", `{sidecar.istio.io/userVolume: '[{"name":"x","configMap":{"name":"c"}},{"hostPath":{"path":"/etc"}}]'}`, "",
			[]entry{{false, `annotation sidecar.istio.io/userVolume adds configMap volume "x" to the pod`}, {true, `annotation sidecar.istio.io/userVolume adds hostPath volume "1" with host path "/etc"`}}},
		{"a user volume mount names its path", `{sidecar.istio.io/userVolumeMount: '{"certs":{"mountPath":"/etc/certs"}}'}`, "",
			[]entry{{false, `annotation sidecar.istio.io/userVolumeMount mounts volume "certs" into the proxy at "/etc/certs"`}}},
		{"a value that is not JSON is still reported", `{sidecar.istio.io/userVolumeMount: 'not json'}`, "",
			[]entry{{false, `annotation sidecar.istio.io/userVolumeMount is set (to a value that is not a JSON object or array)`}}},
		{"a JSON scalar is not a list of volumes", `{sidecar.istio.io/userVolume: '"x"'}`, "",
			[]entry{{false, `annotation sidecar.istio.io/userVolume is set (to a value that is not a JSON object or array)`}}},
		{"an empty object adds nothing", `{sidecar.istio.io/userVolume: '{}'}`, "", nil},
		{"other proxy annotations are not customisations", `{sidecar.istio.io/proxyCPU: 100m, sidecar.istio.io/logLevel: debug}`, "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := proxyFactsOf(t, deployment(tc.annotations, `[{name: app, image: app}]`), tc.operation, "", false)
			var got []entry
			for _, x := range f["proxyCustomizations"].([]any) {
				m := x.(map[string]any)
				got = append(got, entry{m["hostPath"].(bool), m["text"].(string)})
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("customizations =\n%+v\nwant\n%+v", got, tc.want)
			}
		})
	}
	t.Run("annotations added on a Pod UPDATE change nothing: the injector does not run", func(t *testing.T) {
		ann := `{sidecar.istio.io/bootstrapOverride: b, sidecar.istio.io/userVolume: '{"r":{"hostPath":{"path":"/"}}}'}`
		f := proxyFactsOf(t, podWithProxy(proxyImage, ann), "UPDATE", podWithProxy(proxyImage, `{}`), false)
		if got := f["proxyCustomizations"].([]any); len(got) != 0 {
			t.Errorf("customizations = %v, want none", got)
		}
	})
	t.Run("a live pod carrying the annotations was injected with them", func(t *testing.T) {
		f := proxyFactsOf(t, podWithProxy(proxyImage, `{sidecar.istio.io/bootstrapOverride: b}`), "", "", true)
		if got := f["proxyCustomizations"].([]any); len(got) != 1 {
			t.Errorf("customizations = %v, want one", got)
		}
	})
}
