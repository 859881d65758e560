package rules

import (
	"reflect"
	"testing"

	"sigs.k8s.io/yaml"
)

func authzPolicy(t *testing.T, doc string) *AuthzPolicy {
	t.Helper()
	var o map[string]any
	if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
		t.Fatal(err)
	}
	p, err := NewAuthzPolicy(o, "shop")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestEvaluateAuthzPrecedence(t *testing.T) {
	web := AuthzCaller{Principal: "cluster.local/ns/shop/sa/web", Namespace: "shop"}
	allowWeb := authzPolicy(t, `{metadata: {name: allow-web}, spec: {rules: [{from: [{source: {principals: ["cluster.local/ns/shop/sa/web"]}}]}]}}`)
	denyWeb := authzPolicy(t, `{metadata: {name: deny-web}, spec: {action: DENY, rules: [{from: [{source: {namespaces: ["shop"]}}]}]}}`)
	custom := authzPolicy(t, `{metadata: {name: ext}, spec: {action: CUSTOM, provider: {name: opa}, rules: [{to: [{operation: {paths: ["/x"]}}]}]}}`)
	audit := authzPolicy(t, `{metadata: {name: audit}, spec: {action: AUDIT, rules: [{}]}}`)
	for _, c := range []struct {
		name     string
		policies []*AuthzPolicy
		caller   AuthzCaller
		want     AuthzVerdict
		byDeny   bool
	}{
		{"no policy allows by default", nil, web, AuthzAllowedByDefault, false},
		{"AUDIT policies do not decide", []*AuthzPolicy{audit}, web, AuthzAllowedByDefault, false},
		{"ALLOW matching the principal", []*AuthzPolicy{allowWeb}, web, AuthzAllowed, false},
		{"ALLOW not matching a plaintext caller denies", []*AuthzPolicy{allowWeb}, AuthzCaller{}, AuthzDenied, false},
		{"DENY beats ALLOW", []*AuthzPolicy{allowWeb, denyWeb}, web, AuthzDenied, true},
		{"CUSTOM on a path makes the edge conditional", []*AuthzPolicy{custom, allowWeb}, web, AuthzConditional, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := EvaluateAuthz(c.policies, c.caller, 8080, false)
			if d.Verdict != c.want || d.ByDeny != c.byDeny {
				t.Fatalf("got %+v, want %s (byDeny %v)", d, c.want, c.byDeny)
			}
		})
	}
	if d := EvaluateAuthz([]*AuthzPolicy{custom}, web, 8080, true); d.Verdict != AuthzAllowedByDefault {
		t.Errorf("ztunnel does not enforce CUSTOM: got %+v", d)
	}
}

// TestAuthzCallerClassifierIsSound: callers of one class get equal decisions.
func TestAuthzCallerClassifierIsSound(t *testing.T) {
	policies := []*AuthzPolicy{
		authzPolicy(t, `{metadata: {name: a}, spec: {rules: [{from: [{source: {principals: ["cluster.local/ns/shop/*"], notNamespaces: ["legacy"]}}]}, {from: [{source: {serviceAccounts: ["ops/admin"]}}], to: [{operation: {paths: ["/admin"]}}]}]}}`),
		authzPolicy(t, `{metadata: {name: d}, spec: {action: DENY, rules: [{when: [{key: source.principal, values: ["*/sa/evil"]}]}]}}`),
	}
	callers := []AuthzCaller{{}}
	for _, ns := range []string{"shop", "legacy", "ops", "other"} {
		for _, sa := range []string{"web", "admin", "evil"} {
			callers = append(callers, AuthzCaller{Principal: "cluster.local/ns/" + ns + "/sa/" + sa, Namespace: ns})
		}
	}
	cl := NewAuthzCallerClassifier(policies)
	byClass := map[uint64]AuthzDecision{}
	classes := map[uint64]bool{}
	for _, c := range callers {
		k, ok := cl.Class(c)
		if !ok {
			t.Fatal("unclassified")
		}
		classes[k] = true
		d := EvaluateAuthz(policies, c, 80, false)
		if prev, seen := byClass[k]; seen && !reflect.DeepEqual(prev, d) {
			t.Errorf("caller %+v: decision %+v differs from its class's %+v", c, d, prev)
		}
		byClass[k] = d
	}
	if len(classes) < 4 {
		t.Errorf("only %d classes: the classifier does not tell callers apart", len(classes))
	}
}
