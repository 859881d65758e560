package rules

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jmespath-community/go-jmespath/pkg/binding"
	jsonengine "github.com/kyverno/kyverno-json/pkg/json-engine"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Evaluator decides which rules an object violates. It is the seam the webhook
// and the CLI depend on; implementations are safe for concurrent use.
type Evaluator interface {
	// Evaluate returns the findings for one object. An error means a rule could
	// not be evaluated (for example a field of the wrong type): callers must
	// treat it as a failure, never as an allow.
	Evaluate(ctx context.Context, req *Request) ([]Finding, error)
}

// Request is one object to evaluate and what is known around it.
type Request struct {
	// Object is the object under review, decoded from JSON (float64 numbers).
	// For a DELETE it is the object being deleted. Required.
	Object Object
	// OldObject is the previous version on UPDATE; nil otherwise.
	OldObject Object
	// Operation is CREATE (the default when empty), UPDATE or DELETE.
	Operation string
	// DefaultNamespace is the namespace of a namespaced object that does not
	// name one. Default "default".
	DefaultNamespace string
	// PostInjection is true when Pods are seen after mutating admission (the
	// webhook on Pod CREATE, or a live cluster), so a missing proxy is a finding.
	// Manifests on disk are pre-injection.
	PostInjection bool
	// Context holds the other objects rules may consult. Nil means nothing is known.
	Context Context
	// User is who makes the request, when known (the webhook); nil offline.
	User *User
	// Admission is true for an admission request (the webhook, and fixture
	// AdmissionReviews): audit-only rules (Rule.AuditOnly) are skipped.
	Admission bool
}

// User is the requester of an admission request.
type User struct {
	// Username and Groups come from the AdmissionRequest's userInfo.
	Username string
	Groups   []string
	// Admin is true when the user is one of the configured admin identities,
	// who may change meshguard's own labels and exemptions.
	Admin bool
}

// Engine is the Evaluator over a compiled catalog. Build it once with New.
type Engine struct {
	cfg    *compiledConfig
	byKind map[schema.GroupKind][]*Rule
	rules  []*Rule
}

var _ Evaluator = (*Engine)(nil)

// New builds an Engine over a catalog with the given configuration (nil means NewConfig()).
func New(c *Catalog, cfg *Config) (*Engine, error) {
	if c == nil {
		return nil, fmt.Errorf("new evaluator: catalog is nil")
	}
	if cfg == nil {
		cfg = NewConfig()
	}
	cc, err := cfg.compile()
	if err != nil {
		return nil, fmt.Errorf("new evaluator: %w", err)
	}
	e := &Engine{cfg: cc, byKind: map[schema.GroupKind][]*Rule{}, rules: c.rules}
	for _, r := range c.rules {
		for _, gk := range r.Kinds {
			e.byKind[gk] = append(e.byKind[gk], r)
		}
	}
	return e, nil
}

// RulesFor returns the rules that apply to a kind.
func (e *Engine) RulesFor(gk schema.GroupKind) []*Rule { return e.byKind[gk] }

// engine is the per-request view: configuration plus context.
type engine struct {
	cfg *compiledConfig
	ctx Context
	// eng evaluates other objects a fact depends on (the pods a namespace
	// change would leave behind).
	eng *Engine
}

// ObjectRefOf returns the reference of a decoded object.
func ObjectRefOf(obj Object, defaultNamespace string) ObjectRef {
	meta, _ := obj["metadata"].(map[string]any)
	ref := ObjectRef{
		APIVersion: str(obj, "apiVersion"),
		Kind:       str(obj, "kind"),
		Namespace:  str(meta, "namespace"),
		Name:       str(meta, "name"),
	}
	if ref.Name == "" {
		if g := str(meta, "generateName"); g != "" {
			ref.Name = g + "*"
		}
	}
	if info, ok := LookupKind(schema.GroupKind{Group: apiGroup(ref.APIVersion), Kind: ref.Kind}); ok && info.Namespaced && ref.Namespace == "" {
		ref.Namespace = defaultNamespace
	}
	return ref
}

// prepared is an object ready for its rules: its reference, kind and bindings.
type prepared struct {
	ref       ObjectRef
	info      KindInfo
	rules     []*Rule
	exemptNS  bool
	facts     map[string]any
	namespace map[string]any
	request   map[string]any
	st        *engine
}

