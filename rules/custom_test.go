package rules_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/rules"
)

// customPolicy returns a custom rule document; check and message are the
// policy rule's, kinds its meshguard.io/kinds.
func customPolicy(name, code, kinds, message, check string) string {
	return `apiVersion: json.kyverno.io/v1alpha1
kind: ValidatingPolicy
metadata:
  name: ` + name + `
  annotations:
    meshguard.io/code: ` + code + `
    meshguard.io/title: A custom check
    meshguard.io/severity: High
    meshguard.io/kinds: ` + kinds + `
    meshguard.io/why: Because the platform team says so.
    meshguard.io/remediation: Do what the platform team says.
spec:
  rules:
  - name: check
    assert:
      all:
      - message: ` + message + `
        check:
          ` + check + `
`
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadCustomRulesReportsEachBrokenRuleAndKeepsTheRest(t *testing.T) {
	dir := t.TempDir()
	good := customPolicy("ACME0001-team-label", "ACME0001", "workloads", "no team label", "(metadata.labels.team != null): true")
	writeFile(t, filepath.Join(dir, "good.yaml"), good)
	// Three documents: a good one, one with a MESH code, one without a title.
	noTitle := strings.Replace(customPolicy("ACME0004-no-title", "ACME0004", "Service", "x", "(true): true"), "    meshguard.io/title: A custom check\n", "", 1)
	writeFile(t, filepath.Join(dir, "multi.yml"), "# leading comment\n---\n"+
		customPolicy("ACME0002-second", "ACME0002", "Service", "x", "(true): true")+"---\n"+
		customPolicy("MESH9999-mine", "MESH9999", "Service", "x", "(true): true")+"---\n"+noTitle)
	writeFile(t, filepath.Join(dir, "bad-yaml.yaml"), "apiVersion: json.kyverno.io/v1alpha1\nkind: ValidatingPolicy\nmetadata: [\n")
	writeFile(t, filepath.Join(dir, "wrong-kind.yaml"), customPolicy("ACME0005-k", "ACME0005", "Secretz", "x", "(true): true"))
	writeFile(t, filepath.Join(dir, "code-mismatch.yaml"), customPolicy("ACME0006-m", "ACME0007", "Service", "x", "(true): true"))
	// Catalog layout: the folder must be named as the rule.
	writeFile(t, filepath.Join(dir, "ACME0003-folder", "policy.yaml"), customPolicy("ACME0003-folder", "ACME0003", "Service", "x", "(true): true"))
	writeFile(t, filepath.Join(dir, "ACME0008-elsewhere", "policy.yaml"), customPolicy("ACME0009-other", "ACME0009", "Service", "x", "(true): true"))
	// Not rules: other extensions, folders without policy.yaml, dot entries.
	writeFile(t, filepath.Join(dir, "README.md"), "not a rule")
	writeFile(t, filepath.Join(dir, "docs", "notes.yaml"), "not: a rule")
	writeFile(t, filepath.Join(dir, "..2026_12_05", "good.yaml"), "garbage: [")

	got, errs := rules.LoadCustomRules([]string{dir, filepath.Join(dir, "missing")})
	var codes []string
	for _, r := range got {
		codes = append(codes, r.Code)
		if !r.Custom || r.Source == "" {
			t.Errorf("%s: Custom %v, Source %q", r.Code, r.Custom, r.Source)
		}
	}
	if strings.Join(codes, ",") != "ACME0003,ACME0001,ACME0002" {
		t.Errorf("loaded %v, want ACME0003 (folder), ACME0001 and ACME0002 in directory order", codes)
	}
	want := []string{
		"multi.yml: document 2: metadata.name: \"MESH9999-mine\": codes starting with MESH are meshguard's own",
		"multi.yml: document 3: metadata.annotations[meshguard.io/title]: required",
		"bad-yaml.yaml: document 1: decode:",
		"wrong-kind.yaml: document 1: metadata.annotations[meshguard.io/kinds]: unknown kind \"Secretz\"",
		"code-mismatch.yaml: document 1: metadata.annotations[meshguard.io/code]: \"ACME0007\" does not match",
		"ACME0008-elsewhere/policy.yaml: document 1: metadata.name: \"ACME0009-other\" must equal the folder name \"ACME0008-elsewhere\"",
		"missing: read rules directory:",
	}
	var msgs []string
	for _, e := range errs {
		var ce *rules.CustomRuleError
		if !errors.As(e, &ce) {
			t.Errorf("%v is not a *CustomRuleError", e)
		}
		msgs = append(msgs, e.Error())
	}
	all := strings.Join(msgs, "\n")
	for _, w := range want {
		if !strings.Contains(all, w) {
			t.Errorf("errors lack %q:\n%s", w, all)
		}
	}
	if len(errs) != len(want) {
		t.Errorf("%d errors, want %d:\n%s", len(errs), len(want), all)
	}
}

func TestCustomRulesJoinTheCatalog(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.yaml"), customPolicy("ACME0001-team-label", "ACME0001", "workloads", "no team label", "(metadata.labels.team != null): true"))
	writeFile(t, filepath.Join(dir, "b.yaml"), customPolicy("ACME0001-again", "ACME0001", "Service", "x", "(true): true"))
	cat, errs, err := rules.LoadCatalogWithCustomRules([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "code ACME0001 is already used by "+filepath.Join(dir, "a.yaml")) {
		t.Fatalf("errors %v, want one duplicate-code error naming a.yaml", errs)
	}
	r, ok := cat.Rule("ACME0001")
	if !ok || r.Name != "team-label" {
		t.Fatalf("ACME0001: %v %+v", ok, r)
	}
	base, _ := rules.DefaultCatalog()
	if len(cat.Rules()) != len(base.Rules())+1 {
		t.Errorf("%d rules, want the %d built-in ones and one custom", len(cat.Rules()), len(base.Rules()))
	}
	if last := cat.Rules()[len(cat.Rules())-1]; last.Code != "ACME0001" {
		t.Errorf("custom rules are listed after the built-in ones, last is %s", last.Code)
	}
	if _, ok := base.Rule("ACME0001"); ok {
		t.Error("WithCustomRules modified the built-in catalog")
	}
}

// A custom rule that fails on an object (here: a JMESPath function given the
// wrong type) is a finding of that rule saying so, at its severity; the
// built-in rules' findings on the same object are still returned.
func TestCustomRuleFailureIsItsOwnFindingAndBuiltInsStillRun(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "broken.yaml"), customPolicy("ACME0001-broken", "ACME0001", "workloads",
		"bad", "(starts_with(spec.replicas, 'x')): true"))
	writeFile(t, filepath.Join(dir, "fine.yaml"), customPolicy("ACME0002-team-label", "ACME0002", "workloads",
		"workload has no team label", "(metadata.labels.team != null): true"))
	cat, errs, err := rules.LoadCatalogWithCustomRules([]string{dir})
	if err != nil || len(errs) > 0 {
		t.Fatal(err, errs)
	}
	ev, err := rules.New(cat, nil)
	if err != nil {
		t.Fatal(err)
	}
	obj := rules.Object{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": map[string]any{"name": "web", "namespace": "shop"},
		"spec": map[string]any{"replicas": float64(2), "template": map[string]any{"spec": map[string]any{"containers": []any{
			map[string]any{"name": "app", "image": "web", "securityContext": map[string]any{"capabilities": map[string]any{"add": []any{"NET_ADMIN"}}}},
		}}}}}
	fs, err := ev.Evaluate(context.Background(), &rules.Request{Object: obj})
	if err != nil {
		t.Fatalf("a failing custom rule must not fail the evaluation: %v", err)
	}
	got := map[string]rules.Finding{}
	for _, f := range fs {
		got[f.Code] = f
	}
	if _, ok := got["MESH0150"]; !ok {
		t.Errorf("the built-in MESH0150 finding is missing: %+v", fs)
	}
	if f, ok := got["ACME0002"]; !ok || f.Message != "workload has no team label" {
		t.Errorf("ACME0002: %+v", f)
	}
	f, ok := got["ACME0001"]
	if !ok {
		t.Fatalf("the failing custom rule left no finding: %+v", fs)
	}
	if f.Severity != rules.SeverityHigh || !strings.Contains(f.Message, "could not be evaluated") ||
		!strings.Contains(f.Message, filepath.Join(dir, "broken.yaml")) || !strings.Contains(f.Remediation, "platform team") {
		t.Errorf("ACME0001 finding %+v", f)
	}
}

