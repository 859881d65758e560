package rules_test

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/rules"
)

// updateGolden regenerates the expected findings of fail fixtures:
// UPDATE_GOLDEN=1 go test ./rules/ (or make update-golden).
var updateGolden = os.Getenv("UPDATE_GOLDEN") == "1"

func newEngine(t testing.TB) (*rules.Catalog, *rules.Engine) {
	t.Helper()
	c, err := rules.DefaultCatalog()
	if err != nil {
		t.Fatalf("load catalog: %v", err)
	}
	e, err := rules.New(c, nil)
	if err != nil {
		t.Fatalf("new engine: %v", err)
	}
	return c, e
}

// fixtureFindings evaluates every document of a fixture file with the whole
// catalog, the context built from the file itself, and returns the findings of
// one rule rendered as "Severity Kind/ns/name: message" lines.
//
// A document of kind admission.k8s.io/v1 AdmissionReview is evaluated as the
// webhook would see its request: operation, object and oldObject, with Pods on
// CREATE seen after sidecar injection.
func fixtureFindings(t *testing.T, e audit.Engines, file, code string) []string {
	t.Helper()
	lines, err := audit.FixtureFindings(context.Background(), e, file, code)
	if err != nil {
		t.Fatal(err)
	}
	return lines
}

func TestCatalogFixtures(t *testing.T) {
	c, _ := newEngine(t)
	e := audit.NewEngines(c)
	for _, r := range c.Rules() {
		dir := filepath.Join("catalog", r.Dir)
		t.Run(r.Dir, func(t *testing.T) {
			passes, _ := filepath.Glob(filepath.Join(dir, "pass", "*.yaml"))
			for _, f := range passes {
				t.Run("passes "+filepath.Base(f), func(t *testing.T) {
					if got := fixtureFindings(t, e, f, r.Code); len(got) > 0 {
						t.Errorf("%s must not violate %s, got:\n%s", f, r.Code, strings.Join(got, "\n"))
					}
				})
			}
			fails, _ := filepath.Glob(filepath.Join(dir, "fail", "*.yaml"))
			for _, f := range fails {
				t.Run("fails "+filepath.Base(f), func(t *testing.T) {
					got := fixtureFindings(t, e, f, r.Code)
					want := strings.TrimSuffix(f, ".yaml") + ".expected"
					text := strings.Join(got, "\n") + "\n"
					if updateGolden {
						if err := os.WriteFile(want, []byte(text), 0o644); err != nil {
							t.Fatal(err)
						}
						return
					}
					if len(got) == 0 {
						t.Fatalf("%s must violate %s, but produced no finding", f, r.Code)
					}
					exp, err := os.ReadFile(want)
					if err != nil {
						t.Fatalf("%v (run `make update-golden` to create it, then review it)", err)
					}
					if string(exp) != text {
						t.Errorf("%s: findings differ from %s\n--- want\n%s--- got\n%s(if the change is intended: make update-golden)", f, want, exp, text)
					}
				})
			}
		})
	}
}

// TestCatalogIntegrity enforces the catalog's shape: every rule has passing and
// failing fixtures, every failing fixture has its expected findings, and no
// file is orphaned.
func TestCatalogIntegrity(t *testing.T) {
	c, _ := newEngine(t)
	known := map[string]bool{}
	for _, r := range c.Rules() {
		known[r.Dir] = true
	}
	entries, err := os.ReadDir("catalog")
	if err != nil {
		t.Fatal(err)
	}
	for _, ent := range entries {
		if !ent.IsDir() {
			if ent.Name() != "README.md" {
				t.Errorf("catalog/%s: only rule folders and README.md belong in the catalog", ent.Name())
			}
			continue
		}
		if !known[ent.Name()] {
			t.Errorf("catalog/%s: folder is not a loaded rule", ent.Name())
		}
		dir := filepath.Join("catalog", ent.Name())
		files, _ := os.ReadDir(dir)
		for _, f := range files {
			switch {
			case f.Name() == rules.PolicyFile && !f.IsDir():
			case (f.Name() == "pass" || f.Name() == "fail") && f.IsDir():
			default:
				t.Errorf("%s/%s: unexpected file (want policy.yaml, pass/, fail/)", dir, f.Name())
			}
		}
		passes := listDir(t, filepath.Join(dir, "pass"))
		fails := listDir(t, filepath.Join(dir, "fail"))
		nPass, nFail := 0, 0
		for _, f := range passes {
			if filepath.Ext(f) != ".yaml" {
				t.Errorf("%s/pass/%s: pass fixtures are .yaml files", dir, f)
			}
			nPass++
		}
		for _, f := range fails {
			switch filepath.Ext(f) {
			case ".yaml":
				nFail++
				if !contains(fails, strings.TrimSuffix(f, ".yaml")+".expected") {
					t.Errorf("%s/fail/%s: no expected findings (%s)", dir, f, strings.TrimSuffix(f, ".yaml")+".expected")
				}
			case ".expected":
				if !contains(fails, strings.TrimSuffix(f, ".expected")+".yaml") {
					t.Errorf("%s/fail/%s: orphaned, no matching .yaml fixture", dir, f)
				}
			default:
				t.Errorf("%s/fail/%s: unexpected file", dir, f)
			}
		}
		if nPass == 0 {
			t.Errorf("%s: needs at least one pass/ fixture", dir)
		}
		if nFail == 0 {
			t.Errorf("%s: needs at least one fail/ fixture", dir)
		}
	}
	for _, r := range c.Rules() {
		if !strings.HasSuffix(r.Remediation, ".") || len(r.Why) < 20 || r.Title == "" {
			t.Errorf("%s: title, a why sentence and a remediation ending with a period are required", r.Code)
		}
	}
}

func listDir(t *testing.T, dir string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
