package rules

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jmespath-community/go-jmespath/pkg/binding"
	"github.com/kyverno/kyverno-json/pkg/apis/policy/v1alpha1"
	jsonengine "github.com/kyverno/kyverno-json/pkg/json-engine"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// The differential test of assert.go: every policy rule of the catalog, and a
// synthetic policy that uses what the catalog does not (foreach, bindings,
// context entries, slice nodes, CEL, assertions without a message), is
// compiled both with jsonengine.CompileRule and with compileRule, and both
// evaluate every object of the fixtures, the corpus and the examples — each
// against every policy rule whatever its kind — with the bindings the Engine
// builds for it, then mutated variants of the objects and of their facts.
// The outcomes must be identical.

// syntheticPolicy exercises the parts of kyverno-json's assertion trees that
// the catalog does not use.
const syntheticPolicy = `
apiVersion: json.kyverno.io/v1alpha1
kind: ValidatingPolicy
metadata:
  name: synthetic
spec:
  rules:
  - name: foreach-containers
    match:
      any:
      - kind: Pod
      - spec:
          template: {}
      - metadata:
          name: (to_string(@))
    exclude:
      any:
      - metadata:
          labels:
            skip: "true"
      - kind: Service
    assert:
      all:
      - message: "{{ metadata.name }} has a privileged container"
        check:
          spec:
            ~.containers:
              ((securityContext.privileged) || ` + "`false`" + `): false
      - check:
          spec:
            ~idx.containers:
              ($idx >= ` + "`0`" + `): true
              name: {}
              (image != null): true
              ~.ports:
                containerPort: (@)
      - message: every template container has a name
        check:
          spec:
            template:
              spec:
                ~i.containers:
                  name: (to_string(@))
                  ($i): (` + "`0`" + `)
  - name: foreach-map
    match:
      all:
      - metadata: {}
    assert:
      any:
      - message: "labels of {{ metadata.name }} are strings"
        check:
          metadata:
            ~k.labels:
              (type(@)): string
              ($k != ''): true
      - message: no labels
        check:
          metadata:
            (labels == null): true
      all:
      - message: "the name is {{ metadata.name }}"
        check:
          (metadata.name)->n:
            (length($n) > ` + "`0`" + `): true
      - message: annotations
        check:
          ~.(metadata.annotations)->anns:
            (length($anns) >= ` + "`0`" + `): true
  - name: slices-and-scalars
    assert:
      all:
      - message: ports
        check:
          spec:
            ports:
            - port: 80
              protocol: TCP
            - {}
      - message: no containers
        check:
          spec:
            containers: []
      - message: numbers
        check:
          spec:
            replicas: 3
            (replicas > ` + "`1`" + `): true
            \(notAnExpression)\: 1
            "~.notForeach": null
      - message: expected is a list
        check:
          (metadata.finalizers): [a, b]
      - message: expected is a map
        check:
          (metadata.labels): {app: x}
  - name: slice-shape
    match:
      all:
      - metadata: {}
    assert:
      all:
      - message: labels as a list
        check:
          metadata:
            labels:
            - {}
            - (@)
  - name: leaf-error
    assert:
      all:
      - message: name through a function
        check:
          metadata:
            name: (abs(@))
  - name: context
    context:
    - name: nsname
      variable: (metadata.namespace)
    - name: fixed
      variable: 42
    match:
      any:
      - ($nsname != null): true
      all:
      - kind: (to_string(@))
    assert:
      all:
      - message: "namespace {{ $nsname }}"
        check:
          ($fixed): 42
          metadata:
            namespace: ($nsname)
  - name: facts
    assert:
      any:
      - message: facts are empty
        check:
          ($facts): {}
      all:
      - message: "mode {{ $facts.mode }}"
        check:
          ($facts.mode): STRICT
          ($facts.containers[0].name): (to_string(@))
      - message: foreach over facts
        check:
          ~.($facts.containers || $facts.ports || ` + "`[]`" + `):
            name: {}
  - name: let
    match:
      all:
      - (let $n = metadata.name in $n != null): true
    assert:
      all:
      - message: "let {{ let $k = kind in $k }} {{ metadata.name }}"
        check:
          (let $n = metadata.name in $n): (let $m = metadata.name in $m)
          (let $f = $facts.mode, $r = $request.operation in join(' ', [$f, $r])): STRICT CREATE
          (metadata.name): (let $x = @ in $x)
  - name: let-error
    assert:
      all:
      - message: undefined
        check:
          (let $x = $undefined in $x): 1
  - name: cel
    compiler: cel
    assert:
      all:
      - message: kind
        check:
          (object.kind): Pod
          (has(object.metadata)): true
`

