package webhook

import (
	"fmt"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/meshguard/meshguard/rules"
)

// Mode is how findings turn into decisions.
type Mode string

// Modes, strongest first. A weaker mode can only soften actions.
const (
	// ModeEnforce denies Critical and High findings, warns on Medium, audits the rest.
	ModeEnforce Mode = "enforce"
	// ModeWarn turns every denial into a warning.
	ModeWarn Mode = "warn"
	// ModeAudit is the dry run: nothing is denied or warned, every finding is recorded.
	ModeAudit Mode = "audit"
)

func (m Mode) strength() int {
	switch m {
	case ModeEnforce:
		return 3
	case ModeWarn:
		return 2
	case ModeAudit:
		return 1
	}
	return 0
}

// Action is what happens to one finding.
type Action string

// Actions.
const (
	ActionDeny   Action = "deny"
	ActionWarn   Action = "warn"
	ActionAudit  Action = "audit"
	ActionExempt Action = "exempt"
)

func (a Action) strength() int {
	switch a {
	case ActionDeny:
		return 3
	case ActionWarn:
		return 2
	case ActionAudit:
		return 1
	}
	return 0
}

// Label and annotation keys meshguard reads on user objects.
const (
	// LabelMode on a Namespace weakens the mode there (warn or audit), only
	// where Policy.NamespaceModes allows it.
	LabelMode = "meshguard.io/mode"
	// AnnotationExempt on an object lists codes it is exempt from (comma
	// separated), only where Policy.ObjectExemptions allows it.
	AnnotationExempt = "meshguard.io/exempt"
	// AnnotationExemptReason says why; an object exemption without a reason is ignored.
	AnnotationExemptReason = "meshguard.io/exempt-reason"
)

// Policy is the admin configuration of the webhook: modes, actions,
// exemptions and who the admins are. It is read from a YAML file (mounted
// from a ConfigMap by the chart); the zero value enforces everything.
type Policy struct {
	// Mode is the global mode: enforce (default), warn or audit.
	Mode Mode `json:"mode,omitempty"`
	// NamespaceModes lists namespaces (globs, "*" for all) whose meshguard.io/mode
	// label may weaken the mode there. Critical findings stay denied in enforce mode.
	NamespaceModes []string `json:"namespaceModes,omitempty"`
	// ObjectExemptions lists namespaces (globs) where the meshguard.io/exempt
	// annotation of an object counts. Critical findings cannot be exempted this way.
	ObjectExemptions []string `json:"objectExemptions,omitempty"`
	// Actions overrides the action of specific codes (for example MESH0030:
	// warn, because kubectl and GitOps apply a RequestAuthentication and its
	// AuthorizationPolicy in any order).
	Actions map[string]Action `json:"actions,omitempty"`
	// Admins may change meshguard's own labels on namespaces.
	Admins Admins `json:"admins,omitempty"`
	// Exemptions are admin-owned exceptions.
	Exemptions []Exemption `json:"exemptions,omitempty"`
}

// Admins are identities with authority over meshguard's labels.
type Admins struct {
	Users  []string `json:"users,omitempty"`
	Groups []string `json:"groups,omitempty"`
}

// Exemption excuses matching findings. Every field set must match; an unset
// field matches everything, but at least one of Namespaces, Names or Selector
// must be set, and Codes is required.
type Exemption struct {
	// Name identifies the exemption in messages and metrics.
	Name string `json:"name"`
	// Codes are rule codes (MESH0150) or "*" for all.
	Codes []string `json:"codes"`
	// Namespaces are namespace globs.
	Namespaces []string `json:"namespaces,omitempty"`
	// Kinds are object kinds (Deployment).
	Kinds []string `json:"kinds,omitempty"`
	// Names are object name globs.
	Names []string `json:"names,omitempty"`
	// Selector matches the object's labels.
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
	// Reason is required: why the exception is acceptable.
	Reason string `json:"reason"`
	// Expires is required (RFC 3339). Expired exemptions stop applying and are reported.
	Expires metav1.Time `json:"expires"`

	selector labels.Selector
}

// DefaultPolicy returns the built-in policy: enforce, and MESH0030 as a warning
// at admission (its AuthorizationPolicy may arrive later in the same apply).
func DefaultPolicy() *Policy {
	return &Policy{Mode: ModeEnforce, Actions: map[string]Action{"MESH0030": ActionWarn}}
}

// LoadPolicy reads a Policy from a YAML file, strictly (unknown fields are errors).
func LoadPolicy(file string) (*Policy, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("load policy: %w", err)
	}
	p := DefaultPolicy()
	if err := yaml.UnmarshalStrict(data, p); err != nil {
		return nil, fmt.Errorf("load policy %s: %w", file, err)
	}
	if err := p.Validate(nil); err != nil {
		return nil, fmt.Errorf("load policy %s: %w", file, err)
	}
	return p, nil
}

