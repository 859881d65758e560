package rules

import (
	"context"
	"fmt"

	"github.com/jmespath-community/go-jmespath/pkg/binding"
	"github.com/jmespath-community/go-jmespath/pkg/interpreter"
	"github.com/jmespath-community/go-jmespath/pkg/parsing"
	"github.com/kyverno/kyverno-json/pkg/core/compilers"
	kjp "github.com/kyverno/kyverno-json/pkg/core/compilers/jp"
	kyvernojp "github.com/kyverno/kyverno-json/pkg/jp"
)

// This file makes evaluating a JMESPath expression cheaper without changing
// its result.
//
// kyverno-json's JMESPath program (compilers/jp) runs
//
//	interpreter.NewInterpreter(nil, bindings).Execute(ast, value, interpreter.WithFunctionCaller(caller))
//
// for every evaluation: a new interpreter, a new option closure and a new
// option slice each time. The interpreter holds nothing but its root (nil) and
// its bindings, and only a let expression (ASTLetExpression, whose
// ASTBindings child sets the bindings) ever changes them. So an interpreter
// created for a set of bindings gives the same results for every let-free
// expression evaluated with those bindings, and can be kept with them: scope
// is the Engine's binding.Bindings, and it carries the interpreter of its
// bindings. jpCompiler compiles kyverno-json's default JMESPath compiler's
// programs, with the same parser, function table and options, and runs
// let-free ones with the interpreter of a scope; with bindings of another type,
// or for an expression with a let, it runs kyverno-json's own program.
//
// scope is also cheaper than binding.NewBindings: kyverno-json's Register
// copies the whole map of bindings into a new one, a scope adds one node.

// scope is an immutable set of bindings: a chain of (name, binding) nodes,
// the most recently registered first. It has the semantics of
// binding.NewBindings: Get returns the binding most recently registered under
// a name, or the same error; Register returns new bindings and leaves these
// unchanged.
//
// A scope is used by one evaluation at a time: the interpreter it caches is
// created without synchronisation. (The interpreter itself is never changed
// by the let-free expressions run with it.)
type scope struct {
	up    *scope
	name  string
	value binding.Binding
	vm    interpreter.Interpreter
}

var _ binding.Bindings = (*scope)(nil)

// Get implements binding.Bindings.
func (s *scope) Get(name string) (binding.Binding, error) {
	for n := s; n != nil; n = n.up {
		if n.name == name {
			return n.value, nil
		}
	}
	return nil, fmt.Errorf("variable not defined: %s", name)
}

// Register implements binding.Bindings.
func (s *scope) Register(name string, b binding.Binding) binding.Bindings {
	return &scope{up: s, name: name, value: b}
}

// interpreter returns the interpreter of these bindings, as
// interpreter.NewInterpreter(nil, s) returns it.
func (s *scope) interpreter() interpreter.Interpreter {
	if s.vm == nil {
		s.vm = interpreter.NewInterpreter(nil, s)
	}
	return s.vm
}

// constBinding is binding.NewBinding's binding.
type constBinding struct{ v any }

func (b *constBinding) Value() (any, error) { return b.v, nil }

// meshDelegate is the lazy $mesh binding: like the binding.NewDelegate it
// replaces, it computes the value on every Value.
type meshDelegate struct {
	e  *Engine
	st *engine
}

func (d *meshDelegate) Value() (any, error) { return d.e.meshBinding(d.st), nil }

// requestScope holds the bindings of one request in one allocation: $facts,
// $namespace, $request and the lazy $mesh.
type requestScope struct {
	nodes                     [4]scope
	facts, namespace, request constBinding
	mesh                      meshDelegate
}

// newRequestScope returns the bindings of a request, the same as
//
//	binding.NewBindings().
//		Register("$facts", binding.NewBinding(p.facts)).
//		Register("$namespace", binding.NewBinding(p.namespace)).
//		Register("$request", binding.NewBinding(p.request)).
//		Register("$mesh", binding.NewDelegate(func() (any, error) { return e.meshBinding(p.st), nil }))
func (e *Engine) newRequestScope(p *prepared) *scope {
	r := &requestScope{
		facts:     constBinding{p.facts},
		namespace: constBinding{p.namespace},
		request:   constBinding{p.request},
		mesh:      meshDelegate{e: e, st: p.st},
	}
	r.nodes[0] = scope{name: "$facts", value: &r.facts}
	r.nodes[1] = scope{up: &r.nodes[0], name: "$namespace", value: &r.namespace}
	r.nodes[2] = scope{up: &r.nodes[1], name: "$request", value: &r.request}
	r.nodes[3] = scope{up: &r.nodes[2], name: "$mesh", value: &r.mesh}
	return &r.nodes[3]
}

// jpCaller and jpOptions are what kyverno-json's default JMESPath compiler
// passes to the interpreter: a function caller over the same function table
// (compilers/jp's defaultCaller is interpreter.NewFunctionCaller over
// jp.GetFunctions(context.Background())).
var (
	jpCaller  = interpreter.NewFunctionCaller(kyvernojp.GetFunctions(context.Background())...)
	jpOptions = []interpreter.Option{interpreter.WithFunctionCaller(jpCaller)}
)

// jpCompiler is kyverno-json's default JMESPath compiler, whose let-free
// programs reuse the interpreter of a scope.
type jpCompiler struct {
	kjp.Compiler // kyverno-json's default compiler, for Options and the fallback
}

// withScopeJP returns the compilers with kyverno-json's default JMESPath
// compiler, when they use it, replaced by a jpCompiler. Other compilers, and a
// JMESPath compiler with options of its own, are left as they are.
func withScopeJP(c compilers.Compilers) compilers.Compilers {
	if c.Jp != compilers.DefaultCompilers.Jp || len(c.Jp.Options()) != 0 {
		return c
	}
	fast := jpCompiler{Compiler: c.Jp}
	if c.Default != nil && any(c.Default) == any(c.Jp) {
		c.Default = fast
	}
	c.Jp = fast
	return c
}

// Compile implements kjp.Compiler with the same compile errors.
func (c jpCompiler) Compile(statement string) (kjp.Program, error) {
	program, err := c.Compiler.Compile(statement)
	if err != nil {
		return nil, err
	}
	// The same parse as the compiler's, which succeeded.
	ast, err := parsing.NewParser().Parse(statement)
	if err != nil {
		return nil, err
	}
	if hasLet(ast) {
		return program, nil
	}
	return func(value any, bindings binding.Bindings) (any, error) {
		if s, ok := bindings.(*scope); ok {
			return s.interpreter().Execute(ast, value, jpOptions...)
		}
		return program(value, bindings)
	}, nil
}

// hasLet reports whether an expression holds a let expression, the only
// nodes that change an interpreter's bindings.
func hasLet(n parsing.ASTNode) bool {
	if n.NodeType == parsing.ASTLetExpression || n.NodeType == parsing.ASTBindings {
		return true
	}
	for _, c := range n.Children {
		if hasLet(c) {
			return true
		}
	}
	return false
}
