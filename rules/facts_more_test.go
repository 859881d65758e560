package rules

import (
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"
)

func TestIstioNodePath(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/var/run/ztunnel", "/var/run/ztunnel"},
		{"/var/run/ztunnel/ztunnel.sock", "/var/run/ztunnel"},
		{"/run/istio-cni", "/var/run/istio-cni"},
		{"/etc/cni/net.d/", "/etc/cni/net.d"},
		{"/etc//cni/./net.d", "/etc/cni/net.d"},
		{"/opt/cni/bin/../bin", "/opt/cni/bin"},
		{"/proc", "/proc"},
		{"/proc/1/root", "/proc"},
		{"/", "/var/run/ztunnel"},
		{"/var", "/var/run/ztunnel"},
		{"/run", "/var/run/ztunnel"},
		{"/etc/cni", "/etc/cni/net.d"},
		{"/opt", "/opt/cni/bin"},
		{"/var/log", ""},
		{"/etc/cni-backup", ""},
		{"/process", ""},
		{"/var/run/docker.sock", ""},
		{"", ""},
	} {
		if got := istioNodePath(tc.in); got != tc.want {
			t.Errorf("istioNodePath(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestHostPathFacts(t *testing.T) {
	facts := podFacts(t, nil, `
apiVersion: apps/v1
kind: Deployment
metadata: {name: d, namespace: shop}
spec:
  template:
    spec:
      containers: [{name: app, image: app}]
      volumes:
      - {name: logs, hostPath: {path: /var/log}}
      - {name: zt, hostPath: {path: /var/run/ztunnel/ztunnel.sock}}
      - {name: root, hostPath: {path: /}}
      - {name: cfg, configMap: {name: c}}
`, nil, false)
	hps := facts["hostPaths"].([]any)
	if len(hps) != 3 {
		t.Fatalf("hostPaths = %v, want 3 entries", hps)
	}
	want := []struct{ nodePath, text string }{
		{"", `volume "logs" mounts host path "/var/log"`},
		{"/var/run/ztunnel", `volume "zt" mounts host path "/var/run/ztunnel/ztunnel.sock" (under /var/run/ztunnel)`},
		{"/var/run/ztunnel", `volume "root" mounts host path "/" (contains /var/run/ztunnel)`},
	}
	for i, w := range want {
		h := hps[i].(map[string]any)
		if h["nodePath"] != w.nodePath || h["text"] != w.text {
			t.Errorf("hostPaths[%d] = %v, want nodePath %q text %q", i, h, w.nodePath, w.text)
		}
	}
}

func TestPodGroupAndPIDFacts(t *testing.T) {
	facts := podFacts(t, nil, `
apiVersion: v1
kind: Pod
metadata: {name: p, namespace: shop}
spec:
  shareProcessNamespace: true
  securityContext: {fsGroup: 1337, supplementalGroups: [2000, 1337]}
  containers: [{name: app, image: app}]
`, nil, false)
	if facts["shareProcessNamespace"] != true {
		t.Errorf("shareProcessNamespace = %v", facts["shareProcessNamespace"])
	}
	if facts["fsGroup"] != float64(1337) {
		t.Errorf("fsGroup = %v", facts["fsGroup"])
	}
	sg := facts["supplementalGroups"].([]any)
	if len(sg) != 2 || sg[0] != float64(2000) || sg[1] != float64(1337) {
		t.Errorf("supplementalGroups = %v", sg)
	}

	empty := podFacts(t, nil, pod("{}", "[]", "[{name: app, image: app}]"), nil, false)
	if empty["fsGroup"] != nil || len(empty["supplementalGroups"].([]any)) != 0 || empty["shareProcessNamespace"] != false || len(empty["hostPaths"].([]any)) != 0 {
		t.Errorf("defaults: fsGroup %v supplementalGroups %v shareProcessNamespace %v hostPaths %v",
			empty["fsGroup"], empty["supplementalGroups"], empty["shareProcessNamespace"], empty["hostPaths"])
	}
}

func TestWorkloadFactsTypeErrors(t *testing.T) {
	for _, m := range []string{
		`{apiVersion: v1, kind: Pod, metadata: {name: p}, spec: {securityContext: {supplementalGroups: ["x"]}}}`,
		`{apiVersion: v1, kind: Pod, metadata: {name: p}, spec: {securityContext: {fsGroup: "1337"}}}`,
		`{apiVersion: v1, kind: Pod, metadata: {name: p}, spec: {volumes: {}}}`,
		`{apiVersion: v1, kind: Pod, metadata: {name: p}, spec: {volumes: [{name: v, hostPath: {path: 1}}]}}`,
	} {
		if _, err := workloadFactsErr(t, m); err == nil {
			t.Errorf("%s: no error", m)
		}
	}
}

// workloadFactsErr computes the workload facts of a Pod manifest and returns the error.
func workloadFactsErr(t *testing.T, manifest string) (map[string]any, error) {
	t.Helper()
	var obj map[string]any
	if err := yaml.Unmarshal([]byte(manifest), &obj); err != nil {
		t.Fatalf("fixture does not parse: %v", err)
	}
	cc, err := NewConfig().compile()
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	info, _ := LookupKind(schema.GroupKind{Kind: "Pod"})
	e := &engine{cfg: cc, ctx: emptyContext{}}
	return e.workloadFacts(obj, info, &Request{Object: obj}, Namespace{Name: "shop"}, true)
}
