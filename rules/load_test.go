package rules

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"testing/fstest"
)

const validPolicy = `apiVersion: json.kyverno.io/v1alpha1
kind: ValidatingPolicy
metadata:
  name: MESH9001-test-rule
  annotations:
    meshguard.io/code: MESH9001
    meshguard.io/title: Test rule
    meshguard.io/severity: High
    meshguard.io/kinds: Service
    meshguard.io/why: A test rule exists to exercise the loader.
    meshguard.io/remediation: Do nothing.
spec:
  rules:
  - name: always
    assert:
      all:
      - message: service {{ metadata.name }} is tested
        check:
          (metadata.name == 'ok'): true
`

func TestParseRule(t *testing.T) {
	cases := []struct {
		name    string
		dir     string
		mutate  func(string) string
		wantErr string
	}{
		{name: "a valid rule loads", dir: "MESH9001-test-rule", mutate: func(s string) string { return s }},
		{name: "a folder without a code is rejected", dir: "test-rule", wantErr: "folder name"},
		{name: "a name that differs from the folder is rejected", dir: "MESH9001-other", wantErr: "metadata.name"},
		{name: "an unknown field is rejected by strict decoding", dir: "MESH9001-test-rule",
			mutate: func(s string) string { return strings.Replace(s, "  rules:", "  rulez: []\n  rules:", 1) }, wantErr: "rulez"},
		{name: "a missing remediation is rejected", dir: "MESH9001-test-rule",
			mutate: func(s string) string { return strings.Replace(s, "    meshguard.io/remediation: Do nothing.\n", "", 1) }, wantErr: "meshguard.io/remediation"},
		{name: "a remediation without a period is rejected", dir: "MESH9001-test-rule",
			mutate: func(s string) string { return strings.Replace(s, "Do nothing.", "Do nothing", 1) }, wantErr: "period"},
		{name: "an unknown severity is rejected", dir: "MESH9001-test-rule",
			mutate: func(s string) string { return strings.Replace(s, "severity: High", "severity: Severe", 1) }, wantErr: "meshguard.io/severity"},
		{name: "an unknown kind is rejected", dir: "MESH9001-test-rule",
			mutate: func(s string) string { return strings.Replace(s, "kinds: Service", "kinds: Servce", 1) }, wantErr: "unknown kind"},
		{name: "a code that differs from the folder is rejected", dir: "MESH9001-test-rule",
			mutate: func(s string) string { return strings.Replace(s, "code: MESH9001", "code: MESH9002", 1) }, wantErr: "meshguard.io/code"},
		{name: "an expression that does not compile is rejected with its field", dir: "MESH9001-test-rule",
			mutate: func(s string) string { return strings.Replace(s, "(metadata.name == 'ok')", "(metadata.name == )", 1) }, wantErr: "spec.rules[0]"},
		{name: "an assertion without a message is rejected", dir: "MESH9001-test-rule",
			mutate: func(s string) string {
				return strings.Replace(s, "      - message: service {{ metadata.name }} is tested\n        check:", "      - check:", 1)
			}, wantErr: "message"},
		{name: "an unknown meshguard annotation is rejected", dir: "MESH9001-test-rule",
			mutate: func(s string) string {
				return strings.Replace(s, "    meshguard.io/title:", "    meshguard.io/titel: x\n    meshguard.io/title:", 1)
			}, wantErr: "titel"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := validPolicy
			if tc.mutate != nil {
				src = tc.mutate(src)
			}
			_, err := ParseRule(tc.dir, []byte(src))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("want error containing %q, got %v", tc.wantErr, err)
			}
		})
	}
}

func TestLoadCatalogRejectsDuplicateCodes(t *testing.T) {
	other := strings.ReplaceAll(validPolicy, "MESH9001-test-rule", "MESH9001-another-rule")
	fsys := fstest.MapFS{
		"MESH9001-test-rule/policy.yaml":    {Data: []byte(validPolicy)},
		"MESH9001-another-rule/policy.yaml": {Data: []byte(other)},
	}
	_, err := LoadCatalog(fsys)
	if err == nil || !strings.Contains(err.Error(), "already used") {
		t.Fatalf("want duplicate code error, got %v", err)
	}
	if !strings.Contains(err.Error(), "policy.yaml") {
		t.Fatalf("error must name the file: %v", err)
	}
}