// diffRule is one policy rule compiled both ways.
type diffRule struct {
	name    string
	kyverno func(any, binding.Bindings) *jsonengine.RuleResponse
	ours    *policyRule
}

func diffRules(t testing.TB) []diffRule {
	t.Helper()
	c, err := DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	policies := map[string]*v1alpha1.ValidatingPolicy{}
	var names []string
	for _, r := range c.Rules() {
		policies[r.Code] = r.policy
		names = append(names, r.Code)
	}
	var syn v1alpha1.ValidatingPolicy
	if err := yaml.UnmarshalStrict([]byte(syntheticPolicy), &syn); err != nil {
		t.Fatalf("synthetic policy: %v", err)
	}
	policies["synthetic"] = &syn
	names = append(names, "synthetic")
	var out []diffRule
	for _, name := range names {
		p := policies[name]
		comp := policyCompilers(p)
		for i, vr := range p.Spec.Rules {
			vr.Feedback = nil // compiled apart, as ParseRule does
			fp := field.NewPath("spec", "rules").Index(i)
			k, kerr := jsonengine.CompileRule(fp, comp, vr)
			o, oerr := compileRule(fp, comp, vr)
			if kerr != nil || oerr != nil {
				t.Fatalf("%s/%s: compile: kyverno-json %v, ours %v", name, vr.Name, kerr, oerr)
			}
			out = append(out, diffRule{name: name + "/" + vr.Name, kyverno: k, ours: o})
		}
	}
	return out
}

// outcome is what the Engine takes from an evaluation.
type outcome struct {
	applied    bool
	violations []string
	err        error
}

func kyvernoOutcome(resp *jsonengine.RuleResponse) outcome {
	if resp == nil {
		return outcome{}
	}
	o := outcome{applied: true, err: resp.Error}
	for _, v := range resp.Violations {
		m := v.Message
		if i := strings.LastIndex(m, " (CHECK="); i >= 0 {
			m = m[:i]
		}
		o.violations = append(o.violations, m)
	}
	return o
}

// diffStats counts the outcomes of the comparisons.
type diffStats struct {
	evaluations, applied, violated, errors, panics int
}

// panicError is a panic of an evaluation (JMESPath functions panic on some
// Go types the mutations put in the facts), compared as an error.
type panicError struct{ v any }

func (p panicError) Error() string { return fmt.Sprintf("panic: %v", p.v) }

func (r *diffRule) runKyverno(resource any, bindings binding.Bindings) (o outcome) {
	defer func() {
		if v := recover(); v != nil {
			o = outcome{applied: true, err: panicError{v}}
		}
	}()
	return kyvernoOutcome(r.kyverno(resource, bindings))
}

func (r *diffRule) runOurs(resource any, bindings binding.Bindings) (o outcome) {
	defer func() {
		if v := recover(); v != nil {
			o = outcome{applied: true, err: panicError{v}}
		}
	}()
	applied, violations, err := r.ours.evaluate(resource, bindings)
	return outcome{applied: applied, violations: violations, err: err}
}

