package chart

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

var metricNameRE = regexp.MustCompile(`meshguard_[a-z_]+`)

// The Grafana dashboard renders as a ConfigMap for the dashboard sidecar, is
// valid JSON with panels, and queries only metrics meshguard exports (the
// names are looked up in the Go source, so a renamed metric fails here).
func TestGrafanaDashboard(t *testing.T) {
	if c := render(t, "meshguard", "meshguard"); c.find("ConfigMap", "meshguard-dashboard") != nil {
		t.Error("the dashboard is rendered without metrics.grafanaDashboard.enabled")
	}
	c := render(t, "meshguard", "meshguard", "--set", "metrics.grafanaDashboard.enabled=true", "--set", "metrics.grafanaDashboard.namespace=monitoring")
	var cm corev1.ConfigMap
	into(t, c.get(t, "ConfigMap", "meshguard-dashboard"), &cm)
	if cm.Namespace != "monitoring" || cm.Labels["grafana_dashboard"] != "1" {
		t.Errorf("namespace %q labels %v", cm.Namespace, cm.Labels)
	}
	var dash struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal([]byte(cm.Data["meshguard.json"]), &dash); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	if dash.Title != "meshguard" || len(dash.Panels) < 10 {
		t.Fatalf("title %q, %d panels", dash.Title, len(dash.Panels))
	}
	exported := exportedMetrics(t)
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			for _, m := range metricNameRE.FindAllString(tg.Expr, -1) {
				base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_sum"), "_count")
				if !exported[base] {
					t.Errorf("panel %q queries %s, which meshguard does not export", p.Title, m)
				}
			}
		}
	}
}
