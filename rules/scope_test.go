package rules

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	"github.com/jmespath-community/go-jmespath/pkg/binding"
	"github.com/kyverno/kyverno-json/pkg/core/compilers"
)

// TestScopeIsBindings: scope's Get and Register behave as binding.NewBindings'
// (overrides, unknown names and their error, immutability).
func TestScopeIsBindings(t *testing.T) {
	type reg struct{ name, value string }
	steps := []reg{{"$a", "1"}, {"$b", "2"}, {"$a", "3"}, {"", "4"}, {"$c", "5"}}
	names := []string{"$a", "$b", "$c", "", "$missing", "a"}
	var ours binding.Bindings = (*scope)(nil)
	theirs := binding.NewBindings()
	check := func(when string, o, k binding.Bindings) {
		t.Helper()
		for _, n := range names {
			ov, oerr := binding.Resolve(n, o)
			kv, kerr := binding.Resolve(n, k)
			if fmt.Sprint(oerr) != fmt.Sprint(kerr) || !reflect.DeepEqual(ov, kv) {
				t.Errorf("%s: %q: got %v, %v; want %v, %v", when, n, ov, oerr, kv, kerr)
			}
		}
	}
	check("empty", ours, theirs)
	for i, s := range steps {
		prevO, prevK := ours, theirs
		ours = ours.Register(s.name, binding.NewBinding(s.value))
		theirs = theirs.Register(s.name, binding.NewBinding(s.value))
		check(fmt.Sprintf("after %d registrations", i+1), ours, theirs)
		check(fmt.Sprintf("before registration %d", i+1), prevO, prevK)
	}
}

// TestRequestScope: the Engine's bindings of a request hold what the
// binding.NewBindings it replaces held, $mesh computed on each read.
func TestRequestScope(t *testing.T) {
	e, snap := benchEngine(t)
	for _, bc := range benchCases {
		obj, _ := loadBench(t, bc.file)
		for _, user := range []*User{nil, {Username: "u", Admin: true}} {
			req := &Request{Object: obj, Context: snap, PostInjection: bc.post, User: user}
			p, err := e.prepare(req)
			if err != nil {
				t.Fatal(err)
			}
			ours := e.newRequestScope(p)
			theirs := binding.NewBindings().
				Register("$facts", binding.NewBinding(p.facts)).
				Register("$namespace", binding.NewBinding(p.namespace)).
				Register("$request", binding.NewBinding(p.request)).
				Register("$mesh", binding.NewDelegate(func() (any, error) { return e.meshBinding(p.st), nil }))
			for _, n := range []string{"$facts", "$namespace", "$request", "$mesh", "$other", ""} {
				ov, oerr := binding.Resolve(n, ours)
				kv, kerr := binding.Resolve(n, theirs)
				if fmt.Sprint(oerr) != fmt.Sprint(kerr) || !reflect.DeepEqual(ov, kv) {
					t.Errorf("%s: %q: got %v, %v; want %v, %v", bc.name, n, ov, oerr, kv, kerr)
				}
			}
			m1, _ := binding.Resolve("$mesh", ours)
			m2, _ := binding.Resolve("$mesh", ours)
			if reflect.ValueOf(m1).Pointer() == reflect.ValueOf(m2).Pointer() {
				t.Errorf("%s: $mesh is not computed on each read", bc.name)
			}
		}
	}
}

// TestWithScopeJP: only kyverno-json's default JMESPath compiler is replaced,
// and a default compiler that is it follows.
func TestWithScopeJP(t *testing.T) {
	c := withScopeJP(compilers.DefaultCompilers.WithDefaultCompiler(compilers.CompilerJP))
	if _, ok := c.Jp.(jpCompiler); !ok {
		t.Errorf("Jp is a %T", c.Jp)
	}
	if _, ok := c.Default.(jpCompiler); !ok {
		t.Errorf("Default is a %T", c.Default)
	}
	if again := withScopeJP(c); again.Jp != c.Jp {
		t.Errorf("withScopeJP is not idempotent")
	}
	c = withScopeJP(compilers.DefaultCompilers.WithDefaultCompiler(compilers.CompilerCEL))
	if c.Default != compilers.DefaultCompilers.Cel {
		t.Errorf("a CEL default compiler was replaced by a %T", c.Default)
	}
}