// Validate checks the policy and prepares its selectors. With a catalog, codes
// must exist in it.
func (p *Policy) Validate(cat *rules.Catalog) error {
	switch p.Mode {
	case "":
		p.Mode = ModeEnforce
	case ModeEnforce, ModeWarn, ModeAudit:
	default:
		return fmt.Errorf("mode: %q is not enforce, warn or audit", p.Mode)
	}
	checkCode := func(field, code string) error {
		if code == "*" {
			return nil
		}
		if cat != nil {
			// A custom rule's code is accepted even when the rule is not
			// loaded: a custom rule that fails to load is logged and left
			// out, and must not stop meshguard from starting.
			if _, ok := cat.Rule(code); !ok && !rules.IsCustomCode(code) {
				return fmt.Errorf("%s: unknown rule code %q", field, code)
			}
		}
		return nil
	}
	for code, a := range p.Actions {
		if err := checkCode("actions", code); err != nil {
			return err
		}
		switch a {
		case ActionDeny, ActionWarn, ActionAudit:
		default:
			return fmt.Errorf("actions[%s]: %q is not deny, warn or audit", code, a)
		}
	}
	for _, g := range append(append([]string{}, p.NamespaceModes...), p.ObjectExemptions...) {
		if _, err := path.Match(g, "x"); err != nil {
			return fmt.Errorf("namespace glob %q: %w", g, err)
		}
	}
	names := map[string]bool{}
	for i := range p.Exemptions {
		e := &p.Exemptions[i]
		f := fmt.Sprintf("exemptions[%d]", i)
		if e.Name == "" {
			return fmt.Errorf("%s.name: required", f)
		}
		if names[e.Name] {
			return fmt.Errorf("%s.name: duplicate exemption %q", f, e.Name)
		}
		names[e.Name] = true
		if len(e.Codes) == 0 {
			return fmt.Errorf("%s.codes: required (use [\"*\"] for every rule)", f)
		}
		for _, c := range e.Codes {
			if err := checkCode(f+".codes", c); err != nil {
				return err
			}
		}
		if strings.TrimSpace(e.Reason) == "" {
			return fmt.Errorf("%s.reason: required", f)
		}
		if e.Expires.IsZero() {
			return fmt.Errorf("%s.expires: required (RFC 3339 time)", f)
		}
		// An empty selector ({}) matches every object: it does not narrow.
		emptySelector := e.Selector == nil || len(e.Selector.MatchLabels) == 0 && len(e.Selector.MatchExpressions) == 0
		if len(e.Namespaces) == 0 && len(e.Names) == 0 && emptySelector {
			return fmt.Errorf("%s: set namespaces, names or selector (an exemption for everything is the audit mode)", f)
		}
		for _, g := range append(append([]string{}, e.Namespaces...), e.Names...) {
			if _, err := path.Match(g, "x"); err != nil {
				return fmt.Errorf("%s: glob %q: %w", f, g, err)
			}
		}
		if e.Selector != nil {
			sel, err := metav1.LabelSelectorAsSelector(e.Selector)
			if err != nil {
				return fmt.Errorf("%s.selector: %w", f, err)
			}
			e.selector = sel
		}
	}
	return nil
}

// IsAdmin reports whether a user is an admin.
func (p *Policy) IsAdmin(username string, groups []string) bool {
	if slices.Contains(p.Admins.Users, username) {
		return true
	}
	for _, g := range groups {
		if slices.Contains(p.Admins.Groups, g) {
			return true
		}
	}
	return false
}

func matchAny(globs []string, s string) bool {
	for _, g := range globs {
		if ok, _ := path.Match(g, s); ok {
			return true
		}
	}
	return false
}

// exemptionMatch reports whether e covers a finding on an object.
func (e *Exemption) matches(code string, ref rules.ObjectRef, objLabels map[string]string) bool {
	if !slices.Contains(e.Codes, code) && !slices.Contains(e.Codes, "*") {
		return false
	}
	if len(e.Namespaces) > 0 && !matchAny(e.Namespaces, ref.Namespace) {
		return false
	}
	if len(e.Kinds) > 0 && !slices.Contains(e.Kinds, ref.Kind) {
		return false
	}
	if len(e.Names) > 0 && !matchAny(e.Names, ref.Name) {
		return false
	}
	if e.selector != nil && !e.selector.Matches(labels.Set(objLabels)) {
		return false
	}
	return true
}

// expired reports whether the exemption no longer applies at now.
func (e *Exemption) expired(now time.Time) bool { return !now.Before(e.Expires.Time) }
