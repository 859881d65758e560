package rules_test

import (
	"context"
	"reflect"
	"testing"

	"github.com/meshguard/meshguard/rules"
)

// A finding's items come from the list its message joins, each with the rest
// of the message; a user's "; " inside a host stays inside one item.
func TestFindingItemsAreTheJoinedList(t *testing.T) {
	_, e := newEngine(t)
	dr := func(host string) rules.Object {
		return rules.Object{"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
			"metadata": map[string]any{"name": "r", "namespace": "shop"},
			"spec": map[string]any{"host": host, "trafficPolicy": map[string]any{
				"tls": map[string]any{"mode": "SIMPLE", "insecureSkipVerify": true},
				"portLevelSettings": []any{map[string]any{"port": map[string]any{"number": float64(443)},
					"tls": map[string]any{"mode": "MUTUAL", "insecureSkipVerify": true}}}}}}
	}
	find := func(obj rules.Object) rules.Finding {
		t.Helper()
		fs, err := e.Evaluate(context.Background(), &rules.Request{Object: obj})
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fs {
			if f.Code == "MESH0012" {
				return f
			}
		}
		t.Fatalf("no MESH0012 finding: %+v", fs)
		return rules.Finding{}
	}
	f := find(dr("api.example.com"))
	want := []string{
		`spec.trafficPolicy.tls sets insecureSkipVerify with mode SIMPLE towards host "api.example.com"`,
		`spec.trafficPolicy.portLevelSettings[port 443].tls sets insecureSkipVerify with mode MUTUAL towards host "api.example.com"`,
	}
	if !reflect.DeepEqual(f.Items, want) {
		t.Errorf("items %q\nwant  %q", f.Items, want)
	}
	hostile := find(dr(`x"; spec.trafficPolicy.tls sets insecureSkipVerify with mode SIMPLE towards host "y`))
	if len(hostile.Items) != 2 {
		t.Errorf("a host holding \"; \" must not add items: %q", hostile.Items)
	}
}
