package chart

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/yaml"

	"github.com/meshguard/meshguard/cmd/meshguard/app"
	"github.com/meshguard/meshguard/internal/gotune"
	"github.com/meshguard/meshguard/rules"
)

// chartValues reads the chart's values.yaml.
func chartValues(t *testing.T) map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := yaml.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func stringList(t *testing.T, v any, path string) []string {
	t.Helper()
	items, ok := v.([]any)
	if !ok && v != nil {
		t.Fatalf("values.yaml: %s is not a list: %v", path, v)
	}
	out := []string{}
	for _, i := range items {
		out = append(out, fmt.Sprint(i))
	}
	return out
}

// TestSystemNamespacesOneSource: the system namespaces are written once in
// Go (rules.DefaultSystemNamespaces) and once in the chart (systemNamespaces,
// which cannot import Go), and the two are equal. The chart's other lists
// only add to it, and no other file spells the list out again.
func TestSystemNamespacesOneSource(t *testing.T) {
	v := chartValues(t)
	if got, want := stringList(t, v["systemNamespaces"], "systemNamespaces"), rules.DefaultSystemNamespaces(); !slices.Equal(got, want) {
		t.Errorf("values.yaml systemNamespaces %v, want rules.DefaultSystemNamespaces() %v", got, want)
	}
	extra := func(section, key string) []string {
		m, _ := v[section].(map[string]any)
		return stringList(t, m[key], section+"."+key)
	}
	if got := extra("webhook", "excludeNamespaces"); len(got) != 0 {
		t.Errorf("values.yaml webhook.excludeNamespaces %v repeats namespaces; it adds to systemNamespaces and is empty by default", got)
	}
	if got := extra("mesh", "systemNamespaces"); len(got) != 0 {
		t.Errorf("values.yaml mesh.systemNamespaces %v repeats namespaces; it adds to systemNamespaces and is empty by default", got)
	}
	netpol := append(stringList(t, v["systemNamespaces"], "systemNamespaces"), extra("networkPolicies", "excludeNamespaces")...)
	if want := rules.DefaultNetpolExcludeNamespaces(); !slices.Equal(netpol, want) {
		t.Errorf("systemNamespaces and networkPolicies.excludeNamespaces give %v, want rules.DefaultNetpolExcludeNamespaces() %v", netpol, want)
	}

	// kube-node-lease stands for the list: it appears in the two sources
	// and in documentation, nowhere else.
	root := repoRoot(t)
	allowed := map[string]bool{"rules/config.go": true, chartDir + "/values.yaml": true}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			if rel == "bin" || rel == "dist" || strings.HasPrefix(d.Name(), ".") && rel != "." {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(rel, "_test.go") || strings.HasSuffix(rel, ".md") || allowed[filepath.ToSlash(rel)] {
			return nil
		}
		if ext := filepath.Ext(rel); ext != ".go" && ext != ".yaml" && ext != ".tpl" && ext != ".json" {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(data, []byte("kube-node-lease")) {
			t.Errorf("%s spells out the system namespaces; use rules.DefaultSystemNamespaces() (Go) or .Values.systemNamespaces (chart)", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestPodDisruptionBudgetOnlyWithReplicas: with one replica a budget of one
// would forbid every eviction and block node drains.
func TestPodDisruptionBudgetOnlyWithReplicas(t *testing.T) {
	for _, tc := range []struct {
		replicas int
		want     bool
	}{{1, false}, {2, true}, {3, true}} {
		t.Run(fmt.Sprintf("%d replicas render a PodDisruptionBudget: %v", tc.replicas, tc.want), func(t *testing.T) {
			c := render(t, "meshguard", "meshguard", "--set", fmt.Sprintf("replicaCount=%d", tc.replicas))
			if got := c.find("PodDisruptionBudget", "meshguard") != nil; got != tc.want {
				t.Errorf("PodDisruptionBudget rendered: %v, want %v", got, tc.want)
			}
			if r := *deployment(t, c, "meshguard").Spec.Replicas; r != int32(tc.replicas) {
				t.Errorf("replicas %d, want %d", r, tc.replicas)
			}
		})
	}
}

// TestMemoryLimitRatio: the chart's container runs `meshguard serve` with
// the chart's arguments and environment in a cgroup whose limit is the
// chart's memory limit, and the Go memory limit in force is
// --memory-limit-ratio (90%) of it, as the README says; no GOMEMLIMIT from
// the chart overrides it.
func TestMemoryLimitRatio(t *testing.T) {
	c := render(t, "meshguard", "meshguard")
	ctr := deployment(t, c, "meshguard").Spec.Template.Spec.Containers[0]
	limit := ctr.Resources.Limits.Memory()
	if limit.IsZero() {
		t.Fatal("the chart sets no memory limit")
	}
	env := map[string]string{}
	for _, e := range ctr.Env {
		if e.ValueFrom == nil {
			env[e.Name] = e.Value
		} else if e.ValueFrom.ResourceFieldRef != nil {
			env[e.Name] = fmt.Sprint(limit.Value()) // what the kubelet would put there
		}
	}
	var got *app.ServeOptions
	var out bytes.Buffer
	t.Setenv("POD_NAMESPACE", "meshguard")
	cmd := app.NewServeCommand(app.Streams{Out: &out, Err: &out}, func(_ context.Context, _ app.Streams, o *app.ServeOptions) error {
		got = o
		return nil
	})
	cmd.SetArgs(ctr.Args[1:])
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	if err := cmd.Execute(); err != nil {
		t.Fatalf("meshguard serve rejects the chart's arguments: %v", err)
	}
	cgroup := t.TempDir()
	if err := os.WriteFile(filepath.Join(cgroup, "memory.max"), []byte(fmt.Sprintf("%d\n", limit.Value())), 0o600); err != nil {
		t.Fatal(err)
	}
	// Apply changes the test process's collector: restore it.
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	applied, err := gotune.Apply(got.GoRuntime, func(k string) string { return env[k] }, cgroup)
	if err != nil {
		t.Fatal(err)
	}
	want := int64(float64(limit.Value()) * gotune.DefaultMemoryLimitRatio)
	if applied.MemoryLimitSource != "cgroup" || applied.MemoryLimit != want {
		t.Fatalf("Go memory limit %d from %s, want %d (%.0f%% of the %s limit) from the cgroup", applied.MemoryLimit, applied.MemoryLimitSource, want, gotune.DefaultMemoryLimitRatio*100, limit)
	}
	// The background audit is on by default, and with it backgroundAudit.gcPercent (100).
	if applied.GCPercent != 100 || applied.GCPercentSource != "flag" {
		t.Errorf("GOGC %d from %s, want 100 (backgroundAudit.gcPercent) from the flag", applied.GCPercent, applied.GCPercentSource)
	}
	readme, err := os.ReadFile(filepath.Join(repoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	mib := func(b int64) string {
		v := float64(b) / (1 << 20)
		if v == math.Trunc(v) {
			return fmt.Sprintf("%.0f MiB", v)
		}
		return fmt.Sprintf("%.1f MiB", v)
	}
	sentence := fmt.Sprintf("the chart's %s limit gives %s", mib(limit.Value()), mib(want))
	if !strings.Contains(strings.Join(strings.Fields(string(readme)), " "), sentence) {
		t.Errorf("README.md does not say %q", sentence)
	}
}

// TestOwnNetworkPolicy checks the NetworkPolicy for meshguard's own pods.
func TestOwnNetworkPolicy(t *testing.T) {
	get := func(t *testing.T, args ...string) *networkingv1.NetworkPolicy {
		t.Helper()
		c := render(t, "meshguard", "meshguard", args...)
		o := c.find("NetworkPolicy", "meshguard")
		if o == nil {
			return nil
		}
		var np networkingv1.NetworkPolicy
		into(t, o, &np)
		return &np
	}
	ports := func(ps []networkingv1.NetworkPolicyPort) []int {
		var out []int
		for _, p := range ps {
			if p.Protocol == nil || *p.Protocol != corev1.ProtocolTCP || p.Port == nil {
				t.Errorf("port %+v is not a TCP port number", p)
				continue
			}
			out = append(out, p.Port.IntValue())
		}
		return out
	}
	t.Run("the default lets any address reach the webhook port, Prometheus the metrics port, and the pods the API server only", func(t *testing.T) {
		np := get(t)
		if np == nil {
			t.Fatal("no NetworkPolicy is rendered by default")
		}
		if np.Spec.PodSelector.MatchLabels["app.kubernetes.io/name"] != "meshguard" || np.Spec.PodSelector.MatchLabels["app.kubernetes.io/instance"] != "meshguard" {
			t.Errorf("podSelector %+v does not select the meshguard pods (only)", np.Spec.PodSelector)
		}
		if !slices.Equal(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}) {
			t.Errorf("policyTypes %v, want Ingress and Egress", np.Spec.PolicyTypes)
		}
		if len(np.Spec.Ingress) != 2 {
			t.Fatalf("%d ingress rules, want 2 (webhook, metrics): %+v", len(np.Spec.Ingress), np.Spec.Ingress)
		}
		webhook, metrics := np.Spec.Ingress[0], np.Spec.Ingress[1]
		// The API server is not a pod: nothing but "every source" matches it.
		if !slices.Equal(ports(webhook.Ports), []int{9443}) || len(webhook.From) != 0 {
			t.Errorf("webhook rule %+v, want port 9443 from every source", webhook)
		}
		if !slices.Equal(ports(metrics.Ports), []int{8080}) || len(metrics.From) != 1 ||
			metrics.From[0].NamespaceSelector == nil || metrics.From[0].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "monitoring" ||
			metrics.From[0].PodSelector == nil || metrics.From[0].PodSelector.MatchLabels["app.kubernetes.io/name"] != "prometheus" {
			t.Errorf("metrics rule %+v, want port 8080 from the Prometheus pods of networkPolicies.prometheus*", metrics)
		}
		if len(np.Spec.Egress) != 1 || !slices.Equal(ports(np.Spec.Egress[0].Ports), []int{443, 6443}) || len(np.Spec.Egress[0].To) != 0 {
			t.Errorf("egress %+v, want ports 443 and 6443 to any address only", np.Spec.Egress)
		}
	})
	t.Run("the values narrow the sources and destinations", func(t *testing.T) {
		values := `ownNetworkPolicy:
  webhookFrom: [{ipBlock: {cidr: 10.0.0.0/24}}]
  metricsFrom: [{namespaceSelector: {matchLabels: {team: observability}}}]
  apiServer: {cidrs: [10.0.0.10/32, "fd00::10/128"], ports: [443]}
  extraEgress: [{ports: [{port: 53, protocol: UDP}]}]
`
		f := filepath.Join(t.TempDir(), "values.yaml")
		if err := os.WriteFile(f, []byte(values), 0o600); err != nil {
			t.Fatal(err)
		}
		np := get(t, "-f", f)
		if np == nil {
			t.Fatal("no NetworkPolicy")
		}
		if w := np.Spec.Ingress[0]; len(w.From) != 1 || w.From[0].IPBlock == nil || w.From[0].IPBlock.CIDR != "10.0.0.0/24" {
			t.Errorf("webhook rule %+v, want from 10.0.0.0/24", w)
		}
		if m := np.Spec.Ingress[1]; len(m.From) != 1 || m.From[0].NamespaceSelector == nil || m.From[0].NamespaceSelector.MatchLabels["team"] != "observability" || m.From[0].PodSelector != nil {
			t.Errorf("metrics rule %+v, want from metricsFrom", m)
		}
		if len(np.Spec.Egress) != 2 {
			t.Fatalf("egress %+v, want the API server rule and the extra one", np.Spec.Egress)
		}
		api := np.Spec.Egress[0]
		if !slices.Equal(ports(api.Ports), []int{443}) || len(api.To) != 2 || api.To[0].IPBlock.CIDR != "10.0.0.10/32" || api.To[1].IPBlock.CIDR != "fd00::10/128" {
			t.Errorf("API server egress %+v", api)
		}
	})
	t.Run("disabled, nothing is rendered", func(t *testing.T) {
		if np := get(t, "--set", "ownNetworkPolicy.enabled=false"); np != nil {
			t.Errorf("a NetworkPolicy is rendered although ownNetworkPolicy.enabled=false")
		}
	})
}

// TestClientCAValues: webhook.clientCA mounts the CA bundle as a directory
// (a subPath would never see updates) and passes --client-ca-file, which
// the real serve command accepts.
func TestClientCAValues(t *testing.T) {
	for _, tc := range []struct {
		name, arg string
		secret    bool
	}{
		{"a ConfigMap", "webhook.clientCA.configMapName=apiserver-client-ca", false},
		{"a Secret", "webhook.clientCA.secretName=apiserver-client-ca", true},
	} {
		t.Run("the CA bundle from "+tc.name+" is mounted and passed as --client-ca-file", func(t *testing.T) {
			c := render(t, "meshguard", "meshguard", "--set", tc.arg, "--set", "webhook.clientCA.key=bundle.pem")
			d := deployment(t, c, "meshguard")
			ctr := d.Spec.Template.Spec.Containers[0]
			if !slices.Contains(ctr.Args, "--client-ca-file=/var/run/meshguard/client-ca/bundle.pem") {
				t.Errorf("the arguments lack --client-ca-file: %v", ctr.Args)
			}
			var vol *corev1.Volume
			for i := range d.Spec.Template.Spec.Volumes {
				if d.Spec.Template.Spec.Volumes[i].Name == "client-ca" {
					vol = &d.Spec.Template.Spec.Volumes[i]
				}
			}
			switch {
			case vol == nil:
				t.Fatal("no client-ca volume")
			case tc.secret && (vol.Secret == nil || vol.Secret.SecretName != "apiserver-client-ca" || len(vol.Secret.Items) != 1 || vol.Secret.Items[0].Key != "bundle.pem"):
				t.Errorf("client-ca volume %+v, want Secret apiserver-client-ca key bundle.pem", vol)
			case !tc.secret && (vol.ConfigMap == nil || vol.ConfigMap.Name != "apiserver-client-ca" || len(vol.ConfigMap.Items) != 1 || vol.ConfigMap.Items[0].Key != "bundle.pem"):
				t.Errorf("client-ca volume %+v, want ConfigMap apiserver-client-ca key bundle.pem", vol)
			}
			if !slices.ContainsFunc(ctr.VolumeMounts, func(m corev1.VolumeMount) bool {
				return m.Name == "client-ca" && m.MountPath == "/var/run/meshguard/client-ca" && m.ReadOnly && m.SubPath == ""
			}) {
				t.Errorf("client-ca is not mounted read-only as a directory: %+v", ctr.VolumeMounts)
			}
			checkServeFlags(t, c, variants[0])
			restricted(t, "Deployment", d.Spec.Template.Spec)
		})
	}
	t.Run("by default no client certificate is asked for", func(t *testing.T) {
		d := deployment(t, render(t, "meshguard", "meshguard"), "meshguard")
		for _, a := range d.Spec.Template.Spec.Containers[0].Args {
			if strings.HasPrefix(a, "--client-ca-file") {
				t.Errorf("the default passes %s", a)
			}
		}
	})
	t.Run("a ConfigMap and a Secret together are refused", func(t *testing.T) {
		_, stderr, err := helm(t, "template", "meshguard", chartDir, "--set", "webhook.clientCA.configMapName=a", "--set", "webhook.clientCA.secretName=b")
		if err == nil || !strings.Contains(stderr, "webhook.clientCA: set configMapName or secretName, not both") {
			t.Errorf("helm template: %v\n%s", err, stderr)
		}
	})
}
