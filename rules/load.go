package rules

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strings"

	"github.com/jmespath-community/go-jmespath/pkg/binding"
	"github.com/kyverno/kyverno-json/pkg/apis/policy/v1alpha1"
	"github.com/kyverno/kyverno-json/pkg/core/compilers"
	jsonengine "github.com/kyverno/kyverno-json/pkg/json-engine"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"
)

//go:embed catalog/*/policy.yaml
var embedded embed.FS

// Annotation keys carrying a rule's metadata on its ValidatingPolicy.
const (
	AnnotationCode             = "meshguard.io/code"
	AnnotationTitle            = "meshguard.io/title"
	AnnotationSeverity         = "meshguard.io/severity"
	AnnotationKinds            = "meshguard.io/kinds"
	AnnotationWhy              = "meshguard.io/why"
	AnnotationRemediation      = "meshguard.io/remediation"
	AnnotationSkipControlPlane = "meshguard.io/skip-control-plane"
	// AnnotationIstioVersions says how the rule's semantics depend on the
	// Istio release (shown by `meshguard rules explain`); optional.
	AnnotationIstioVersions = "meshguard.io/istio-versions"
	// AnnotationAuditOnly marks a rule that judges the state of the whole mesh
	// rather than a change to one object (MESH0008: no mesh-wide STRICT
	// PeerAuthentication): `meshguard audit` reports it, admission never
	// evaluates it, since no request is there to reject.
	AnnotationAuditOnly = "meshguard.io/audit-only"
)

// PolicyFile is the name of the policy inside a rule folder.
const PolicyFile = "policy.yaml"

var folderRE = regexp.MustCompile(`^(MESH[0-9]{4})-([a-z0-9]+(-[a-z0-9]+)*)$`)

// Rule is one catalog entry: its metadata and its compiled policy.
type Rule struct {
	// Code is the stable identifier, for example MESH0150.
	Code string
	// Name is the rule's slug, for example priv-net-admin.
	Name string
	// Title is a one-line summary.
	Title string
	// Severity is the base severity; a policy rule may raise or lower it per finding.
	Severity Severity
	// Why says in one sentence why the finding matters.
	Why string
	// Remediation says how to fix it; it ends with a period.
	Remediation string
	// Kinds are the kinds the rule applies to (every served version of each).
	Kinds []schema.GroupKind
	// IstioVersions says how the rule's semantics depend on the Istio
	// release ("" when they do not).
	IstioVersions string
	// SkipControlPlane is true for workload and namespace rules, which do not
	// apply in system and control-plane namespaces.
	SkipControlPlane bool
	// AuditOnly rules are evaluated by audits only, never at admission
	// (Request.Admission); see AnnotationAuditOnly.
	AuditOnly bool
	// Dir is the rule's folder in the catalog; for a custom rule, its
	// metadata.name.
	Dir string
	// Custom is true for a rule loaded from a --rules-dir rather than the
	// embedded catalog.
	Custom bool
	// Source is the file a custom rule was loaded from ("" for built-in rules).
	Source string

	policy   *v1alpha1.ValidatingPolicy
	compiled []compiledRule
}

type compiledRule struct {
	name string
	// rule is the policy rule compiled by compileRule (assert.go).
	rule *policyRule
	// severity evaluates the policy rule's "severity" feedback, compiled apart
	// from the rule so that it runs only for a violation (kyverno-json would
	// evaluate feedback, and allocate its map, on every matched evaluation).
	severity func(any, binding.Bindings) map[string]jsonengine.Feedback
}

// Policy returns the rule's decoded ValidatingPolicy (shared; do not modify).
func (r *Rule) Policy() *v1alpha1.ValidatingPolicy { return r.policy }

// Catalog is a validated, compiled set of rules.
type Catalog struct {
	rules  []*Rule
	byCode map[string]*Rule
}

// Rules returns the rules ordered by code.
func (c *Catalog) Rules() []*Rule { return c.rules }

// Rule returns the rule with the given code.
func (c *Catalog) Rule(code string) (*Rule, bool) {
	r, ok := c.byCode[strings.ToUpper(code)]
	return r, ok
}

