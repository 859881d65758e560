package netpol

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// renderYAML renders a profile as a multi-document YAML stream.
func renderYAML(t *testing.T, c *Config, ns string, p Profile) []byte {
	t.Helper()
	var b bytes.Buffer
	for i, np := range c.Render(ns, p) {
		out, err := yaml.Marshal(np)
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 {
			b.WriteString("---\n")
		}
		b.Write(out)
	}
	return b.Bytes()
}

// TestRenderGolden renders every profile and compares it with the golden
// YAML in testdata (UPDATE_GOLDEN=1 regenerates; review the diff).
func TestRenderGolden(t *testing.T) {
	tuned := NewConfig()
	tuned.DNSPorts = []int32{5353}
	tuned.NodeLocalDNS = "169.254.20.10"
	tuned.PrometheusNamespace = "observability"
	tuned.PrometheusPodLabels = map[string]string{"app": "prometheus", "component": "server"}
	tuned.GatewayNamespaces = []string{"gateways"}
	tuned.GatewayPorts = []int32{8443, 8080}
	tuned.ProbeSourceCIDRs = []string{"169.254.7.127/32"}
	if err := tuned.Validate(); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		file    string
		cfg     *Config
		ns      string
		profile Profile
	}{
		{"sidecar.yaml", NewConfig(), "shop", ProfileSidecar},
		{"ambient.yaml", NewConfig(), "shop", ProfileAmbient},
		{"gateway.yaml", NewConfig(), "istio-ingress", ProfileGateway},
		{"sidecar-tuned.yaml", tuned, "shop", ProfileSidecar},
		{"ambient-tuned.yaml", tuned, "shop", ProfileAmbient},
		{"gateway-tuned.yaml", tuned, "gateways", ProfileGateway},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			got := renderYAML(t, tc.cfg, tc.ns, tc.profile)
			path := filepath.Join("testdata", tc.file)
			if os.Getenv("UPDATE_GOLDEN") != "" {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run UPDATE_GOLDEN=1 go test ./webhook/netpol/ to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from the rendered set (- golden, + rendered; UPDATE_GOLDEN=1 regenerates):\n%s", path, lineDiff(string(want), string(got)))
			}
			// Rendering is deterministic.
			if again := renderYAML(t, tc.cfg, tc.ns, tc.profile); !bytes.Equal(got, again) {
				t.Errorf("two renders differ")
			}
		})
	}
	if got := NewConfig().Render("shop", ProfileNone); len(got) != 0 {
		t.Errorf("profile none must render nothing, got %d policies", len(got))
	}
}

// TestRenderInvariants checks properties every profile must keep, whatever
// the golden files say: labels and version, no plaintext xDS or webhook
// port, no Envoy admin port, no allow-all rules.
func TestRenderInvariants(t *testing.T) {
	c := NewConfig()
	for _, p := range Profiles() {
		set := c.Render("ns1", p)
		if len(set) == 0 {
			t.Fatalf("%s: empty set", p)
		}
		for _, np := range set {
			where := fmt.Sprintf("%s/%s", p, np.Name)
			if np.Namespace != "ns1" {
				t.Errorf("%s: namespace %q", where, np.Namespace)
			}
			if np.Labels[LabelManagedBy] != "meshguard" || np.Labels[LabelManaged] != "true" {
				t.Errorf("%s: labels %v", where, np.Labels)
			}
			if np.Annotations[AnnotationVersion] != PolicySetVersion {
				t.Errorf("%s: annotations %v", where, np.Annotations)
			}
			if len(np.Spec.PolicyTypes) == 0 {
				t.Errorf("%s: policyTypes must be explicit", where)
			}
			for i, r := range np.Spec.Ingress {
				for _, pt := range r.Ports {
					for _, bad := range []int32{15000, 15001, 15004, 15006, 15010, 15017, 15053} {
						if pt.Port.IntVal == bad {
							t.Errorf("%s: ingress[%d] opens %d", where, i, bad)
						}
					}
				}
				if len(r.From) == 0 && len(r.Ports) == 0 {
					t.Errorf("%s: ingress[%d] allows everything", where, i)
				}
			}
			for i, r := range np.Spec.Egress {
				for _, pt := range r.Ports {
					if pt.Port.IntVal == 15010 || pt.Port.IntVal == 15017 {
						t.Errorf("%s: egress[%d] opens %d", where, i, pt.Port.IntVal)
					}
				}
				if len(r.To) == 0 && len(r.Ports) == 0 {
					t.Errorf("%s: egress[%d] allows everything", where, i)
				}
			}
		}
	}
	// Every set of an application profile starts with the default deny.
	for _, p := range []Profile{ProfileSidecar, ProfileAmbient} {
		if Names(p)[0] != NameDefaultDeny {
			t.Errorf("%s: first policy %s", p, Names(p)[0])
		}
	}
}

