package rules_test

import (
	"bufio"
	"os"
	"sort"
	"strings"
	"testing"
)

// notYetImplemented are RULES.md codes without a catalog folder yet. The list
// only shrinks: TestCatalogCoversRulesMD fails when a listed code gains a
// folder (remove it here) and when a code outside the list has none.
var notYetImplemented = map[string]bool{}

// TestCatalogCoversRulesMD: every rule of RULES.md's index (testdata copy)
// has a catalog folder named CODE-slug, unless it is listed above.
func TestCatalogCoversRulesMD(t *testing.T) {
	f, err := os.Open("testdata/rules-md-index.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cat, _ := newEngine(t)
	var missing, done []string
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 2 {
			t.Fatalf("testdata/rules-md-index.txt: %q is not \"CODE slug\"", line)
		}
		n++
		code, slug := fields[0], fields[1]
		r, ok := cat.Rule(code)
		switch {
		case ok && r.Name != slug:
			t.Errorf("%s: the catalog's slug %q differs from RULES.md's %q", code, r.Name, slug)
		case ok && notYetImplemented[code]:
			done = append(done, code)
		case !ok && !notYetImplemented[code]:
			missing = append(missing, code+" "+slug)
		}
	}
	if n < 90 {
		t.Fatalf("the index has %d rules; RULES.md has more than 90", n)
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("RULES.md rules without a catalog folder:\n%s", strings.Join(missing, "\n"))
	}
	if len(done) > 0 {
		t.Errorf("implemented now, remove from notYetImplemented: %s", strings.Join(done, ", "))
	}
}