// The facts custom compliance rules read on a Namespace: the effective mTLS
// and whether authorization is default-deny, resolved from the context.
func TestNamespaceAuthzResolution(t *testing.T) {
	ap := func(ns, name string, spec map[string]any, ann map[string]any) rules.Object {
		meta := map[string]any{"name": name, "namespace": ns}
		if ann != nil {
			meta["annotations"] = ann
		}
		return rules.Object{"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy", "metadata": meta, "spec": spec}
	}
	allowNothing := map[string]any{}
	allowAll := map[string]any{"rules": []any{map[string]any{}}}
	denyAll := map[string]any{"action": "DENY", "rules": []any{map[string]any{}}}
	workload := map[string]any{"selector": map[string]any{"matchLabels": map[string]any{"app": "web"}}}
	everyPod := map[string]any{"selector": map[string]any{"matchLabels": map[string]any{"security.istio.io/tlsMode": "istio"}}}
	cases := []struct {
		name     string
		policies []rules.Object
		deny     bool
		level    string
		source   string
	}{
		{"no policy", nil, false, "default", ""},
		{"allow-nothing", []rules.Object{ap("shop", "deny", allowNothing, nil)}, true, "namespace", "shop/deny"},
		{"workload policy only", []rules.Object{ap("shop", "web", workload, nil)}, false, "default", ""},
		{"a selector every injected pod matches", []rules.Object{ap("shop", "all-pods", everyPod, nil)}, true, "namespace", "shop/all-pods"},
		{"allow-all beside allow-nothing", []rules.Object{ap("shop", "a", allowNothing, nil), ap("shop", "b", allowAll, nil)}, false, "namespace", "shop/b"},
		{"deny-all beats allow-all", []rules.Object{ap("shop", "b", allowAll, nil), ap("shop", "c", denyAll, nil)}, true, "namespace", "shop/c"},
		{"dry-run does not count", []rules.Object{ap("shop", "d", allowNothing, map[string]any{"istio.io/dry-run": "true"})}, false, "default", ""},
		{"mesh-wide allow-nothing", []rules.Object{ap("istio-system", "mesh", allowNothing, nil)}, true, "mesh", "istio-system/mesh"},
		{"mesh-wide allow-all", []rules.Object{ap("istio-system", "mesh", allowAll, nil), ap("shop", "a", allowNothing, nil)}, false, "mesh", "istio-system/mesh"},
	}
	cat, _ := rules.DefaultCatalog()
	e, err := rules.New(cat, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			snap := rules.NewSnapshot()
			for _, p := range tc.policies {
				snap.Add(p, "default")
			}
			got := e.NamespaceAuthz(snap, "shop")
			if got.DefaultDeny != tc.deny || got.Level != tc.level || got.Source != tc.source {
				t.Errorf("got %+v, want defaultDeny %v level %s source %q", got, tc.deny, tc.level, tc.source)
			}
		})
	}
}
