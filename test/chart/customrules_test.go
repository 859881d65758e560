package chart

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/meshguard/meshguard/rules"
)

// customRules.files renders a ConfigMap that meshguard loads as --rules-dir:
// the rendered files load as custom rules, the pod mounts them, and a change
// rolls the pods.
func TestCustomRulesValues(t *testing.T) {
	root := repoRoot(t)
	example := filepath.Join(root, "examples", "custom-rules", "ACME0001-prod-strict-mtls", "policy.yaml")
	c := render(t, "meshguard", "meshguard", "--set-file", `customRules.files.prod\.yaml=`+example, "--set", "policy.actions.ACME0001=audit")
	var cm corev1.ConfigMap
	into(t, c.get(t, "ConfigMap", "meshguard-rules"), &cm)
	dir := t.TempDir()
	for name, content := range cm.Data {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	loaded, errs := rules.LoadCustomRules([]string{dir})
	if len(errs) > 0 || len(loaded) != 1 || loaded[0].Code != "ACME0001" {
		t.Fatalf("the rendered rules do not load: %v %v", loaded, errs)
	}
	d := deployment(t, c, "meshguard")
	args := d.Spec.Template.Spec.Containers[0].Args
	if !slices.Contains(args, "--rules-dir=/etc/meshguard-rules") {
		t.Errorf("serve is not given --rules-dir: %v", args)
	}
	mounted := false
	for _, m := range d.Spec.Template.Spec.Containers[0].VolumeMounts {
		mounted = mounted || m.MountPath == "/etc/meshguard-rules" && m.ReadOnly
	}
	if !mounted {
		t.Error("the rules ConfigMap is not mounted read-only at /etc/meshguard-rules")
	}
	if d.Spec.Template.Annotations["checksum/custom-rules"] == "" {
		t.Error("no checksum/custom-rules annotation: a changed rule would not roll the pods")
	}

	// Without custom rules: no ConfigMap, no flag.
	plain := render(t, "meshguard", "meshguard")
	if plain.find("ConfigMap", "meshguard-rules") != nil || slices.Contains(deployment(t, plain, "meshguard").Spec.Template.Spec.Containers[0].Args, "--rules-dir=/etc/meshguard-rules") {
		t.Error("custom rules rendered without customRules values")
	}
	// An existing ConfigMap is mounted instead, and both together are refused.
	own := render(t, "meshguard", "meshguard", "--set", "customRules.configMapName=team-rules")
	found := false
	for _, v := range deployment(t, own, "meshguard").Spec.Template.Spec.Volumes {
		found = found || v.ConfigMap != nil && v.ConfigMap.Name == "team-rules"
	}
	if !found || own.find("ConfigMap", "meshguard-rules") != nil {
		t.Error("customRules.configMapName is not mounted as the rules directory")
	}
	_, stderr, err := helm(t, "template", "meshguard", chartDir, "--set", "customRules.configMapName=x", "--set", "customRules.files.a\\.yaml=y")
	if err == nil || !strings.Contains(stderr, "set files or configMapName, not both") {
		t.Errorf("files and configMapName together: %v %s", err, stderr)
	}
}
