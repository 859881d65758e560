package rules_test

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/rules"
)

// TestRulesReadOnlyMatchedFields keeps the webhook's "changes-what-rules-read"
// matchCondition sound: for every object in the catalog's fixtures, the rules
// find exactly the same with everything but apiVersion, kind, spec, template,
// subsets, ports, data,
// and the metadata's name, namespace, generateName, labels, annotations,
// deletionTimestamp and creationTimestamp removed. A rule that starts reading another field (status, owner
// references, binaryData) fails here, and the matchCondition in webhook/config.go
// must then compare that field too.
func TestRulesReadOnlyMatchedFields(t *testing.T) {
	_, e := newEngine(t)
	files, err := filepath.Glob("catalog/*/*/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	checked := 0
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		docs, errs := audit.Parse(file, data)
		if len(errs) > 0 {
			t.Fatalf("%s: %v", file, errs[0])
		}
		snap := rules.NewSnapshot()
		for _, d := range docs {
			if d.Object["kind"] != "AdmissionReview" {
				snap.Add(d.Object, "default")
			}
		}
		for _, d := range docs {
			if d.Object["kind"] == "AdmissionReview" {
				continue
			}
			full, err := e.Evaluate(context.Background(), &rules.Request{Object: d.Object, Context: snap})
			if err != nil {
				continue // error fixtures are checked elsewhere
			}
			trimmed, err := e.Evaluate(context.Background(), &rules.Request{Object: trimToMatched(d.Object), Context: snap})
			if err != nil {
				t.Errorf("%s document %d: the trimmed object does not evaluate: %v", file, d.Index, err)
				continue
			}
			if !reflect.DeepEqual(full, trimmed) {
				t.Errorf("%s document %d: the rules read a field outside spec, template, labels and annotations:\nfull:    %v\ntrimmed: %v", file, d.Index, full, trimmed)
			}
			checked++
		}
	}
	if checked < 100 {
		t.Fatalf("only %d objects checked", checked)
	}
}

func trimToMatched(obj map[string]any) map[string]any {
	out := map[string]any{}
	// subsets (Endpoints) and ports (EndpointSlice) are those
	// kinds' spec; data is a ConfigMap's (Istio's mesh configuration).
	for _, k := range []string{"apiVersion", "kind", "spec", "template", "subsets", "ports", "data"} {
		if v, ok := obj[k]; ok {
			out[k] = v
		}
	}
	meta, _ := obj["metadata"].(map[string]any)
	m := map[string]any{}
	// deletionTimestamp is read (a namespace being deleted needs no
	// default-deny) but no UPDATE can change it: only a DELETE sets it.
	// creationTimestamp is read (Istio applies the oldest of competing
	// PeerAuthentications, MESH0007) and is immutable.
	for _, k := range []string{"name", "namespace", "generateName", "labels", "annotations", "deletionTimestamp", "creationTimestamp"} {
		if v, ok := meta[k]; ok {
			m[k] = v
		}
	}
	out["metadata"] = m
	return out
}
