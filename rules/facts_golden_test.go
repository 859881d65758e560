package rules_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/rules"
)

// factsGolden holds, for every document of every catalog fixture (judged as
// a manifest before and after injection, or as its AdmissionReview), two
// SHA-256 fingerprints of the $facts binding the policies see: of its JSON
// encoding, and of a walk that also records each value's Go type (a float64
// and an int encode alike in JSON but compare differently in JMESPath).
// Regenerate with UPDATE_FACTS_GOLDEN=1 only when a change of the facts is
// intended; a refactoring of how facts are computed must leave it unchanged.
const factsGolden = "testdata/facts-golden.txt"

// TestFactsUnchanged proves that the facts of every catalog fixture are
// what they were when factsGolden was written, byte for byte and type for
// type, and that the JSON of the typed facts (WorkloadFacts, NamespaceFacts,
// ServiceFacts, EndpointsFacts, BindingFacts, by their json tags) is the map
// the policies see. With FACTS_DUMP=dir it also writes each document's facts JSON there,
// to diff two versions.
func TestFactsUnchanged(t *testing.T) {
	c, _ := newEngine(t)
	engines := audit.NewEngines(c)
	files, _ := filepath.Glob(filepath.Join("catalog", "*", "*", "*.yaml"))
	sort.Strings(files)
	if len(files) < 100 {
		t.Fatalf("only %d catalog fixtures found", len(files))
	}
	dump := os.Getenv("FACTS_DUMP")
	typedDocs := 0
	got := map[string]string{}
	var keys []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := engines(audit.FixtureFlags(data))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		eng, ok := ev.(*rules.Engine)
		if !ok {
			t.Fatalf("%s: engine is %T", f, ev)
		}
		docs, errs := audit.Parse(f, data)
		if len(errs) > 0 {
			t.Fatalf("%s: %v", f, errs[0])
		}
		snap := rules.NewSnapshot()
		for _, d := range docs {
			if d.Object["kind"] != "AdmissionReview" {
				snap.Add(d.Object, "default")
			}
		}
		for _, d := range docs {
			for _, post := range []bool{false, true} {
				if post && d.Object["kind"] == "AdmissionReview" {
					continue
				}
				req, err := rules.FixtureRequest(d.Object, snap, post)
				if err != nil {
					t.Fatalf("%s: document %d: %v", f, d.Index, err)
				}
				facts, err := eng.FactsOf(req)
				key := fmt.Sprintf("%s#%d#post=%t", filepath.ToSlash(f), d.Index, post)
				var fp string
				if err != nil {
					fp = "error " + err.Error()
				} else {
					js, jerr := json.Marshal(facts)
					if jerr != nil {
						t.Fatalf("%s: %v", key, jerr)
					}
					var b strings.Builder
					typedWalk(&b, facts)
					fp = sum(js) + " " + sum([]byte(b.String()))
					if dump != "" {
						name := strings.NewReplacer("/", "_", "#", "_", "=", "_").Replace(key) + ".json"
						if err := os.WriteFile(filepath.Join(dump, name), append(js, '\n'), 0o644); err != nil {
							t.Fatal(err)
						}
					}
				}
				got[key] = fp
				keys = append(keys, key)
				// The typed facts' JSON (their json tags) is the map the
				// policies see.
				var typedFacts any
				if wf, ok, werr := eng.WorkloadFactsOf(req); ok && werr == nil {
					typedFacts = wf
				} else if nf, ok, nerr := eng.NamespaceFactsOf(req); ok && nerr == nil {
					typedFacts = nf
				} else if of, ok, oerr := eng.OtherTypedFactsOf(req); ok && oerr == nil {
					typedFacts = of
				}
				if typedFacts != nil && err == nil {
					typed, jerr := json.Marshal(typedFacts)
					if jerr != nil {
						t.Fatalf("%s: %v", key, jerr)
					}
					var back, seen any
					js, _ := json.Marshal(facts)
					if err := json.Unmarshal(typed, &back); err != nil {
						t.Fatalf("%s: %v", key, err)
					}
					if err := json.Unmarshal(js, &seen); err != nil {
						t.Fatalf("%s: %v", key, err)
					}
					if path, ok := sameJSON(back, seen, ""); !ok {
						t.Errorf("%s: the typed facts' JSON differs from the map the policies see at %q:\n typed %s\n map   %s", key, path, typed, js)
					}
					typedDocs++
				}
			}
		}
	}
	t.Logf("%d documents, %d with typed facts", len(keys), typedDocs)
	if typedDocs < 1000 {
		t.Errorf("only %d documents had typed facts", typedDocs)
	}
	if os.Getenv("UPDATE_FACTS_GOLDEN") == "1" {
		var b strings.Builder
		for _, k := range keys {
			fmt.Fprintf(&b, "%s %s\n", k, got[k])
		}
		if err := os.WriteFile(factsGolden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	fh, err := os.Open(factsGolden)
	if err != nil {
		t.Fatalf("%v (UPDATE_FACTS_GOLDEN=1 writes it)", err)
	}
	defer fh.Close()
	want := map[string]string{}
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), " ")
		want[k] = v
	}
	if len(want) < 200 {
		t.Fatalf("%s holds only %d documents", factsGolden, len(want))
	}
	changed := 0
	for _, k := range keys {
		w, ok := want[k]
		switch {
		case !ok:
			t.Errorf("%s: not in %s (a new fixture document: UPDATE_FACTS_GOLDEN=1)", k, factsGolden)
		case w != got[k]:
			changed++
			if changed <= 20 {
				t.Errorf("%s: facts changed (fingerprints %s, were %s)", k, got[k], w)
			}
		}
		delete(want, k)
	}
	if changed > 20 {
		t.Errorf("... facts of %d documents changed in all", changed)
	}
	for k := range want {
		t.Errorf("%s: in %s but no longer a fixture document", k, factsGolden)
	}
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8])
}