// compare evaluates one rule both ways and reports a difference: kyverno-json
// with its own bindings, ours with the Engine's (scope, scope.go), which hold
// the same values.
func (r *diffRule) compare(resource any, bindings, ours binding.Bindings, st *diffStats) error {
	want := r.runKyverno(resource, bindings)
	got := r.runOurs(resource, ours)
	st.evaluations++
	switch {
	case (want.err == nil) != (got.err == nil):
		return fmt.Errorf("errors differ: kyverno-json %v, ours %v", want.err, got.err)
	case want.err != nil:
		st.errors++
		if _, ok := want.err.(panicError); ok {
			st.panics++
		}
		if want.err.Error() != got.err.Error() {
			// kyverno-json visits map keys in a random order, so with two
			// failing keys either error may come first: look for ours.
			for range 100 {
				if e := r.runKyverno(resource, bindings).err; e != nil && e.Error() == got.err.Error() {
					return r.checkErrorType(got.err)
				}
			}
			return fmt.Errorf("error texts differ:\nkyverno-json: %v\nours:         %v", want.err, got.err)
		}
		return r.checkErrorType(got.err)
	case want.applied != got.applied:
		return fmt.Errorf("applied differ: kyverno-json %v, ours %v", want.applied, got.applied)
	case !slices.Equal(want.violations, got.violations):
		return fmt.Errorf("violations differ:\nkyverno-json %q\nours         %q", want.violations, got.violations)
	}
	if got.applied {
		st.applied++
	}
	if len(got.violations) > 0 {
		st.violated++
	}
	return nil
}

// checkErrorType: an error is kyverno-json's *field.Error, or a panic.
func (r *diffRule) checkErrorType(err error) error {
	var fe *field.Error
	var pe panicError
	if !errors.As(err, &fe) && !errors.As(err, &pe) {
		return fmt.Errorf("our error is a %T, not a *field.Error", err)
	}
	return nil
}

// diffInput is a resource with the bindings the Engine evaluates it with.
type diffInput struct {
	name     string
	resource any
	facts    any
	ns, req  any
	mesh     any
}

func (in *diffInput) bindings() binding.Bindings {
	mesh := in.mesh
	return binding.NewBindings().
		Register("$facts", binding.NewBinding(in.facts)).
		Register("$namespace", binding.NewBinding(in.ns)).
		Register("$request", binding.NewBinding(in.req)).
		Register("$mesh", binding.NewDelegate(func() (any, error) { return mesh, nil }))
}

// scope returns the same bindings as the Engine's scope.
func (in *diffInput) scope() binding.Bindings {
	mesh := in.mesh
	var s *scope
	return s.Register("$facts", binding.NewBinding(in.facts)).
		Register("$namespace", binding.NewBinding(in.ns)).
		Register("$request", binding.NewBinding(in.req)).
		Register("$mesh", binding.NewDelegate(func() (any, error) { return mesh, nil }))
}

// readDocuments decodes every YAML document of a file as the CLI does (JSON
// numbers are float64), items of a List included.
func readDocuments(t testing.TB, file string) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	rd := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := rd.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		var obj map[string]any
		if err := json.Unmarshal(js, &obj); err != nil || obj == nil {
			continue
		}
		if items, ok := obj["items"].([]any); ok && strings.HasSuffix(fmt.Sprint(obj["kind"]), "List") {
			for _, it := range items {
				if m, ok := it.(map[string]any); ok {
					out = append(out, m)
				}
			}
			continue
		}
		out = append(out, obj)
	}
	return out
}

// inputOf returns the bindings the Engine builds for a request, whatever the
// object's kind: rules of every kind are evaluated on every object.
func inputOf(e *Engine, name string, req *Request) (diffInput, bool) {
	if req.Object == nil {
		return diffInput{}, false
	}
	if av, ok := req.Object["apiVersion"].(string); ok {
		if k, ok := req.Object["kind"].(string); ok {
			gk := schema.GroupKind{Group: apiGroup(av), Kind: k}
			if len(e.byKind[gk]) == 0 {
				e.byKind[gk] = e.rules
			}
		}
	}
	p, err := e.prepare(req)
	if err != nil || p == nil {
		return diffInput{}, false
	}
	return diffInput{name: name, resource: req.Object, facts: p.facts, ns: p.namespace, req: p.request, mesh: e.meshBinding(p.st)}, true
}

// corpusInputs returns every object of the fixtures, the corpus and the
// examples with its bindings.
func corpusInputs(t testing.TB) []diffInput {
	t.Helper()
	e, _ := benchEngine(t)
	var files []string
	for _, pattern := range []string{
		"catalog/*/pass/*.yaml", "catalog/*/fail/*.yaml",
		"testdata/*/*.yaml", "../examples/*/*.yaml", "../examples/*/*/*.yaml",
	} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	var out []diffInput
	for _, file := range files {
		docs := readDocuments(t, file)
		snap := NewSnapshot()
		for _, d := range docs {
			if d["kind"] != "AdmissionReview" {
				snap.Add(d, "default")
			}
		}
		for i, d := range docs {
			for _, post := range []bool{false, true} {
				name := fmt.Sprintf("%s#%d (post-injection %v)", file, i, post)
				req, err := FixtureRequest(d, snap, post)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if in, ok := inputOf(e, name, req); ok {
					out = append(out, in)
				}
				if d["kind"] == "AdmissionReview" {
					break
				}
			}
		}
	}
	if len(out) < 100 {
		t.Fatalf("only %d inputs found", len(out))
	}
	return out
}