// Kinds returns every kind some rule applies to, sorted.
func (c *Catalog) Kinds() []KindInfo {
	seen := map[schema.GroupKind]bool{}
	var out []KindInfo
	for _, r := range c.rules {
		for _, gk := range r.Kinds {
			if !seen[gk] {
				seen[gk] = true
				k, _ := LookupKind(gk)
				out = append(out, k)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Group != out[j].Group {
			return out[i].Group < out[j].Group
		}
		return out[i].Kind < out[j].Kind
	})
	return out
}

// DefaultCatalog loads the catalog embedded in the binary.
func DefaultCatalog() (*Catalog, error) {
	sub, err := fs.Sub(embedded, "catalog")
	if err != nil {
		return nil, err
	}
	return LoadCatalog(sub)
}

// LoadCatalog loads every <folder>/policy.yaml of fsys. Any malformed policy,
// missing metadata or duplicate code is an error naming the file and field.
func LoadCatalog(fsys fs.FS) (*Catalog, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("read catalog: %w", err)
	}
	c := &Catalog{byCode: map[string]*Rule{}}
	for _, ent := range entries {
		if !ent.IsDir() {
			continue
		}
		file := path.Join(ent.Name(), PolicyFile)
		data, err := fs.ReadFile(fsys, file)
		if err != nil {
			return nil, fmt.Errorf("load rule %s: %w", ent.Name(), err)
		}
		r, err := ParseRule(ent.Name(), data)
		if err != nil {
			return nil, fmt.Errorf("load rule %s: %w", file, err)
		}
		if prev, dup := c.byCode[r.Code]; dup {
			return nil, fmt.Errorf("load rule %s: code %s is already used by %s", file, r.Code, prev.Dir)
		}
		c.byCode[r.Code] = r
		c.rules = append(c.rules, r)
	}
	if len(c.rules) == 0 {
		return nil, fmt.Errorf("read catalog: no rule folders found")
	}
	sort.Slice(c.rules, func(i, j int) bool { return c.rules[i].Code < c.rules[j].Code })
	return c, nil
}

// ParseRule decodes, validates and compiles one rule from its folder name and
// policy.yaml content.
func ParseRule(dir string, data []byte) (*Rule, error) {
	m := folderRE.FindStringSubmatch(dir)
	if m == nil {
		return nil, fmt.Errorf("folder name %q: want MESH####-slug (lower-case words joined by dashes)", dir)
	}
	var p v1alpha1.ValidatingPolicy
	if err := yaml.UnmarshalStrict(data, &p); err != nil {
		return nil, fmt.Errorf("decode %s: %w", PolicyFile, err)
	}
	if err := checkPolicyType(&p); err != nil {
		return nil, err
	}
	if p.Name != dir {
		return nil, fmt.Errorf("metadata.name: %q must equal the folder name %q", p.Name, dir)
	}
	r := &Rule{Code: m[1], Name: m[2], Dir: dir}
	if err := compilePolicy(r, &p); err != nil {
		return nil, err
	}
	return r, nil
}

// checkPolicyType rejects a document that is not a kyverno-json ValidatingPolicy.
func checkPolicyType(p *v1alpha1.ValidatingPolicy) error {
	if p.APIVersion != "json.kyverno.io/v1alpha1" || p.Kind != "ValidatingPolicy" {
		return fmt.Errorf("apiVersion/kind: want json.kyverno.io/v1alpha1 ValidatingPolicy, got %q %q", p.APIVersion, p.Kind)
	}
	return nil
}

