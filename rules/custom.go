package rules

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/kyverno/kyverno-json/pkg/apis/policy/v1alpha1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// Custom rules are the platform team's own checks, written in the catalog's
// format (a kyverno-json ValidatingPolicy with meshguard.io/ annotations,
// evaluated over the same facts and $namespace, $mesh and $request bindings as
// the built-in rules) and loaded from directories with --rules-dir. The format
// is documented in rules/catalog/README.md ("Custom rules").
//
// A custom rule's metadata.name is CODE-slug like a built-in rule's folder,
// with a code of its own: two to twelve capital letters, then two to six
// digits (ACME0001, PROD100), never starting with MESH, which is meshguard's.

// customNameRE matches a custom rule's metadata.name: its code, then its slug.
var customNameRE = regexp.MustCompile(`^([A-Z]{2,12}[0-9]{2,6})-([a-z0-9]+(-[a-z0-9]+)*)$`)

// customCodeRE matches a custom rule's code.
var customCodeRE = regexp.MustCompile(`^[A-Z]{2,12}[0-9]{2,6}$`)

// IsCustomCode reports whether code has the form of a custom rule's code
// (not one of meshguard's MESH codes).
func IsCustomCode(code string) bool {
	return customCodeRE.MatchString(code) && !strings.HasPrefix(code, "MESH")
}

// CustomRuleError is a custom rule that could not be loaded: the file (and
// the document within it) and what is wrong, naming the field.
type CustomRuleError struct {
	// File is the file the rule was read from.
	File string
	// Document is the 1-based index of the YAML document in File, 0 when the
	// error concerns the file or directory as a whole.
	Document int
	Err      error
}

func (e *CustomRuleError) Error() string {
	if e.Document > 0 {
		return fmt.Sprintf("custom rule %s: document %d: %v", e.File, e.Document, e.Err)
	}
	return fmt.Sprintf("custom rule %s: %v", e.File, e.Err)
}

func (e *CustomRuleError) Unwrap() error { return e.Err }

// ParseCustomRule decodes, validates and compiles one custom rule. file is
// where it came from (for messages and Rule.Source).
func ParseCustomRule(file string, data []byte) (*Rule, error) {
	var p v1alpha1.ValidatingPolicy
	if err := yaml.UnmarshalStrict(data, &p); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	if err := checkPolicyType(&p); err != nil {
		return nil, err
	}
	m := customNameRE.FindStringSubmatch(p.Name)
	if m == nil {
		if strings.HasPrefix(p.Name, "MESH") {
			return nil, fmt.Errorf("metadata.name: %q: codes starting with MESH are meshguard's own; give the rule a code of your own, such as ACME0001", p.Name)
		}
		return nil, fmt.Errorf("metadata.name: %q: want CODE-slug, where CODE is 2-12 capital letters and 2-6 digits (ACME0001) and slug is lower-case words joined by dashes", p.Name)
	}
	if strings.HasPrefix(m[1], "MESH") {
		return nil, fmt.Errorf("metadata.name: %q: codes starting with MESH are meshguard's own; give the rule a code of your own, such as ACME0001", p.Name)
	}
	r := &Rule{Code: m[1], Name: m[2], Dir: p.Name, Custom: true, Source: file}
	if err := compilePolicy(r, &p); err != nil {
		return nil, err
	}
	return r, nil
}

