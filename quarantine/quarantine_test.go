package quarantine

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/meshguard/meshguard/rules"
)

func TestParseTarget(t *testing.T) {
	for _, c := range []struct {
		in, ns, want, err string
	}{
		{"deployment/cart", "shop", "deployment/cart in namespace shop", ""},
		{"deploy/cart", "shop", "deployment/cart in namespace shop", ""},
		{"Deployment.apps/cart", "shop", "deployment/cart in namespace shop", ""},
		{"sts/db", "shop", "statefulset/db in namespace shop", ""},
		{"po/debug", "shop", "pod/debug in namespace shop", ""},
		{"cart", "shop", "", "want KIND/NAME"},
		{"deployment/", "shop", "", "want KIND/NAME"},
		{"job/migrate", "shop", "", "cannot quarantine a job"},
		{"deployment/cart", "", "", "-n/--namespace is required"},
	} {
		got, err := ParseTarget(c.in, c.ns)
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%q: error %v, want one saying %q", c.in, err, c.err)
		case c.err == "" && err != nil:
			t.Errorf("%q: %v", c.in, err)
		case c.err == "" && got.String() != c.want:
			t.Errorf("%q: %s, want %s", c.in, got, c.want)
		}
	}
}

// The ID is a valid label value however long the name.
func TestIDIsALabelValue(t *testing.T) {
	long := Target{Kind: "deployment", Namespace: "shop", Name: strings.Repeat("a", 80) + "-" + strings.Repeat("b", 10)}
	long2 := Target{Kind: "deployment", Namespace: "shop", Name: strings.Repeat("a", 80) + "-" + strings.Repeat("c", 10)}
	if long.ID() == long2.ID() {
		t.Errorf("two long names share the ID %q", long.ID())
	}
	if id := (Target{Kind: "deployment", Name: "cart"}).ID(); id != "deployment-cart" {
		t.Errorf("short ID %q", id)
	}
	for _, tg := range []Target{{Kind: "deployment", Namespace: "shop", Name: "cart"}, long, long2} {
		id := tg.ID()
		if len(id) > 63 {
			t.Errorf("%s: ID %q is %d characters", tg, id, len(id))
		}
		if _, err := labels.Parse(LabelQuarantined + "=" + id); err != nil {
			t.Errorf("%s: ID %q is not a label value: %v", tg, id, err)
		}
	}
}

// The policies select exactly the quarantine label, deny everything, and
// carry what MESH0025/MESH0215 and the default-deny controller look for.
func TestPoliciesSelectTheLabel(t *testing.T) {
	tg := Target{Kind: "deployment", Namespace: "shop", Name: "cart"}
	o := Options{Reason: "beaconing", Actor: "admin"}
	ap := authorizationPolicy(tg, tg.ID(), o)
	if ap.GetName() != "meshguard-quarantine-deployment-cart" || ap.GetLabels()["meshguard.io/managed"] != "true" || ap.GetLabels()[LabelQuarantine] != "deployment-cart" {
		t.Errorf("AuthorizationPolicy metadata: %v %v", ap.GetName(), ap.GetLabels())
	}
	spec := ap.Object["spec"].(map[string]any)
	if spec["action"] != "DENY" || len(spec["rules"].([]any)) != 1 || len(spec["rules"].([]any)[0].(map[string]any)) != 0 {
		t.Errorf("AuthorizationPolicy spec: %v (DENY with one empty rule denies everything; DENY without rules matches nothing)", spec)
	}
	np := networkPolicy(tg, tg.ID(), o)
	sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
	if err != nil || !sel.Matches(labels.Set{LabelQuarantined: "deployment-cart", "app": "cart"}) || sel.Matches(labels.Set{"app": "cart"}) {
		t.Errorf("NetworkPolicy selector %v", np.Spec.PodSelector)
	}
	if len(np.Spec.PolicyTypes) != 2 || len(np.Spec.Ingress) != 0 || len(np.Spec.Egress) != 0 {
		t.Errorf("NetworkPolicy spec must isolate both ways: %+v", np.Spec)
	}
}

// TestPolicyPrefixIsRules keeps the quarantine's policy names among those
// the default-deny preview never calls extra.
func TestPolicyPrefixIsRules(t *testing.T) {
	if PolicyPrefix != rules.NetpolPrefixQuarantine {
		t.Fatalf("PolicyPrefix %q, rules.NetpolPrefixQuarantine %q", PolicyPrefix, rules.NetpolPrefixQuarantine)
	}
}
