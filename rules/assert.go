package rules

import (
	"fmt"
	"reflect"
	"sort"

	"github.com/jmespath-community/go-jmespath/pkg/binding"
	"github.com/kyverno/kyverno-json/pkg/apis/policy/v1alpha1"
	"github.com/kyverno/kyverno-json/pkg/core/compilers"
	"github.com/kyverno/kyverno-json/pkg/core/compilers/jp"
	"github.com/kyverno/kyverno-json/pkg/core/expression"
	"github.com/kyverno/kyverno-json/pkg/core/matching"
	"github.com/kyverno/kyverno-json/pkg/core/projection"
	jsonengine "github.com/kyverno/kyverno-json/pkg/json-engine"
	"k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// This file compiles a kyverno-json ValidatingRule into our own evaluator. It
// has the semantics of jsonengine.CompileRule and of kyverno-json's assertion
// trees (pkg/core/assertion) — the same projections, comparisons, failures and
// errors, and the same error texts — but an evaluation only answers what the
// Engine needs: did the rule apply, which messages did it produce, and did it
// fail. kyverno-json builds a field.Path for every map key it visits (with
// fmt.Sprint), a field.Error for every non-matching check and a RuleResponse
// with a timestamp for every applied rule; here the tree walk returns a bool
// and builds the path of an error only when there is one.
//
// The differential test (assert_test.go) runs both on every fixture, the
// corpus and mutated variants of them and requires identical outcomes.

// policyRule is one compiled ValidatingRule.
type policyRule struct {
	// context registers the rule's context entries; nil when there are none.
	context func(any, binding.Bindings) binding.Bindings
	// match and exclude are nil when the rule has none.
	match, exclude *matchClause
	anyOf, allOf   []assertion
}

// matchClause is a compiled match or exclude.
type matchClause struct {
	anyOf, allOf []node
}

// assertion is one compiled assert.any or assert.all entry.
type assertion struct {
	check   node
	message *v1alpha1.Message
	// checkPath is kyverno-json's "(CHECK=spec.rules[i].assert.all[j])", the
	// whole message of an assertion without one.
	checkPath string
	jpOptions []jp.Option
	// itemized is set when the message starts with {{ join('; ', LIST) }}:
	// the offending items are then LIST's elements, each followed by the
	// rest of the message (suffix), evaluated apart from the message text so
	// that grandfathering never splits text a user wrote (items.go).
	itemized *itemizer
}

// compileRule compiles a ValidatingRule as jsonengine.CompileRule does, with
// the same compile errors, except that the rule's identifier and feedback are
// only validated: their values are never used (the Engine compiles the
// severity feedback apart).
func compileRule(path *field.Path, comp compilers.Compilers, in v1alpha1.ValidatingRule) (*policyRule, *field.Error) {
	comp = withScopeJP(comp) // scope.go
	if in.Compiler != nil {
		comp = comp.WithDefaultCompiler(string(*in.Compiler))
	}
	r := &policyRule{}
	if len(in.Context) > 0 {
		ctx, err := jsonengine.CompileContextEntries(path.Child("context"), comp, in.Context...)
		if err != nil {
			return nil, err
		}
		r.context = ctx
	}
	if _, err := jsonengine.CompileIdentifier(path.Child("identifier"), comp, in.Identifier); err != nil {
		return nil, err
	}
	var err *field.Error
	if r.match, err = compileMatch(path.Child("match"), comp, in.Match); err != nil {
		return nil, err
	}
	if r.exclude, err = compileMatch(path.Child("exclude"), comp, in.Exclude); err != nil {
		return nil, err
	}
	if len(in.Feedback) > 0 {
		if _, err := jsonengine.CompileFeedbacks(path.Child("feedback"), comp, in.Feedback...); err != nil {
			return nil, err
		}
	}
	path = path.Child("assert")
	if in.Assert.Compiler != nil {
		comp = comp.WithDefaultCompiler(string(*in.Assert.Compiler))
	}
	if len(in.Assert.Any) == 0 && len(in.Assert.All) == 0 {
		return nil, field.Invalid(path, in.Assert, "an empty assert is not valid")
	}
	if r.anyOf, err = compileAssertions(path.Child("any"), comp, in.Assert.Any); err != nil {
		return nil, err
	}
	if r.allOf, err = compileAssertions(path.Child("all"), comp, in.Assert.All); err != nil {
		return nil, err
	}
	return r, nil
}

func compileMatch(path *field.Path, comp compilers.Compilers, in *v1alpha1.Match) (*matchClause, *field.Error) {
	if in == nil {
		return nil, nil
	}
	if len(in.Any) == 0 && len(in.All) == 0 {
		return nil, field.Invalid(path, in, "an empty match is not valid")
	}
	if in.Compiler != nil {
		comp = comp.WithDefaultCompiler(string(*in.Compiler))
	}
	m := &matchClause{}
	var err *field.Error
	if m.anyOf, err = compileTrees(path.Child("any"), comp, in.Any); err != nil {
		return nil, err
	}
	if m.allOf, err = compileTrees(path.Child("all"), comp, in.All); err != nil {
		return nil, err
	}
	return m, nil
}

func compileTrees(path *field.Path, comp compilers.Compilers, in []v1alpha1.AssertionTree) ([]node, *field.Error) {
	var out []node
	for i := range in {
		n, err := compileTree(path.Index(i), comp, &in[i])
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

func compileAssertions(path *field.Path, comp compilers.Compilers, in []v1alpha1.Assertion) ([]assertion, *field.Error) {
	var out []assertion
	for i := range in {
		p := path.Index(i)
		c := comp
		if in[i].Compiler != nil {
			c = c.WithDefaultCompiler(string(*in[i].Compiler))
		}
		n, err := compileTree(p.Child("check"), c, &in[i].Check)
		if err != nil {
			return nil, err
		}
		out = append(out, assertion{
			check:     n,
			message:   in[i].Message,
			checkPath: fmt.Sprintf("(CHECK=%s)", p.String()),
			jpOptions: c.Jp.Options(),
			itemized:  newItemizer(in[i].Message),
		})
	}
	return out, nil
}

// compileTree compiles an assertion tree from its raw value. AssertionTree
// keeps the value it decoded from JSON private; MarshalJSON returns it as JSON,
// and decoding that with the same decoder as AssertionTree.UnmarshalJSON gives
// back the same value (maps, slices, strings, bools, int64 for integral
// numbers, float64 for the others; an integral float64 can only have come from
// a number that the decoder would already have made an int64).
func compileTree(path *field.Path, comp compilers.Compilers, in *v1alpha1.AssertionTree) (node, *field.Error) {
	data, err := in.MarshalJSON()
	if err != nil {
		return nil, field.InternalError(path, err)
	}
	var raw any
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, field.InternalError(path, err)
	}
	return parseNode(path, raw, comp)
}

// evaluate runs the rule on a resource. applied is false when the rule's match
// did not match or its exclude did; violations holds the formatted message of
// every failing assertion, as kyverno-json's Violations (without the
// " (CHECK=...)" suffix that kyverno-json appends to a message). err is the
// error kyverno-json's RuleResponse would hold.
func (r *policyRule) evaluate(resource any, bindings binding.Bindings) (applied bool, violations []string, err error) {
	applied, failed, err := r.failing(resource, bindings)
	for _, a := range failed {
		violations = append(violations, a.format(resource, bindings))
	}
	return applied, violations, err
}

// failing runs the rule on a resource and returns the assertions that
// failed (evaluate's violations, before formatting).
func (r *policyRule) failing(resource any, bindings binding.Bindings) (applied bool, failed []*assertion, err error) {
	if r.context != nil {
		bindings = r.context(resource, bindings)
	}
	if r.match != nil {
		matched, err := r.match.matches(resource, bindings)
		if err != nil {
			return true, nil, err
		}
		if !matched {
			return false, nil, nil
		}
	}
	if r.exclude != nil {
		excluded, err := r.exclude.matches(resource, bindings)
		if err != nil {
			return true, nil, err
		}
		if excluded {
			return false, nil, nil
		}
	}
	if len(r.anyOf) > 0 {
		passed := false
		for i := range r.anyOf {
			failed, err := checkTree(r.anyOf[i].check, resource, bindings)
			if err != nil {
				return true, nil, err
			}
			if !failed {
				passed = true
				break
			}
		}
		if !passed {
			// Every assertion of any failed, and kyverno-json then skips all.
			failed = make([]*assertion, 0, len(r.anyOf))
			for i := range r.anyOf {
				failed = append(failed, &r.anyOf[i])
			}
			return true, failed, nil
		}
	}
	for i := range r.allOf {
		f, err := checkTree(r.allOf[i].check, resource, bindings)
		if err != nil {
			return true, nil, err
		}
		if f {
			failed = append(failed, &r.allOf[i])
		}
	}
	return true, failed, nil
}

func (a *assertion) format(resource any, bindings binding.Bindings) string {
	if a.message == nil {
		return a.checkPath
	}
	return a.message.Format(resource, bindings, a.jpOptions...)
}

// matches is kyverno-json's CompileMatch: the first tree of any that passes
// makes it match (all is then not evaluated); otherwise every tree of all is
// evaluated and it matches only if any is empty and every tree of all passes.
// An error from an evaluated tree is returned at once.
func (m *matchClause) matches(resource any, bindings binding.Bindings) (bool, error) {
	for _, n := range m.anyOf {
		failed, err := checkTree(n, resource, bindings)
		if err != nil {
			return false, err
		}
		if !failed {
			return true, nil
		}
	}
	failed := len(m.anyOf) > 0
	for _, n := range m.allOf {
		f, err := checkTree(n, resource, bindings)
		if err != nil {
			return false, err
		}
		failed = failed || f
	}
	return !failed, nil
}

// checkTree evaluates a tree from its root and turns an error into the
// *field.Error kyverno-json returns, whose path starts at the tree's root.
func checkTree(n node, resource any, bindings binding.Bindings) (bool, error) {
	failed, terr := n.assert(resource, bindings)
	if terr != nil {
		return false, terr.fieldError()
	}
	return failed, nil
}

// node is a compiled assertion tree node. assert reports whether the value
// fails the node (kyverno-json would return a non-empty field.ErrorList) or an
// error, which stops the evaluation as kyverno-json's does. A failure does not:
// every key and element is evaluated, so that an error anywhere is returned.
type node interface {
	assert(value any, bindings binding.Bindings) (failed bool, err *treeError)
}

func parseNode(path *field.Path, in any, comp compilers.Compilers) (node, *field.Error) {
	if in == nil {
		return parseScalar(path, in, comp)
	}
	switch reflect.TypeOf(in).Kind() {
	case reflect.Slice:
		return parseSlice(path, in, comp)
	case reflect.Map:
		return parseMap(path, in, comp)
	default:
		return parseScalar(path, in, comp)
	}
}

// sliceNode asserts a slice of the same length whose elements pass the
// corresponding nodes. A nil value fails; a value that is not a slice is an
// error.
type sliceNode []node

func parseSlice(path *field.Path, in any, comp compilers.Compilers) (sliceNode, *field.Error) {
	v := reflect.ValueOf(in)
	out := make(sliceNode, 0, v.Len())
	for i := 0; i < v.Len(); i++ {
		n, err := parseNode(path.Index(i), v.Index(i).Interface(), comp)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

func (n sliceNode) assert(value any, bindings binding.Bindings) (bool, *treeError) {
	if value == nil {
		return true, nil
	}
	if s, ok := value.([]any); ok {
		if len(s) != len(n) {
			return true, nil
		}
		failed := false
		for i := range n {
			f, err := n[i].assert(s[i], bindings)
			if err != nil {
				return false, err.at(pathSeg{kind: segIndex, index: i})
			}
			failed = failed || f
		}
		return failed, nil
	}
	v := reflect.ValueOf(value)
	if v.Kind() != reflect.Slice {
		return false, &treeError{value: value, detail: "expected a slice"}
	}
	if v.Len() != len(n) {
		return true, nil
	}
	failed := false
	for i := range n {
		f, err := n[i].assert(v.Index(i).Interface(), bindings)
		if err != nil {
			return false, err.at(pathSeg{kind: segIndex, index: i})
		}
		failed = failed || f
	}
	return failed, nil
}

// mapNode projects the value with each key and asserts the projection with
// the key's node. An empty mapNode fails only a nil value.
//
// kyverno-json keeps the keys in a Go map, so it visits them in a random
// order, and a key's "-> name" binding is registered for the keys visited
// after it. Ours are visited in a fixed order, one of those kyverno-json may
// use: the keys with a binding first, then the others, each group sorted by
// key. A sibling that uses a binding therefore always sees it.
type mapNode []mapEntry

type mapEntry struct {
	// name is the key as kyverno-json writes it in a field path.
	name string
	// plain is true for a key that is a plain field name (not an expression):
	// lookup then reads a map[string]any directly.
	plain  bool
	lookup string
	// project is kyverno-json's projection of the key, for everything else.
	project projection.MapKeyHandler
	// binding and foreachName are the names to register, with their "$"; empty
	// for none.
	binding, foreachName string
	foreach              bool
	node                 node
}

func parseMap(path *field.Path, in any, comp compilers.Compilers) (mapNode, *field.Error) {
	type rawEntry struct {
		name       string
		key, value any
	}
	var raw []rawEntry
	iter := reflect.ValueOf(in).MapRange()
	for iter.Next() {
		k := iter.Key().Interface()
		raw = append(raw, rawEntry{name: fmt.Sprint(k), key: k, value: iter.Value().Interface()})
	}
	sort.SliceStable(raw, func(i, j int) bool { return raw[i].name < raw[j].name })
	out := make(mapNode, 0, len(raw))
	for _, re := range raw {
		p := path.Child(re.name)
		proj, err := projection.ParseMapKey(p, re.key, comp)
		if err != nil {
			return nil, err
		}
		n, err := parseNode(p, re.value, comp)
		if err != nil {
			return nil, err
		}
		e := mapEntry{name: re.name, project: proj.Handler, foreach: proj.Foreach, node: n}
		if proj.Binding != "" {
			e.binding = "$" + proj.Binding
		}
		if proj.ForeachName != "" {
			e.foreachName = "$" + proj.ForeachName
		}
		if s, ok := re.key.(string); ok {
			// The same test as projection.ParseMapKey's: no compiler means a
			// field lookup of the statement.
			if expr := expression.Parse(s); comp.Compiler(expr.Compiler) == nil {
				e.plain, e.lookup = true, expr.Statement
			}
		}
		out = append(out, e)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].binding != "" && out[j].binding == "" })
	return out, nil
}

func (n mapNode) assert(value any, bindings binding.Bindings) (bool, *treeError) {
	if len(n) == 0 {
		return value == nil, nil
	}
	failed := false
	for i := range n {
		e := &n[i]
		var projected any
		var found bool
		if m, ok := value.(map[string]any); ok && e.plain {
			projected, found = m[e.lookup]
		} else {
			var err error
			if projected, found, err = e.project(value, bindings); err != nil {
				return false, (&treeError{cause: err}).at(pathSeg{kind: segChild, name: e.name})
			}
		}
		if !found {
			failed = true
			continue
		}
		if e.binding != "" {
			bindings = bindings.Register(e.binding, binding.NewBinding(projected))
		}
		var f bool
		var err *treeError
		if e.foreach {
			f, err = e.assertEach(projected, bindings)
		} else if f, err = e.node.assert(projected, bindings); err != nil {
			err = err.at(pathSeg{kind: segChild, name: e.name})
		}
		if err != nil {
			return false, err
		}
		failed = failed || f
	}
	return failed, nil
}

// assertEach asserts every element of a slice, or every value of a map, with
// the entry's node, registering the index or key under the foreach name.
func (e *mapEntry) assertEach(projected any, bindings binding.Bindings) (bool, *treeError) {
	failed := false
	each := func(k, v any, seg pathSeg) *treeError {
		b := bindings
		if e.foreachName != "" {
			b = b.Register(e.foreachName, binding.NewBinding(k))
		}
		f, err := e.node.assert(v, b)
		if err != nil {
			return err.at(seg).at(pathSeg{kind: segChild, name: e.name})
		}
		failed = failed || f
		return nil
	}
	switch typed := projected.(type) {
	case []any:
		for i, v := range typed {
			if err := each(i, v, pathSeg{kind: segIndex, index: i}); err != nil {
				return false, err
			}
		}
		return failed, nil
	case map[string]any:
		for k, v := range typed {
			if err := each(k, v, pathSeg{kind: segKey, key: k}); err != nil {
				return false, err
			}
		}
		return failed, nil
	}
	if projected != nil {
		switch v := reflect.ValueOf(projected); v.Kind() {
		case reflect.Slice:
			for i := 0; i < v.Len(); i++ {
				if err := each(i, v.Index(i).Interface(), pathSeg{kind: segIndex, index: i}); err != nil {
					return false, err
				}
			}
			return failed, nil
		case reflect.Map:
			iter := v.MapRange()
			for iter.Next() {
				k := iter.Key().Interface()
				if err := each(k, iter.Value().Interface(), pathSeg{kind: segKey, key: k}); err != nil {
					return false, err
				}
			}
			return failed, nil
		}
	}
	return false, (&treeError{value: projected, detail: "expected a slice or a map"}).at(pathSeg{kind: segChild, name: e.name})
}

// scalarNode compares the value with the expected value: a constant, or the
// result of an expression evaluated on the value.
type scalarNode struct {
	constant bool
	expected any
	program  projection.ScalarHandler
}

func parseScalar(path *field.Path, in any, comp compilers.Compilers) (*scalarNode, *field.Error) {
	program, err := projection.ParseScalar(path, in, comp)
	if err != nil {
		return nil, err
	}
	n := &scalarNode{constant: true, expected: in}
	if s, ok := in.(string); ok {
		// The same test as projection.ParseScalar's.
		if expr := expression.Parse(s); comp.Compiler(expr.Compiler) != nil {
			n.constant, n.expected, n.program = false, nil, program
		} else {
			n.expected = expr.Statement
		}
	}
	return n, nil
}

func (n *scalarNode) assert(value any, bindings binding.Bindings) (bool, *treeError) {
	expected := n.expected
	if !n.constant {
		var err error
		if expected, err = n.program(value, bindings); err != nil {
			return false, &treeError{cause: err}
		}
	}
	// Shortcuts for matching.Match on the usual leaves, with its results.
	switch e := expected.(type) {
	case string:
		if a, ok := value.(string); ok {
			return a != e, nil
		}
	case bool:
		if a, ok := value.(bool); ok {
			return a != e, nil
		}
	}
	match, err := matching.Match(expected, value)
	if err != nil {
		return false, &treeError{cause: err}
	}
	return !match, nil
}

// treeError is an evaluation error on its way up the tree: each node adds its
// path segment, and checkTree turns it into kyverno-json's *field.Error.
type treeError struct {
	// segs is the error's path, innermost segment first.
	segs []pathSeg
	// cause makes a field.InternalError; without one the error is a
	// field.TypeInvalid of value with detail.
	cause  error
	value  any
	detail string
}

type segKind uint8

const (
	segChild segKind = iota // .name
	segIndex                // [index]
	segKey                  // [key]
)

type pathSeg struct {
	kind  segKind
	name  string
	index int
	key   any
}

func (e *treeError) at(s pathSeg) *treeError {
	e.segs = append(e.segs, s)
	return e
}

func (e *treeError) fieldError() *field.Error {
	var p *field.Path // kyverno-json asserts a tree's root with a nil path
	for i := len(e.segs) - 1; i >= 0; i-- {
		switch s := e.segs[i]; s.kind {
		case segChild:
			p = p.Child(s.name)
		case segIndex:
			p = p.Index(s.index)
		case segKey:
			p = p.Key(fmt.Sprint(s.key))
		}
	}
	if e.cause != nil {
		return field.InternalError(p, e.cause)
	}
	return field.TypeInvalid(p, e.value, e.detail)
}
