package graph

import (
	"strings"
	"testing"
)

// TestGraphQuarantinedNode: a workload whose pod template carries
// meshguard.io/quarantined is marked, and only that one.
func TestGraphQuarantinedNode(t *testing.T) {
	objs := readDir(t, "../examples/bookinfo/fixed")
	marked := false
	for _, o := range objs {
		meta, _ := o["metadata"].(map[string]any)
		if o["kind"] != "Deployment" || meta["name"] != "reviews-v1" {
			continue
		}
		tm := o["spec"].(map[string]any)["template"].(map[string]any)["metadata"].(map[string]any)
		tm["labels"].(map[string]any)[LabelQuarantined] = "deployment-reviews-v1"
		marked = true
	}
	if !marked {
		t.Fatal("examples/bookinfo/fixed has no Deployment reviews-v1")
	}
	g := compute(t, objs, Options{})
	found := false
	for _, n := range g.Nodes {
		switch {
		case n.ID == reviews:
			found = true
			if n.Quarantined != "deployment-reviews-v1" || !strings.Contains(strings.Join(n.Notes, " "), "quarantined") {
				t.Errorf("reviews: quarantined %q, notes %v", n.Quarantined, n.Notes)
			}
		case n.Quarantined != "":
			t.Errorf("%s marked quarantined", n.ID)
		}
	}
	if !found {
		t.Fatalf("no node %s", reviews)
	}
}