// replacements are the values a mutation puts in place of a subtree: nulls,
// wrong types, empty and typed collections.
var replacements = []func() any{
	func() any { return nil },
	func() any { return "" },
	func() any { return "x" },
	func() any { return "STRICT" },
	func() any { return float64(0) },
	func() any { return float64(42) },
	func() any { return int64(80) },
	func() any { return 3 },
	func() any { return true },
	func() any { return false },
	func() any { return map[string]any{} },
	func() any { return []any{} },
	func() any { return []any{"x", nil} },
	func() any { return []any{map[string]any{"name": "c"}} },
	func() any { return map[string]any{"a": "b", "name": nil} },
	func() any { return []string{"a", "b"} },
	func() any { return map[string]string{"app": "x"} },
	func() any { return []map[string]any{{"name": 1.5}} },
}

// mutate returns v with one subtree replaced or removed, copying only the
// maps and slices on the way to it (the input is shared, never modified).
func mutate(rng *rand.Rand, v any) any {
	switch typed := v.(type) {
	case map[string]any:
		if len(typed) > 0 && rng.IntN(4) != 0 {
			keys := make([]string, 0, len(typed))
			for k := range typed {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			k := keys[rng.IntN(len(keys))]
			m := make(map[string]any, len(typed))
			for kk, vv := range typed {
				m[kk] = vv
			}
			if rng.IntN(6) == 0 {
				delete(m, k)
			} else {
				m[k] = mutate(rng, typed[k])
			}
			return m
		}
	case []any:
		if len(typed) > 0 && rng.IntN(4) != 0 {
			s := slices.Clone(typed)
			i := rng.IntN(len(s))
			if rng.IntN(6) == 0 {
				s = slices.Delete(s, i, i+1)
			} else {
				s[i] = mutate(rng, s[i])
			}
			return s
		}
	}
	return replacements[rng.IntN(len(replacements))]()
}

// TestAssertMatchesKyvernoJSON is the differential test of compileRule.
func TestAssertMatchesKyvernoJSON(t *testing.T) {
	rules := diffRules(t)
	inputs := corpusInputs(t)
	variants := 6
	if testing.Short() {
		variants = 1
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var asIs, mutated diffStats
	failures := 0
	check := func(in diffInput, what string, st *diffStats) {
		b, ob := in.bindings(), in.scope()
		for i := range rules {
			if err := rules[i].compare(in.resource, b, ob, st); err != nil {
				failures++
				if failures <= 20 {
					t.Errorf("%s, %s, rule %s: %v", in.name, what, rules[i].name, err)
				}
			}
		}
	}
	for _, in := range inputs {
		check(in, "as is", &asIs)
		for v := range variants {
			obj := in
			obj.resource = mutate(rng, in.resource)
			check(obj, fmt.Sprintf("object variant %d", v), &mutated)
			facts := in
			facts.facts = mutate(rng, in.facts)
			check(facts, fmt.Sprintf("facts variant %d", v), &mutated)
			both := obj
			both.facts = facts.facts
			both.ns = mutate(rng, in.ns)
			check(both, fmt.Sprintf("object, facts and namespace variant %d", v), &mutated)
		}
	}
	if failures > 20 {
		t.Errorf("... and %d more differences", failures-20)
	}
	t.Logf("%d policy rules, %d inputs", len(rules), len(inputs))
	for _, s := range []struct {
		what string
		st   diffStats
	}{{"inputs as they are", asIs}, {"mutated variants", mutated}} {
		t.Logf("%s: %d evaluations, %d applied, %d violated, %d errors (%d of them panics)",
			s.what, s.st.evaluations, s.st.applied, s.st.violated, s.st.errors, s.st.panics)
		if s.st.applied == 0 || s.st.violated == 0 || s.st.errors == 0 {
			t.Errorf("%s: the comparison is vacuous", s.what)
		}
	}
}

// TestAssertBindingOrder: a key's "-> name" binding is visible to its
// siblings, because keys with a binding are visited first (kyverno-json's
// order is random, so it sees it only sometimes).
func TestAssertBindingOrder(t *testing.T) {
	var tree v1alpha1.AssertionTree
	if err := tree.UnmarshalJSON([]byte(`{"(a)->x": {}, "(b)": "($x)"}`)); err != nil {
		t.Fatal(err)
	}
	n, ferr := compileTree(nil, policyCompilers(&v1alpha1.ValidatingPolicy{}), &tree)
	if ferr != nil {
		t.Fatal(ferr)
	}
	for _, tc := range []struct {
		name   string
		value  map[string]any
		failed bool
	}{
		{"a sibling sees the binding", map[string]any{"a": "v", "b": "v"}, false},
		{"a sibling compares with the binding", map[string]any{"a": "v", "b": "w"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			failed, err := checkTree(n, tc.value, binding.NewBindings())
			if err != nil || failed != tc.failed {
				t.Fatalf("got failed %v, error %v; want failed %v", failed, err, tc.failed)
			}
		})
	}
}

// TestCompileRuleErrors: compile errors are kyverno-json's, with their paths.
func TestCompileRuleErrors(t *testing.T) {
	for _, tc := range []struct{ name, rule string }{
		{"an empty match is invalid", `{"name": "r", "match": {}, "assert": {"all": [{"check": {}}]}}`},
		{"an empty assert is invalid", `{"name": "r", "assert": {}}`},
		{"a bad expression in a key names its path", `{"name": "r", "assert": {"all": [{"check": {"spec": {"(foo[)": 1}}}]}}`},
		{"a bad expression in a leaf names its path", `{"name": "r", "assert": {"any": [{"check": {"spec": ["(foo[)"]}}]}}`},
		{"foreach in a leaf is invalid", `{"name": "r", "match": {"all": [{"a": "~.(b)"}]}, "assert": {"all": [{"check": {}}]}}`},
		{"a bad context entry names its path", `{"name": "r", "context": [{"name": "x", "variable": "(foo[)"}], "assert": {"all": [{"check": {}}]}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var vr v1alpha1.ValidatingRule
			if err := json.Unmarshal([]byte(tc.rule), &vr); err != nil {
				t.Fatal(err)
			}
			comp := policyCompilers(&v1alpha1.ValidatingPolicy{})
			fp := field.NewPath("spec", "rules").Index(0)
			_, want := jsonengine.CompileRule(fp, comp, vr)
			_, got := compileRule(fp, comp, vr)
			if want == nil || got == nil || want.Error() != got.Error() {
				t.Fatalf("compile errors differ:\nkyverno-json %v\nours         %v", want, got)
			}
			if !strings.HasPrefix(got.Error(), "spec.rules[0].") {
				t.Errorf("the error does not name its path: %v", got)
			}
		})
	}
}

// FuzzAssert compares both evaluations on fuzzed JSON, used both as the
// object under review and as its facts.
func FuzzAssert(f *testing.F) {
	rules := diffRules(f)
	inputs := corpusInputs(f)
	for i, in := range inputs {
		if i%7 != 0 {
			continue
		}
		js, err := json.Marshal(in.resource)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(js, uint8(i))
	}
	f.Fuzz(func(t *testing.T, data []byte, pick uint8) {
		var v any
		if err := json.Unmarshal(data, &v); err != nil {
			return
		}
		base := inputs[int(pick)%len(inputs)]
		var st diffStats
		for _, in := range []diffInput{
			{name: "object", resource: v, facts: base.facts, ns: base.ns, req: base.req, mesh: base.mesh},
			{name: "facts", resource: base.resource, facts: v, ns: base.ns, req: base.req, mesh: base.mesh},
		} {
			b, ob := in.bindings(), in.scope()
			for i := range rules {
				if err := rules[i].compare(in.resource, b, ob, &st); err != nil {
					t.Errorf("fuzzed %s, rule %s: %v", in.name, rules[i].name, err)
				}
			}
		}
	})
}