func TestProfileFor(t *testing.T) {
	c := NewConfig()
	ns := func(name string, labels map[string]string) *corev1.Namespace {
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	}
	cases := []struct {
		ns       *corev1.Namespace
		meshMode string
		want     Profile
	}{
		{ns("shop", nil), "sidecar", ProfileSidecar},
		{ns("shop", nil), "ambient", ProfileAmbient},
		{ns("shop", nil), "none", ProfileNone},
		{ns("shop", map[string]string{LabelProfile: "none"}), "sidecar", ProfileNone},
		{ns("shop", map[string]string{LabelProfile: "system"}), "sidecar", ProfileNone},
		{ns("edge", map[string]string{LabelProfile: "gateway"}), "none", ProfileGateway},
		{ns("shop", map[string]string{LabelProfile: "nonee"}), "sidecar", ProfileSidecar}, // a typo never removes protection
		{ns("istio-ingress", nil), "none", ProfileGateway},
		{ns("istio-ingress", map[string]string{LabelProfile: "none"}), "none", ProfileNone},
		{ns("kube-system", map[string]string{LabelProfile: "sidecar"}), "sidecar", ProfileNone},
		{ns("istio-system", nil), "none", ProfileNone},
	}
	for _, tc := range cases {
		if got, why := c.ProfileFor(tc.ns, tc.meshMode); got != tc.want {
			t.Errorf("%s %v (mesh mode %s): want %s, got %s (%s)", tc.ns.Name, tc.ns.Labels, tc.meshMode, tc.want, got, why)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if err := NewConfig().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for name, mutate := range map[string]func(*Config){
		"--netpol-mode":                func(c *Config) { c.Mode = "dry" },
		"--netpol-gateway-ports":       func(c *Config) { c.GatewayPorts = []int32{443, 15000} },
		"--netpol-istiod-pod-labels":   func(c *Config) { c.IstiodPodLabels = nil },
		"--netpol-dns-ports":           func(c *Config) { c.DNSPorts = []int32{70000} },
		"--netpol-nodelocal-dns":       func(c *Config) { c.NodeLocalDNS = "dns.local" },
		"--netpol-probe-source-cidrs":  func(c *Config) { c.ProbeSourceCIDRs = []string{"0.0.0.0/0"} },
		"--netpol-exclude-namespaces":  func(c *Config) { c.ExcludeNamespaces = nil },
		"namespace \"Monitoring\"":     func(c *Config) { c.PrometheusNamespace = "Monitoring" },
		"--netpol-gateway-health-port": func(c *Config) { c.GatewayHealthPort = 0 },
	} {
		c := NewConfig()
		mutate(c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: want an error naming it, got %v", name, err)
		}
	}
}

// lineDiff is a minimal line diff (longest common subsequence) for failure messages.
func lineDiff(a, b string) string {
	x, y := strings.Split(a, "\n"), strings.Split(b, "\n")
	lcs := make([][]int, len(x)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(y)+1)
	}
	for i := len(x) - 1; i >= 0; i-- {
		for j := len(y) - 1; j >= 0; j-- {
			if x[i] == y[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out strings.Builder
	i, j := 0, 0
	for i < len(x) || j < len(y) {
		switch {
		case i < len(x) && j < len(y) && x[i] == y[j]:
			out.WriteString("  " + x[i] + "\n")
			i, j = i+1, j+1
		case j < len(y) && (i == len(x) || lcs[i][j+1] >= lcs[i+1][j]):
			out.WriteString("+ " + y[j] + "\n")
			j++
		default:
			out.WriteString("- " + x[i] + "\n")
			i++
		}
	}
	return out.String()
}