func TestLoadCatalogNamesTheFile(t *testing.T) {
	fsys := fstest.MapFS{"MESH9001-test-rule/policy.yaml": {Data: []byte("apiVersion: [")}}
	_, err := LoadCatalog(fsys)
	if err == nil || !strings.Contains(err.Error(), "MESH9001-test-rule/policy.yaml") {
		t.Fatalf("want an error naming the file, got %v", err)
	}
}

func TestEvaluateReportsWrongTypesAsErrors(t *testing.T) {
	e, _ := benchEngine(t)
	cases := []struct{ name, obj, field string }{
		{"containers that are not a list", `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":"app"}}`, "spec.containers"},
		{"a capability that is not a string", `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},"spec":{"template":{"spec":{"containers":[{"name":"a","securityContext":{"capabilities":{"add":[1]}}}]}}}}`, "spec.template.spec.containers[0].securityContext.capabilities.add[0]"},
		{"a template that is not an object", `{"apiVersion":"batch/v1","kind":"CronJob","metadata":{"name":"c"},"spec":{"jobTemplate":"x"}}`, "spec.jobTemplate"},
		{"metadata that is not an object", `{"apiVersion":"v1","kind":"Pod","metadata":"x"}`, "metadata"},
	}
	for _, tc := range cases {
		t.Run("an object with "+tc.name+" is an error, not an allow", func(t *testing.T) {
			var obj Object
			if err := json.Unmarshal([]byte(tc.obj), &obj); err != nil {
				t.Fatal(err)
			}
			_, err := e.Evaluate(context.Background(), &Request{Object: obj})
			if err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("want an error naming %s, got %v", tc.field, err)
			}
		})
	}
}

// FuzzEvaluate checks that no input makes the evaluator panic.
func FuzzEvaluate(f *testing.F) {
	c, err := DefaultCatalog()
	if err != nil {
		f.Fatal(err)
	}
	e, err := New(c, nil)
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"a","securityContext":{"capabilities":{"add":["NET_ADMIN"]}}}]}}`,
		`{"apiVersion":"apps/v1","kind":"Deployment","spec":{"template":{"metadata":{"labels":{"sidecar.istio.io/inject":"false"}}}}}`,
		`{"apiVersion":"security.istio.io/v1","kind":"PeerAuthentication","metadata":{"namespace":"istio-system"},"spec":{"mtls":{"mode":"DISABLE"},"portLevelMtls":{"80":{"mode":"PERMISSIVE"}}}}`,
		`{"apiVersion":"security.istio.io/v1","kind":"AuthorizationPolicy","spec":{"rules":[{}]}}`,
		`{"apiVersion":"networking.istio.io/v1","kind":"DestinationRule","spec":{"host":"*","trafficPolicy":{"tls":{"mode":"DISABLE"}}}}`,
		`{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"x","labels":{"istio-injection":"disabled"}}}`,
		`{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","spec":{"ingress":[{}]}}`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var obj Object
		if json.Unmarshal([]byte(s), &obj) != nil || obj == nil {
			return
		}
		_, _ = e.Evaluate(context.Background(), &Request{Object: obj, OldObject: obj, Operation: "UPDATE", PostInjection: true})
	})
}

// TestEvaluateTurnsPanicsIntoErrors: JMESPath's contains panics on a
// []string; a rule that meets one must give an error naming the object and
// the rule, not a crash and not "no findings".
func TestEvaluateTurnsPanicsIntoErrors(t *testing.T) {
	src := strings.Replace(validPolicy, "(metadata.name == 'ok'): true", "(contains(spec.tags, 'x')): false", 1)
	cat, err := LoadCatalog(fstest.MapFS{"MESH9001-test-rule/policy.yaml": {Data: []byte(src)}})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := New(cat, nil)
	if err != nil {
		t.Fatal(err)
	}
	obj := Object{"apiVersion": "v1", "kind": "Service", "metadata": map[string]any{"name": "web", "namespace": "shop"},
		"spec": map[string]any{"tags": []string{"x"}}}
	findings, err := eng.Evaluate(context.Background(), &Request{Object: obj, Operation: "CREATE"})
	if err == nil || findings != nil || !strings.Contains(err.Error(), "MESH9001") || !strings.Contains(err.Error(), "web") {
		t.Fatalf("want an error naming MESH9001 and the object, got %v, %v", findings, err)
	}
	// The same rule on a decoded-JSON value ([]any) evaluates normally.
	obj["spec"] = map[string]any{"tags": []any{"x"}}
	findings, err = eng.Evaluate(context.Background(), &Request{Object: obj, Operation: "CREATE"})
	if err != nil || len(findings) != 1 {
		t.Fatalf("want one finding, got %v, %v", findings, err)
	}
}
