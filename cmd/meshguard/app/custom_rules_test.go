package app

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/graph"
)

const examplesCustomRules = "../../../examples/custom-rules"

// The shipped examples are a working rules directory: their fixtures hold.
func TestRulesTestRunsTheExampleCustomRules(t *testing.T) {
	code, out, errOut := run(t, "", "rules", "test", examplesCustomRules)
	if code != 0 {
		t.Fatalf("exit code %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"ok   ACME0001 fail fixture", "ok   ACME0002 pass fixture", "6 fixture(s), 0 failed"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestRulesTestFailsOnAFixtureThatDoesNotHold(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(examplesCustomRules, "ACME0001-prod-strict-mtls")
	dst := filepath.Join(dir, "ACME0001-prod-strict-mtls")
	for _, f := range []string{"policy.yaml", "pass/strict.yaml", "fail/no-policy.yaml", "fail/no-policy.expected"} {
		data, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dst, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if f == "fail/no-policy.expected" {
			data = []byte("Medium Namespace/checkout: something else\n")
		}
		if err := os.WriteFile(filepath.Join(dst, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A pass fixture that violates the rule.
	if err := os.WriteFile(filepath.Join(dst, "pass", "bad.yaml"), []byte("apiVersion: v1\nkind: Namespace\nmetadata: {name: p, labels: {env: prod}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ := run(t, "", "rules", "test", dir)
	if code != ExitFindings {
		t.Errorf("exit code %d, want %d\n%s", code, ExitFindings, out)
	}
	for _, want := range []string{"FAIL ACME0001 pass fixture", "must not violate ACME0001", "FAIL ACME0001 fail fixture", "findings differ", "3 fixture(s), 2 failed"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// --update rewrites the expected findings; then only the pass fixture fails.
	if code, out, _ = run(t, "", "rules", "test", dir, "--update"); code != ExitFindings || !strings.Contains(out, "3 fixture(s), 1 failed") {
		t.Errorf("--update: exit code %d\n%s", code, out)
	}
	got, _ := os.ReadFile(filepath.Join(dst, "fail", "no-policy.expected"))
	if !strings.Contains(string(got), "effective mTLS is PERMISSIVE") {
		t.Errorf("--update wrote %q", got)
	}
}

// audit --rules-dir: custom findings join the built-in ones; a broken custom
// rule is an input error (exit 2) that names its file and field, and every
// other rule still runs.
func TestAuditWithCustomRules(t *testing.T) {
	dir := t.TempDir()
	manifest := filepath.Join(dir, "ns.yaml")
	if err := os.WriteFile(manifest, []byte(`apiVersion: v1
kind: Namespace
metadata: {name: payments, labels: {env: prod, istio-injection: enabled}}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := run(t, "", "audit", "-f", manifest, "--rules-dir", examplesCustomRules, "--fail-on", "Medium", "-o", "json")
	if code != ExitFindings {
		t.Fatalf("exit code %d, want 1\n%s%s", code, out, errOut)
	}
	var rep audit.JSONReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, `"ACME0001"`) || !strings.Contains(out, `"ACME0002"`) {
		t.Errorf("report lacks the custom findings:\n%s", out)
	}

	rulesDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(rulesDir, "broken.yaml"), []byte("apiVersion: json.kyverno.io/v1alpha1\nkind: ValidatingPolicy\nmetadata:\n  name: ACME0009-broken\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ = run(t, "", "audit", "-f", "testdata/net-admin.yaml", "--rules-dir", rulesDir)
	if code != ExitUsage {
		t.Errorf("exit code %d, want 2", code)
	}
	for _, want := range []string{filepath.Join(rulesDir, "broken.yaml") + ": document 1", "custom rule: metadata.annotations[meshguard.io/code]: required", "MESH0150"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestRulesListAndExplainCustomRules(t *testing.T) {
	code, out, errOut := run(t, "", "rules", "explain", "ACME0002", "--rules-dir", examplesCustomRules)
	if code != 0 {
		t.Fatalf("exit code %d: %s", code, errOut)
	}
	if !strings.Contains(out, "ACME0002 meshed-namespace-default-deny") || !strings.Contains(out, "Custom rule, from ") {
		t.Errorf("explain:\n%s", out)
	}
	code, out, _ = run(t, "", "rules", "list", "-o", "json", "--rules-dir", examplesCustomRules)
	if code != 0 || !strings.Contains(out, `"source": "`+filepath.Join(examplesCustomRules, "ACME0001-prod-strict-mtls", "policy.yaml")) {
		t.Errorf("list: exit code %d\n%s", code, out)
	}
	if code, _, errOut = run(t, "", "rules", "explain", "ACME0002"); code != ExitUsage || !strings.Contains(errOut, "unknown rule") {
		t.Errorf("without --rules-dir: exit code %d, %s", code, errOut)
	}
}

// graph --rules-dir: a custom rule's findings are counted on the nodes it
// judges; a broken custom rule is a warning on stderr and the graph is drawn.
func TestGraphWithCustomRules(t *testing.T) {
	rulesDir := t.TempDir()
	policy := `apiVersion: json.kyverno.io/v1alpha1
kind: ValidatingPolicy
metadata:
  name: ACME0100-team-label
  annotations:
    meshguard.io/code: ACME0100
    meshguard.io/title: Deployment without a team label
    meshguard.io/severity: Critical
    meshguard.io/kinds: apps/Deployment
    meshguard.io/why: Every workload has an owning team.
    meshguard.io/remediation: Add metadata.labels.team.
spec:
  rules:
  - name: team-label
    assert:
      all:
      - message: deployment has no team label
        check:
          (metadata.labels.team != null): true
`
	if err := os.WriteFile(filepath.Join(rulesDir, "team.yaml"), []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	fixed := filepath.Join("..", "..", "..", "examples", "bookinfo", "fixed")
	criticals := func(args ...string) int {
		t.Helper()
		code, out, errOut := run(t, "", append([]string{"graph", "-f", fixed, "-o", "json"}, args...)...)
		if code != ExitOK {
			t.Fatalf("graph %v: exit %d: %s", args, code, errOut)
		}
		var doc graph.Document
		if err := json.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, node := range doc.Nodes {
			n += node.Findings["Critical"]
		}
		return n
	}
	without, with := criticals(), criticals("--rules-dir", rulesDir)
	if with-without != 4 {
		t.Errorf("Critical findings on the nodes: %d without the custom rule, %d with it; want the 4 Deployments' ACME0100 added", without, with)
	}

	broken := t.TempDir()
	if err := os.WriteFile(filepath.Join(broken, "broken.yaml"), []byte("apiVersion: json.kyverno.io/v1alpha1\nkind: ValidatingPolicy\nmetadata:\n  name: ACME0009-broken\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := run(t, "", "graph", "-f", fixed, "--rules-dir", broken)
	if code != ExitOK || !strings.Contains(out, "digraph") {
		t.Errorf("a broken custom rule stopped the graph: exit %d\n%s", code, errOut)
	}
	if want := filepath.Join(broken, "broken.yaml") + ": document 1: custom rule: metadata.annotations[meshguard.io/code]: required"; !strings.Contains(errOut, want) {
		t.Errorf("stderr lacks %q:\n%s", want, errOut)
	}
}
