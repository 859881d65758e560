package rules_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/rules"
)

func namespaceObj(labels map[string]any) rules.Object {
	return rules.Object{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": "shop", "labels": labels}}
}

func TestStrandedPods(t *testing.T) {
	_, e := newEngine(t)
	ambient := namespaceObj(map[string]any{"istio.io/dataplane-mode": "ambient"})
	sidecar := namespaceObj(map[string]any{"istio-injection": "enabled"})
	flip := func(snap *rules.Snapshot) []rules.Finding {
		t.Helper()
		fs, err := e.Evaluate(context.Background(), &rules.Request{Object: sidecar, OldObject: ambient, Operation: "UPDATE", Context: snap})
		if err != nil {
			t.Fatal(err)
		}
		var out []rules.Finding
		for _, f := range fs {
			if f.Code == "MESH0107" {
				out = append(out, f)
			}
		}
		return out
	}
	pod := func(name string) rules.Object {
		return rules.Object{"apiVersion": "v1", "kind": "Pod", "metadata": map[string]any{"name": name, "namespace": "shop"},
			"spec": map[string]any{"containers": []any{map[string]any{"name": "app", "image": "registry.example.com/app:1"}}}}
	}
	t.Run("twelve stranded pods name ten and count the rest", func(t *testing.T) {
		snap := rules.NewSnapshot()
		for i := range 12 {
			snap.Add(pod(fmt.Sprintf("p%02d", i)), "shop")
		}
		fs := flip(snap)
		if len(fs) != 1 {
			t.Fatalf("want one MESH0107 finding, got %v", fs)
		}
		if !strings.Contains(fs[0].Message, `pod "p09" (MESH0112`) || strings.Contains(fs[0].Message, `pod "p10"`) || !strings.HasSuffix(fs[0].Message, "; and 2 more pods") {
			t.Errorf("message: %s", fs[0].Message)
		}
	})
	t.Run("a context that does not know the pods finds nothing", func(t *testing.T) {
		if fs := flip(rules.NewSnapshot()); len(fs) != 0 {
			t.Errorf("want no finding, got %v", fs)
		}
	})
	t.Run("pods that are being deleted or finished are not stranded", func(t *testing.T) {
		snap := rules.NewSnapshot()
		gone := pod("gone")
		gone["metadata"].(map[string]any)["deletionTimestamp"] = "2026-12-01T00:00:00Z"
		done := pod("done")
		done["status"] = map[string]any{"phase": "Succeeded"}
		snap.Add(gone, "shop")
		snap.Add(done, "shop")
		if fs := flip(snap); len(fs) != 0 {
			t.Errorf("want no finding, got %v", fs)
		}
	})
}