// prepare decodes what the rules need from a request. It returns nil when no
// rule applies to the object's kind.
func (e *Engine) prepare(req *Request) (*prepared, error) {
	if req == nil || req.Object == nil {
		return nil, fmt.Errorf("evaluate: no object")
	}
	obj := req.Object
	apiVersion, ok1 := obj["apiVersion"].(string)
	kind, ok2 := obj["kind"].(string)
	if !ok1 || !ok2 || apiVersion == "" || kind == "" {
		return nil, fmt.Errorf("evaluate: apiVersion and kind are required strings")
	}
	gk := schema.GroupKind{Group: apiGroup(apiVersion), Kind: kind}
	rules := e.byKind[gk]
	if len(rules) == 0 {
		return nil, nil
	}
	info, _ := LookupKind(gk)
	if err := checkType(obj, "", "metadata", "object"); err != nil {
		return nil, fmt.Errorf("evaluate %s: %w", kind, err)
	}
	defNS := req.DefaultNamespace
	if defNS == "" {
		defNS = "default"
	}
	ref := ObjectRefOf(obj, defNS)
	ctxt := req.Context
	if ctxt == nil {
		ctxt = emptyContext{}
	}
	nsName := ref.Namespace
	if !info.Namespaced {
		nsName = ""
		if kind == "Namespace" {
			nsName = ref.Name
		}
	}
	ns, nsKnown := ctxt.Namespace(nsName)
	if !nsKnown {
		ns = Namespace{Name: nsName}
	}
	if kind == "Namespace" {
		// The object under review is the namespace itself.
		meta, _ := obj["metadata"].(map[string]any)
		ns = Namespace{Name: nsName, Labels: stringMap(meta["labels"]), Annotations: stringMap(meta["annotations"])}
		nsKnown = true
	}
	st := &engine{cfg: e.cfg, ctx: ctxt, eng: e}
	facts, err := st.objectFacts(obj, info, req, ns, nsKnown)
	if err != nil {
		return nil, fmt.Errorf("evaluate %s: %w", ref, err)
	}
	op := req.Operation
	if op == "" {
		op = "CREATE"
	}
	return &prepared{
		ref:       ref,
		info:      info,
		rules:     rules,
		exemptNS:  e.cfg.exemptNamespace(nsName),
		facts:     facts,
		namespace: st.namespaceBinding(ns, nsKnown),
		request:   requestBinding(op, req),
		st:        st,
	}, nil
}

// requestBinding is the $request binding: operation, postInjection and user
// ({known, username, admin}; known is false offline, where nobody is asking).
func requestBinding(op string, req *Request) map[string]any {
	var user map[string]any
	if req.User != nil {
		user = map[string]any{"known": true, "username": req.User.Username, "admin": req.User.Admin}
	} else {
		user = map[string]any{"known": false, "username": "", "admin": false}
	}
	return map[string]any{"operation": operationValue(op), "postInjection": req.PostInjection, "user": user}
}

// operationValue is an operation as a binding value, without boxing a copy of
// a known one.
func operationValue(op string) any {
	switch op {
	case "CREATE":
		return "CREATE"
	case "UPDATE":
		return "UPDATE"
	case "DELETE":
		return "DELETE"
	case "CONNECT":
		return "CONNECT"
	}
	return op
}

func (e *Engine) meshBinding(st *engine) map[string]any {
	p := levelPolicy(st.ctx, e.cfg.RootNamespace, nil)
	name, written := "", ""
	if p != nil {
		_, name = objKey(p)
		written = paMode(p)
	}
	return map[string]any{
		"rootNamespace":  e.cfg.RootNamespace,
		"mtlsMode":       resolveMtls(mtlsPermissive, p),
		"mtlsPolicy":     p != nil,
		"mtlsPolicyName": name,
		"mtlsPolicyMode": written,
	}
}

// bindingsMap returns the bindings by name, as jsonengine.Request.Bindings takes them.
func (e *Engine) bindingsMap(obj Object, _ KindInfo, req *Request) (map[string]any, error) {
	p, err := e.prepare(req)
	if err != nil || p == nil {
		return nil, err
	}
	return map[string]any{"facts": p.facts, "namespace": p.namespace, "request": p.request, "mesh": e.meshBinding(p.st)}, nil
}

// Evaluate implements Evaluator.
//
// A panic inside a rule (JMESPath's contains, for one, panics on some Go
// value types a decoded JSON object never has but a caller's object may) is
// returned as an error naming the object and rule, never as no findings, so
// neither the webhook nor the CLI crashes or allows on it.
func (e *Engine) Evaluate(_ context.Context, req *Request) (findings []Finding, err error) {
	p, err := e.prepare(req)
	if err != nil || p == nil {
		return nil, err
	}
	code := ""
	defer func() {
		if v := recover(); v != nil {
			findings, err = nil, fmt.Errorf("evaluate %s: rule %s: internal error: %v", p.ref, code, v)
		}
	}()
	bindings := e.newRequestScope(p)
	for _, r := range p.rules {
		if r.SkipControlPlane && p.exemptNS || r.AuditOnly && req.Admission {
			continue
		}
		code = r.Code
		var f *Finding
		if r.Custom {
			f = r.evaluateCustom(req.Object, bindings)
		} else if f, err = r.evaluate(req.Object, bindings); err != nil {
			return nil, fmt.Errorf("evaluate %s: rule %s: %w", p.ref, r.Code, err)
		}
		if f != nil {
			f.Object = p.ref
			findings = append(findings, *f)
		}
	}
	return findings, nil
}

