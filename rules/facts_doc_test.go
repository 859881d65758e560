package rules

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/meshguard/meshguard/internal/factsdoc"
)

// factsTables are the generated facts sections of catalog/README.md and
// their root structs (the Makefile's FACTS_TABLES).
var factsTables = map[string]string{
	"WORKLOAD-FACTS": "WorkloadFacts", "NAMESPACE-FACTS": "NamespaceFacts", "BINDING-FACTS": "BindingFacts",
	"SERVICE-FACTS": "ServiceFacts", "ENDPOINTS-FACTS": "EndpointsFacts", "GATEWAY-FACTS": "GatewayFacts",
	"PEERAUTHENTICATION-FACTS": "PeerAuthenticationFacts", "NETWORKPOLICY-FACTS": "NetworkPolicyFacts",
	"AUTHORIZATIONPOLICY-FACTS": "AuthorizationPolicyFacts", "REQUESTAUTHENTICATION-FACTS": "RequestAuthenticationFacts",
	"DESTINATIONRULE-FACTS": "DestinationRuleFacts", "SERVICEENTRY-FACTS": "ServiceEntryFacts",
	"ENVOYFILTER-FACTS": "EnvoyFilterFacts", "EXTENSION-FACTS": "ExtensionFacts", "CONFIGMAP-FACTS": "ConfigMapFacts",
}

