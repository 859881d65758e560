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

// TestFactsTablesGenerated keeps the facts tables of catalog/README.md that
// are generated from typed facts (make docs) current.
func TestFactsTablesGenerated(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("catalog", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for section, root := range map[string]string{
		"WORKLOAD-FACTS": "WorkloadFacts", "NAMESPACE-FACTS": "NamespaceFacts", "BINDING-FACTS": "BindingFacts",
		"SERVICE-FACTS": "ServiceFacts", "ENDPOINTS-FACTS": "EndpointsFacts", "GATEWAY-FACTS": "GatewayFacts",
		"PEERAUTHENTICATION-FACTS": "PeerAuthenticationFacts", "NETWORKPOLICY-FACTS": "NetworkPolicyFacts",
		"AUTHORIZATIONPOLICY-FACTS": "AuthorizationPolicyFacts", "REQUESTAUTHENTICATION-FACTS": "RequestAuthenticationFacts",
		"DESTINATIONRULE-FACTS": "DestinationRuleFacts", "SERVICEENTRY-FACTS": "ServiceEntryFacts",
		"ENVOYFILTER-FACTS": "EnvoyFilterFacts", "EXTENSION-FACTS": "ExtensionFacts", "CONFIGMAP-FACTS": "ConfigMapFacts",
	} {
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