// evaluateCustom evaluates a custom rule so that its failure (an error or a
// panic) affects no other rule: it becomes a finding of the custom rule at
// the rule's severity, saying that the rule could not be evaluated and where
// it is. So a custom rule that cannot judge an object is never a silent
// allow, and never hides what the built-in rules found.
func (r *Rule) evaluateCustom(obj Object, bindings binding.Bindings) (f *Finding) {
	defer func() {
		if v := recover(); v != nil {
			f = r.unevaluated(fmt.Errorf("internal error: %v", v))
		}
	}()
	f, err := r.evaluate(obj, bindings)
	if err != nil {
		return r.unevaluated(err)
	}
	return f
}

// unevaluated is the finding of a custom rule that failed on an object.
func (r *Rule) unevaluated(err error) *Finding {
	return &Finding{
		Code:     r.Code,
		Rule:     r.Name,
		Title:    r.Title,
		Severity: r.Severity,
		Message:  fmt.Sprintf("custom rule %s (%s) could not be evaluated on this object: %v", r.Code, r.Source, err),
		Why:      r.Why,
		Remediation: fmt.Sprintf("Ask the platform team to fix the custom rule %s in %s (the object was not judged by it); %s",
			r.Code, r.Source, r.Remediation),
	}
}

// evaluate runs one rule's compiled policy rules and folds their violations
// into at most one finding.
func (r *Rule) evaluate(obj Object, bindings binding.Bindings) (*Finding, error) {
	var msgs, items []string
	var sev Severity // the highest severity among the violating policy rules
	for _, cr := range r.compiled {
		_, failed, err := cr.rule.failing(obj, bindings)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", cr.name, err)
		}
		if len(failed) == 0 {
			continue
		}
		for _, a := range failed {
			m := a.format(obj, bindings)
			if strings.Contains(m, "ERR (") {
				return nil, fmt.Errorf("%s: message template failed: %s", cr.name, m)
			}
			msgs = append(msgs, m)
			items = append(items, a.items(obj, bindings, m)...)
		}
		// A policy rule may state its own severity as feedback (a constant or
		// an expression); otherwise the rule's base severity applies.
		ruleSev := r.Severity
		var feedback map[string]jsonengine.Feedback
		if cr.severity != nil {
			feedback = cr.severity(obj, bindings)
		}
		if fb, ok := feedback["severity"]; ok {
			if fb.Error != nil {
				return nil, fmt.Errorf("%s: feedback severity: %w", cr.name, fb.Error)
			}
			s, _ := fb.Value.(string)
			v, err := ParseSeverity(s)
			if err != nil {
				return nil, fmt.Errorf("%s: feedback severity: %w", cr.name, err)
			}
			ruleSev = v
		}
		sev = max(sev, ruleSev)
	}
	if len(msgs) == 0 {
		return nil, nil
	}
	return &Finding{
		Code:        r.Code,
		Rule:        r.Name,
		Title:       r.Title,
		Severity:    sev,
		Message:     capItems(strings.Join(msgs, "; "), MaxMessageItems),
		Items:       items,
		Why:         r.Why,
		Remediation: r.Remediation,
	}, nil
}

// MaxMessageItems is the most items a finding's message lists: the items of
// a message are separated by "; " (one per offending container, port, rule),
// and an object with thousands of offending items would otherwise make a
// denial of megabytes that the API server returns to the client, logs and
// audits. The rest are counted: "...; and 17480 more". A rule folds all its
// violations into at most one finding, so this bounds a rule's output per
// object.
const MaxMessageItems = 20

// capItems keeps the first n "; "-separated items of msg and counts the rest.
func capItems(msg string, n int) string {
	i, seen := 0, 0
	for {
		j := strings.Index(msg[i:], "; ")
		if j < 0 {
			return msg
		}
		seen++
		if seen == n {
			rest := strings.Count(msg[i+j:], "; ")
			return msg[:i+j] + "; and " + strconv.Itoa(rest) + " more"
		}
		i += j + 2
	}
}
