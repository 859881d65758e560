package chart

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshguard/meshguard/certs"
	"github.com/meshguard/meshguard/posture"
	"github.com/meshguard/meshguard/webhook"
	"github.com/meshguard/meshguard/webhook/netpol"
)

// promRule is the part of a PrometheusRule the tests read.
type promRule struct {
	APIVersion, Kind string
	Metadata         struct {
		Name, Namespace string
		Labels          map[string]string
	}
	Spec struct {
		Groups []struct {
			Name  string
			Rules []struct {
				Alert, Expr, For string
				Labels           map[string]string
				Annotations      map[string]string
			}
		}
	}
}

// exportedMetrics are the names of the metrics meshguard serve exports
// itself: the webhook's, the in-flight budget's and the default-deny
// controller's (named by their descriptors), and the certificate's.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{certs.MetricExpiry: true, certs.MetricValid: true}
	fqName := regexp.MustCompile(`fqName: "([^"]+)"`)
	m, lm, nm, pm := webhook.NewMetrics(), webhook.NewLimitMetrics(), netpol.NewMetrics(), posture.NewMetrics()
	for _, c := range []prometheus.Collector{m.Requests, m.Duration, m.Findings, m.Expired, m.CacheSynced, m.ContextErrors, m.IstioAPI,
		m.CustomRules, m.Events, m.EventsDropped, lm.Rejected, lm.InUse, lm.Limit,
		nm.Namespaces, nm.Changes, nm.Preview, nm.GateRefusals, nm.Errors,
		pm.Writes, pm.Results, pm.Judgments, pm.EvaluationErrors, pm.LastResync, pm.ResyncDuration, pm.ReportsAPI, pm.QueueDepth,
		pm.NamespaceMTLS, pm.NamespaceAuthz, pm.NamespaceNetpol, pm.NamespaceWorkloads, pm.NamespaceMeshed, pm.NamespaceFindings, pm.NamespaceQuarantined} {
		ch := make(chan *prometheus.Desc, 4)
		c.Describe(ch)
		close(ch)
		for d := range ch {
			n := fqName.FindStringSubmatch(d.String())
			if n == nil {
				t.Fatalf("no name in descriptor %s", d)
			}
			names[n[1]] = true
		}
	}
	return names
}

func TestPrometheusRule(t *testing.T) {
	t.Run("it is not rendered by default", func(t *testing.T) {
		if o := render(t, "meshguard", "meshguard").find("PrometheusRule", ""); o != nil {
			t.Fatalf("a PrometheusRule was rendered without metrics.prometheusRule.enabled")
		}
	})
	t.Run("when enabled it alerts on the certificate and the context with the thresholds and labels of the values", func(t *testing.T) {
		values := `metrics:
  prometheusRule:
    enabled: true
    labels: {prometheus: platform}
    alertLabels: {team: mesh-security}
    certificateExpiryWarningDays: 30
    certificateExpiryCriticalDays: 3
    contextErrorsFor: 20m
`
		f := filepath.Join(t.TempDir(), "values.yaml")
		if err := os.WriteFile(f, []byte(values), 0o600); err != nil {
			t.Fatal(err)
		}
		c := render(t, "guard", "platform", "-f", f)
		var pr promRule
		into(t, c.get(t, "PrometheusRule", "guard-meshguard"), &pr)
		if pr.Metadata.Namespace != "platform" || pr.Metadata.Labels["prometheus"] != "platform" || pr.Metadata.Labels["app.kubernetes.io/name"] != "meshguard" {
			t.Errorf("metadata: %+v", pr.Metadata)
		}
		want := map[string]struct{ severity, exprHas, forDur string }{
			"MeshguardCertificateExpiringSoon":   {"warning", "meshguard_certificate_expiry_timestamp_seconds{" + `job="guard-meshguard-metrics", namespace="platform"} - time()) < 2592000`, "15m"},
			"MeshguardCertificateExpiryCritical": {"critical", "< 259200", "15m"},
			"MeshguardCertificateInvalid":        {"critical", `meshguard_certificate_valid{job="guard-meshguard-metrics", namespace="platform"} == 0`, "5m"},
			"MeshguardContextErrors":             {"warning", `rate(meshguard_context_errors_total{job="guard-meshguard-metrics", namespace="platform"}[5m])`, "20m"},
		}
		exported := exportedMetrics(t)
		metricName := regexp.MustCompile(`\bmeshguard_[a-z_]+`)
		seen := map[string]bool{}
		for _, g := range pr.Spec.Groups {
			for _, r := range g.Rules {
				seen[r.Alert] = true
				w, ok := want[r.Alert]
				if !ok {
					t.Errorf("unexpected alert %s", r.Alert)
					continue
				}
				if r.Labels["severity"] != w.severity || r.Labels["team"] != "mesh-security" {
					t.Errorf("%s: labels %v", r.Alert, r.Labels)
				}
				if !strings.Contains(r.Expr, w.exprHas) {
					t.Errorf("%s: expr %q lacks %q", r.Alert, r.Expr, w.exprHas)
				}
				if r.For != w.forDur {
					t.Errorf("%s: for %q, want %q", r.Alert, r.For, w.forDur)
				}
				if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
					t.Errorf("%s: a summary and a description are needed: %v", r.Alert, r.Annotations)
				}
				// Every metric an alert reads is one meshguard exports.
				for _, n := range metricName.FindAllString(r.Expr, -1) {
					if !exported[n] {
						t.Errorf("%s reads %s, which meshguard does not export (it exports %v)", r.Alert, n, sortedKeys(exported))
					}
				}
			}
		}
		for a := range want {
			if !seen[a] {
				t.Errorf("alert %s is missing", a)
			}
		}
		out, stderr, err := helm(t, "lint", "--strict", chartDir, "-f", f)
		if err != nil {
			t.Fatalf("helm lint with the PrometheusRule: %v\n%s%s", err, out, stderr)
		}
	})
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"a warning threshold of zero days", []string{"--set", "metrics.prometheusRule.certificateExpiryWarningDays=0"}, "/metrics/prometheusRule/certificateExpiryWarningDays"},
		{"a duration Prometheus cannot read", []string{"--set", "metrics.prometheusRule.contextErrorsFor=ten minutes"}, "/metrics/prometheusRule/contextErrorsFor"},
		{"a misspelt value", []string{"--set", "metrics.prometheusRule.enable=true"}, "additional properties 'enable' not allowed"},
	} {
		t.Run(tc.name+" is rejected", func(t *testing.T) {
			_, stderr, err := helm(t, append([]string{"template", "meshguard", chartDir}, tc.args...)...)
			if err == nil || !strings.Contains(stderr, tc.want) {
				t.Fatalf("want a schema error naming %q, got %v\n%s", tc.want, err, stderr)
			}
		})
	}
	t.Run("a critical threshold above the warning one is rejected", func(t *testing.T) {
		_, stderr, err := helm(t, "template", "meshguard", chartDir, "--set", "metrics.prometheusRule.enabled=true",
			"--set", "metrics.prometheusRule.certificateExpiryCriticalDays=30", "--set", "metrics.prometheusRule.certificateExpiryWarningDays=7")
		if err == nil || !strings.Contains(stderr, "certificateExpiryCriticalDays must not exceed certificateExpiryWarningDays") {
			t.Fatalf("want the thresholds refused, got %v\n%s", err, stderr)
		}
	})
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
