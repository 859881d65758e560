package rules

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

// TestWorkloadFactsDocumented keeps the workload facts table of
// catalog/README.md and the facts computed in Go (facts_workload.go) from
// drifting apart: every top-level fact of a Pod and of a Deployment must have
// a row, and every row must name a fact that is computed.
func TestWorkloadFactsDocumented(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("catalog", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	table := workloadFactsTable(t, string(readme))
	documented := map[string]bool{}
	for _, row := range strings.Split(table, "\n") {
		cells := strings.SplitN(row, "|", 3)
		if len(cells) < 3 {
			continue
		}
		for _, m := range regexp.MustCompile("`([A-Za-z]+)(\\[\\])?`").FindAllStringSubmatch(cells[1], -1) {
			documented[m[1]] = true
		}
	}
	if len(documented) == 0 {
		t.Fatal("no fact rows found in the workload facts table of catalog/README.md")
	}

	cc, err := NewConfig().compile()
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	e := &engine{cfg: cc, ctx: emptyContext{}}
	computed := map[string]bool{}
	for _, file := range []string{"pod.yaml", "deployment.yaml"} {
		obj, _ := loadBench(t, file)
		apiVersion, _ := obj["apiVersion"].(string)
		kind, _ := obj["kind"].(string)
		info, ok := LookupKind(schema.GroupKind{Group: apiGroup(apiVersion), Kind: kind})
		if !ok {
			t.Fatalf("%s: kind %s not known", file, kind)
		}
		facts, err := e.objectFacts(obj, info, &Request{Object: obj}, Namespace{Name: "bookinfo"}, true)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		for k := range facts {
			computed[k] = true
		}
	}
	var undocumented, stale []string
	for k := range computed {
		if !documented[k] {
			undocumented = append(undocumented, k)
		}
	}
	for k := range documented {
		if !computed[k] {
			stale = append(stale, k)
		}
	}
	sort.Strings(undocumented)
	sort.Strings(stale)
	if len(undocumented) > 0 {
		t.Errorf("workload facts computed but not in the table of catalog/README.md: %v", undocumented)
	}
	if len(stale) > 0 {
		t.Errorf("workload facts in the table of catalog/README.md that are not computed: %v", stale)
	}
}

// TestCatalogReadsDocumentedFacts checks that every $facts.<name> a catalog
// policy reads is documented in catalog/README.md.
func TestCatalogReadsDocumentedFacts(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("catalog", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	policies, err := filepath.Glob(filepath.Join("catalog", "*", "policy.yaml"))
	if err != nil || len(policies) == 0 {
		t.Fatalf("no catalog policies found: %v", err)
	}
	ref := regexp.MustCompile(`\$facts\)?\.([A-Za-z]+)`)
	missing := map[string][]string{}
	for _, p := range policies {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ref.FindAllStringSubmatch(string(data), -1) {
			if !strings.Contains(string(readme), "`"+m[1]+"`") && !strings.Contains(string(readme), "`"+m[1]+"[]`") {
				missing[m[1]] = append(missing[m[1]], filepath.Base(filepath.Dir(p)))
			}
		}
	}
	for k, rules := range missing {
		t.Errorf("$facts.%s is read by %v but not documented in catalog/README.md", k, uniqueSorted(rules))
	}
}

func uniqueSorted(in []string) []string {
	sort.Strings(in)
	out := in[:0]
	for i, s := range in {
		if i == 0 || s != in[i-1] {
			out = append(out, s)
		}
	}
	return out
}

// workloadFactsTable returns the rows of the "Pod and pod templates" table.
func workloadFactsTable(t *testing.T, readme string) string {
	t.Helper()
	start := strings.Index(readme, "**Pod and pod templates**")
	if start < 0 {
		t.Fatal("catalog/README.md has no \"Pod and pod templates\" section")
	}
	rest := readme[start:]
	end := strings.Index(rest, "`containers[]` entries")
	if end < 0 {
		t.Fatal("catalog/README.md: the workload facts table has no end marker")
	}
	return rest[:end]
}