// LoadCustomRules reads the custom rules of dirs. A directory holds rule files
// (.yaml, .yml or .json, each one or more ValidatingPolicy documents) and/or
// rule folders in the catalog's layout (NAME/policy.yaml, with optional pass/
// and fail/ fixtures that `meshguard rules test` runs). Entries whose names
// start with "." are skipped, so a mounted ConfigMap's ..data links are not
// read twice. Every rule that cannot be loaded is returned as a
// *CustomRuleError and left out; the others load: one broken rule never stops
// the rest, nor the built-in catalog.
func LoadCustomRules(dirs []string) ([]*Rule, []error) {
	var out []*Rule
	var errs []error
	for _, dir := range dirs {
		entries, err := os.ReadDir(dir)
		if err != nil {
			errs = append(errs, &CustomRuleError{File: dir, Err: fmt.Errorf("read rules directory: %w", err)})
			continue
		}
		for _, ent := range entries {
			name := ent.Name()
			if strings.HasPrefix(name, ".") {
				continue
			}
			full := filepath.Join(dir, name)
			st, err := os.Stat(full) // follows a ConfigMap's symbolic links
			if err != nil {
				errs = append(errs, &CustomRuleError{File: full, Err: err})
				continue
			}
			if st.IsDir() {
				policy := filepath.Join(full, PolicyFile)
				if _, err := os.Stat(policy); err != nil {
					if !errors.Is(err, os.ErrNotExist) {
						errs = append(errs, &CustomRuleError{File: policy, Err: err})
					}
					continue // a folder without a policy (fixtures, docs) is not a rule
				}
				rs, es := loadCustomFile(policy)
				for _, r := range rs {
					if r.Dir != name {
						es = append(es, &CustomRuleError{File: policy, Document: 1, Err: fmt.Errorf("metadata.name: %q must equal the folder name %q", r.Dir, name)})
						continue
					}
					out = append(out, r)
				}
				errs = append(errs, es...)
				continue
			}
			switch strings.ToLower(filepath.Ext(name)) {
			case ".yaml", ".yml", ".json":
			default:
				continue
			}
			rs, es := loadCustomFile(full)
			out = append(out, rs...)
			errs = append(errs, es...)
		}
	}
	return out, errs
}

// loadCustomFile parses every document of one rule file.
func loadCustomFile(file string) ([]*Rule, []error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, []error{&CustomRuleError{File: file, Err: err}}
	}
	var out []*Rule
	var errs []error
	rd := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for doc := 1; ; doc++ {
		raw, err := rd.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			errs = append(errs, &CustomRuleError{File: file, Document: doc, Err: err})
			break
		}
		if isEmptyDocument(raw) {
			doc--
			continue
		}
		r, err := ParseCustomRule(file, raw)
		if err != nil {
			errs = append(errs, &CustomRuleError{File: file, Document: doc, Err: err})
			continue
		}
		out = append(out, r)
	}
	return out, errs
}

// isEmptyDocument reports whether a YAML document holds only comments and blank lines.
func isEmptyDocument(raw []byte) bool {
	for _, line := range strings.Split(string(raw), "\n") {
		t := strings.TrimSpace(line)
		if t != "" && !strings.HasPrefix(t, "#") && t != "---" {
			return false
		}
	}
	return true
}

// WithCustomRules returns a catalog of c's rules and the custom ones. A custom
// rule whose code is already taken (by another custom rule) is left out and
// returned as an error naming both files; c is not modified.
func (c *Catalog) WithCustomRules(custom []*Rule) (*Catalog, []error) {
	out := &Catalog{byCode: make(map[string]*Rule, len(c.byCode)+len(custom))}
	for _, r := range c.rules {
		out.byCode[r.Code] = r
		out.rules = append(out.rules, r)
	}
	var errs []error
	for _, r := range custom {
		if prev, dup := out.byCode[r.Code]; dup {
			where := prev.Dir
			if prev.Source != "" {
				where = prev.Source
			}
			errs = append(errs, &CustomRuleError{File: r.Source, Err: fmt.Errorf("metadata.name: code %s is already used by %s", r.Code, where)})
			continue
		}
		out.byCode[r.Code] = r
		out.rules = append(out.rules, r)
	}
	sort.SliceStable(out.rules, func(i, j int) bool {
		if out.rules[i].Custom != out.rules[j].Custom {
			return !out.rules[i].Custom // built-in rules first
		}
		return out.rules[i].Code < out.rules[j].Code
	})
	return out, errs
}

// LoadCatalogWithCustomRules returns the embedded catalog plus the custom
// rules of dirs. The error is non-nil only when the embedded catalog cannot
// be loaded; custom rules that cannot be loaded are returned as errs and left
// out.
func LoadCatalogWithCustomRules(dirs []string) (cat *Catalog, errs []error, err error) {
	cat, err = DefaultCatalog()
	if err != nil || len(dirs) == 0 {
		return cat, nil, err
	}
	custom, errs := LoadCustomRules(dirs)
	cat, dupErrs := cat.WithCustomRules(custom)
	return cat, append(errs, dupErrs...), nil
}