// typedWalk writes v with its Go types: map keys sorted, strings quoted,
// every other scalar as type:value.
func typedWalk(b *strings.Builder, v any) {
	switch x := v.(type) {
	case nil:
		b.WriteString("nil")
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteString("{")
		for _, k := range keys {
			b.WriteString(strconv.Quote(k))
			b.WriteString(":")
			typedWalk(b, x[k])
			b.WriteString(",")
		}
		b.WriteString("}")
	case []any:
		b.WriteString("[")
		for _, e := range x {
			typedWalk(b, e)
			b.WriteString(",")
		}
		b.WriteString("]")
	case string:
		b.WriteString(strconv.Quote(x))
	default:
		fmt.Fprintf(b, "%T:%v", v, v)
	}
}

// sameJSON compares decoded JSON values; a null of the typed facts equals
// the empty list or object Map writes for it (lists and maps are never null
// for the policies). It returns the first path that differs.
func sameJSON(typed, seen any, path string) (string, bool) {
	switch s := seen.(type) {
	case map[string]any:
		if typed == nil && len(s) == 0 {
			return "", true
		}
		tm, ok := typed.(map[string]any)
		if !ok || len(tm) != len(s) {
			return path, false
		}
		for k, v := range s {
			tv, ok := tm[k]
			if !ok {
				return path + "." + k, false
			}
			if p, ok := sameJSON(tv, v, path+"."+k); !ok {
				return p, false
			}
		}
		return "", true
	case []any:
		if typed == nil && len(s) == 0 {
			return "", true
		}
		tl, ok := typed.([]any)
		if !ok || len(tl) != len(s) {
			return path, false
		}
		for i := range s {
			if p, ok := sameJSON(tl[i], s[i], fmt.Sprintf("%s[%d]", path, i)); !ok {
				return p, false
			}
		}
		return "", true
	}
	if typed != seen {
		return path, false
	}
	return "", true
}