// TestNoHandWrittenFacts checks that every kind's facts in catalog/README.md
// are a generated table: each **Kind** paragraph of "$facts by kind" holds
// a generated section, and the Makefile generates exactly factsTables.
func TestNoHandWrittenFacts(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("catalog", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(readme)
	i := strings.Index(text, "### `$facts` by kind")
	if i < 0 {
		t.Fatal("catalog/README.md has no \"$facts by kind\" section")
	}
	text = text[i:]
	if j := strings.Index(text[1:], "\n#"); j >= 0 {
		text = text[:j+1]
	}
	kinds := 0
	for _, part := range strings.Split(text, "\n**")[1:] {
		kinds++
		name, _, _ := strings.Cut(part, "**")
		if !strings.Contains(part, "<!-- BEGIN ") {
			t.Errorf("the facts of %s are described by hand: make them a typed struct with a generated table", name)
		}
	}
	if kinds < len(factsTables)-1 {
		t.Errorf("only %d kinds found in \"$facts by kind\"", kinds)
	}
	makefile, err := os.ReadFile(filepath.Join("..", "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?s)\nFACTS_TABLES = (.*?[^\\])\n`).FindStringSubmatch(string(makefile))
	if m == nil {
		t.Fatal("Makefile has no FACTS_TABLES")
	}
	listed := map[string]string{}
	for _, f := range strings.Fields(strings.ReplaceAll(m[1], "\\", " ")) {
		section, root, _ := strings.Cut(f, ":")
		listed[section] = root
	}
	if !reflect.DeepEqual(listed, factsTables) {
		t.Errorf("Makefile FACTS_TABLES %v, want the sections TestFactsTablesGenerated checks %v", listed, factsTables)
	}
}

// TestFactsTablesGenerated keeps the facts tables of catalog/README.md that
// are generated from typed facts (make docs) current.
func TestFactsTablesGenerated(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("catalog", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for section, root := range factsTables {
		begin, end := "<!-- BEGIN "+section+" -->\n", "<!-- END "+section+" -->"
		i := strings.Index(string(readme), begin)
		j := strings.Index(string(readme), end)
		if i < 0 || j < i {
			t.Fatalf("catalog/README.md has no %s section", section)
		}
		want, err := factsdoc.Generate(".", root)
		if err != nil {
			t.Fatal(err)
		}
		if got := string(readme[i+len(begin) : j]); got != want {
			t.Errorf("the %s tables of catalog/README.md are stale: run `make docs`", root)
		}
	}
}

// TestTypedFactsDocumented checks that every typed facts struct writes
// exactly the facts its json tags declare (which the README documents), and
// that the facts the evaluator computes for a Pod and a Deployment are the
// declared ones.
func TestTypedFactsDocumented(t *testing.T) {
	type mapper interface{ Map() map[string]any }
	for _, v := range []mapper{
		&WorkloadFacts{}, &InjectionFacts{}, &AmbientCaptureFacts{}, &InjectTemplatesFacts{}, &SidecarStatusFacts{},
		&HostPathFacts{}, &HostPortFacts{}, &ContainerFacts{}, &CapAddFacts{}, &CaptureFacts{}, &EnvoyPortDeclFacts{},
		&InitArgFacts{}, &ProxyImageOverrideFacts{}, &ProxyCustomizationFacts{},
		&NamespaceFacts{}, &NamespaceNetpolFacts{}, &ServiceFacts{}, &EndpointsFacts{}, &BindingFacts{},
		&GatewayFacts{}, &PeerAuthenticationFacts{}, &NetworkPolicyFacts{}, &AuthorizationPolicyFacts{},
		&RequestAuthenticationFacts{}, &DestinationRuleFacts{}, &ServiceEntryFacts{}, &EnvoyFilterFacts{},
		&ExtensionFacts{}, &ConfigMapFacts{}, &MeshConfigFacts{}, &InjectorFacts{},
	} {
		declared, optional := jsonFields(reflect.TypeOf(v).Elem())
		got := v.Map()
		for k := range got {
			if !declared[k] {
				t.Errorf("%T.Map writes %q, which the struct does not declare (a json tag and a doc comment)", v, k)
			}
		}
		for k := range declared {
			if _, ok := got[k]; !ok && !optional[k] {
				t.Errorf("%T declares %q, which Map does not write", v, k)
			}
		}
	}

	cc, err := NewConfig().compile()
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	e := &engine{cfg: cc, ctx: emptyContext{}}
	declared, _ := jsonFields(reflect.TypeOf(WorkloadFacts{}))
	for _, file := range []string{"pod.yaml", "deployment.yaml"} {
		obj, _ := loadBench(t, file)
		apiVersion, _ := obj["apiVersion"].(string)
		kind, _ := obj["kind"].(string)
		info, ok := LookupKind(schema.GroupKind{Group: apiGroup(apiVersion), Kind: kind})
		if !ok {
			t.Fatalf("%s: kind %s not known", file, kind)
		}
		facts, err := e.objectFacts(obj, info, &Request{Object: obj}, Namespace{Name: "bookinfo"}, true)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		var computed []string
		for k := range facts {
			computed = append(computed, k)
		}
		sort.Strings(computed)
		if len(computed) != len(declared) {
			t.Errorf("%s: computed facts %v, declared %d", file, computed, len(declared))
		}
		for _, k := range computed {
			if !declared[k] {
				t.Errorf("%s: fact %q is computed but not declared in WorkloadFacts", file, k)
			}
		}
	}
}

// jsonFields returns the json names of a struct's exported fields, embedded
// structs flattened, and which of them are omitted when empty.
func jsonFields(typ reflect.Type) (names, optional map[string]bool) {
	names, optional = map[string]bool{}, map[string]bool{}
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		if f.Anonymous {
			n, o := jsonFields(f.Type)
			for k := range n {
				names[k] = true
			}
			for k := range o {
				optional[k] = true
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		names[name] = true
		if strings.Contains(opts, "omitempty") || strings.Contains(opts, "omitzero") {
			optional[name] = true
		}
	}
	return names, optional
}

// TestCatalogReadsDocumentedFacts checks that every $facts.<name> a catalog
// policy reads is documented in catalog/README.md.
func TestCatalogReadsDocumentedFacts(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("catalog", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	policies, err := filepath.Glob(filepath.Join("catalog", "*", "policy.yaml"))
	if err != nil || len(policies) == 0 {
		t.Fatalf("no catalog policies found: %v", err)
	}
	ref := regexp.MustCompile(`\$facts\)?\.([A-Za-z]+)`)
	missing := map[string][]string{}
	for _, p := range policies {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ref.FindAllStringSubmatch(string(data), -1) {
			if !strings.Contains(string(readme), "`"+m[1]+"`") && !strings.Contains(string(readme), "`"+m[1]+"[]`") {
				missing[m[1]] = append(missing[m[1]], filepath.Base(filepath.Dir(p)))
			}
		}
	}
	for k, rules := range missing {
		t.Errorf("$facts.%s is read by %v but not documented in catalog/README.md", k, uniqueSorted(rules))
	}
}

func uniqueSorted(in []string) []string {
	sort.Strings(in)
	out := in[:0]
	for i, s := range in {
		if i == 0 || s != in[i-1] {
			out = append(out, s)
		}
	}
	return out
}