// TestScopeProgramIsReentrant: a scope's interpreter serves nested and
// repeated evaluations (functions with expression references, errors) with the
// results of a fresh interpreter.
func TestScopeProgramIsReentrant(t *testing.T) {
	comp := withScopeJP(compilers.DefaultCompilers)
	value := map[string]any{"items": []any{map[string]any{"n": 2.0}, map[string]any{"n": 1.0}}, "name": "x"}
	var s binding.Bindings = (*scope)(nil)
	s = s.Register("$v", binding.NewBinding("x"))
	kb := binding.NewBindings().Register("$v", binding.NewBinding("x"))
	for _, expr := range []string{
		"sort_by(items, &n)[0].n", "name == $v", "$undefined", "max_by(items, &n).n",
		"let $n = name in $n", "name", "abs(name)", "items[?n > `1`] | length(@)",
	} {
		fast, err := comp.Jp.Compile(expr)
		if err != nil {
			t.Fatal(err)
		}
		orig, err := compilers.DefaultCompilers.Jp.Compile(expr)
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			got, gerr := fast(value, s)
			want, werr := orig(value, kb)
			if fmt.Sprint(gerr) != fmt.Sprint(werr) || !reflect.DeepEqual(got, want) {
				t.Errorf("%s: got %v, %v; want %v, %v", expr, got, gerr, want, werr)
			}
		}
	}
}

// TestIsProxyImagePrefilter: isProxyImage is the expression's answer.
func TestIsProxyImagePrefilter(t *testing.T) {
	for _, cfg := range []*Config{NewConfig(), func() *Config {
		c := NewConfig()
		c.ProxyImageRegistries = []string{"docker.io", "docker.io/library", "registry.example.com:5000/mesh"}
		c.ProxyImageNames = []string{"proxyv2", "library", "docker", "io"}
		return c
	}()} {
		cc, err := cfg.compile()
		if err != nil {
			t.Fatal(err)
		}
		for _, image := range []string{
			"", "auto", "nginx", "proxyv2", "istio/proxyv2", "docker.io/istio/proxyv2:1.24.2",
			"index.docker.io/istio/proxyv2", "registry-1.docker.io/istio/proxyv2@sha256:" + fmt.Sprintf("%064x", 1),
			"gcr.io/istio-release/proxyv2:1.24", "gcr.io/istio-release/proxyv2-rhel8", "library", "docker", "io",
			"docker.io/library", "library/library", "registry.example.com:5000/mesh/proxyv2:1", "localhost/proxyv2",
			"docker.io/docker:io", "io:io",
		} {
			want := cc.proxyImage.MatchString(normalizeImageRepo(image))
			if got := cc.isProxyImage(image); got != want {
				t.Errorf("%v %v: isProxyImage(%q) = %v, want %v", cfg.ProxyImageRegistries, cfg.ProxyImageNames, image, got, want)
			}
		}
	}
}

// The Engine's results do not depend on the evaluation: a second Evaluate of
// the same request (a new scope) returns the same findings.
func TestEvaluateTwice(t *testing.T) {
	e, snap := benchEngine(t)
	for _, bc := range benchCases {
		obj, _ := loadBench(t, bc.file)
		req := &Request{Object: obj, Context: snap, PostInjection: bc.post}
		a, err1 := e.Evaluate(context.Background(), req)
		b, err2 := e.Evaluate(context.Background(), req)
		if err1 != nil || err2 != nil || !reflect.DeepEqual(a, b) {
			t.Errorf("%s: %v, %v", bc.name, err1, err2)
		}
	}
}