// compilePolicy validates the policy's metadata against r.Code, fills r's
// metadata and compiles the policy's rules into r.
func compilePolicy(r *Rule, p *v1alpha1.ValidatingPolicy) error {
	r.policy = p
	ann := p.Annotations
	get := func(key string) (string, error) {
		v := strings.TrimSpace(ann[key])
		if v == "" {
			return "", fmt.Errorf("metadata.annotations[%s]: required", key)
		}
		return v, nil
	}
	code, err := get(AnnotationCode)
	if err != nil {
		return err
	}
	if code != r.Code {
		return fmt.Errorf("metadata.annotations[%s]: %q does not match the folder's code %s", AnnotationCode, code, r.Code)
	}
	if r.Title, err = get(AnnotationTitle); err != nil {
		return err
	}
	sev, err := get(AnnotationSeverity)
	if err != nil {
		return err
	}
	if r.Severity, err = ParseSeverity(sev); err != nil {
		return fmt.Errorf("metadata.annotations[%s]: %w", AnnotationSeverity, err)
	}
	if r.Why, err = get(AnnotationWhy); err != nil {
		return err
	}
	if r.Remediation, err = get(AnnotationRemediation); err != nil {
		return err
	}
	if !strings.HasSuffix(r.Remediation, ".") {
		return fmt.Errorf("metadata.annotations[%s]: must be a sentence ending with a period", AnnotationRemediation)
	}
	kinds, err := get(AnnotationKinds)
	if err != nil {
		return err
	}
	if r.Kinds, err = parseKindRefs(kinds); err != nil {
		return fmt.Errorf("metadata.annotations[%s]: %w", AnnotationKinds, err)
	}
	r.IstioVersions = strings.TrimSpace(ann[AnnotationIstioVersions])
	for _, b := range []struct {
		key string
		dst *bool
	}{{AnnotationSkipControlPlane, &r.SkipControlPlane}, {AnnotationAuditOnly, &r.AuditOnly}} {
		key, dst := b.key, b.dst
		switch v := ann[key]; v {
		case "", "false":
		case "true":
			*dst = true
		default:
			return fmt.Errorf("metadata.annotations[%s]: %q is not true or false", key, v)
		}
	}
	for k := range ann {
		if strings.HasPrefix(k, "meshguard.io/") && !knownAnnotations[k] {
			return fmt.Errorf("metadata.annotations[%s]: unknown meshguard annotation", k)
		}
	}
	if len(p.Spec.Rules) == 0 {
		return fmt.Errorf("spec.rules: at least one rule is required")
	}
	comp := withScopeJP(policyCompilers(p))
	names := map[string]bool{}
	for i, vr := range p.Spec.Rules {
		fp := field.NewPath("spec", "rules").Index(i)
		if vr.Name == "" {
			return fmt.Errorf("%s.name: required", fp)
		}
		if names[vr.Name] {
			return fmt.Errorf("%s.name: duplicate rule name %q", fp, vr.Name)
		}
		names[vr.Name] = true
		for j, fb := range vr.Feedback {
			if fb.Name != "severity" {
				return fmt.Errorf("%s.feedback[%d].name: only \"severity\" is supported, got %q", fp, j, fb.Name)
			}
		}
		for j, a := range append(append([]v1alpha1.Assertion{}, vr.Assert.Any...), vr.Assert.All...) {
			if a.Message == nil || strings.TrimSpace(a.Message.Original()) == "" {
				return fmt.Errorf("%s.assert[%d].message: required (it is the finding's text)", fp, j)
			}
		}
		cr := compiledRule{name: vr.Name}
		if len(vr.Feedback) > 0 {
			rc := vr.Compiler
			fc := comp
			if rc != nil {
				fc = fc.WithDefaultCompiler(string(*rc))
			}
			sev, ferr := jsonengine.CompileFeedbacks(fp.Child("feedback"), fc, vr.Feedback...)
			if ferr != nil {
				return fmt.Errorf("compile: %w", ferr)
			}
			cr.severity = sev
			vr.Feedback = nil
		}
		pr, ferr := compileRule(fp, comp, vr)
		if ferr != nil {
			return fmt.Errorf("compile: %w", ferr)
		}
		cr.rule = pr
		r.compiled = append(r.compiled, cr)
	}
	return nil
}

// policyCompilers returns the expression compilers of a policy: JMESPath by
// default, or the policy's own default compiler.
func policyCompilers(p *v1alpha1.ValidatingPolicy) compilers.Compilers {
	comp := compilers.DefaultCompilers.WithDefaultCompiler(compilers.CompilerJP)
	if p.Spec.Compiler != nil {
		comp = comp.WithDefaultCompiler(string(*p.Spec.Compiler))
	}
	return comp
}

var knownAnnotations = map[string]bool{
	AnnotationCode: true, AnnotationTitle: true, AnnotationSeverity: true, AnnotationKinds: true,
	AnnotationWhy: true, AnnotationRemediation: true, AnnotationSkipControlPlane: true, AnnotationIstioVersions: true, AnnotationAuditOnly: true,
}
