package webhook

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshguard/meshguard/rules"
)

func deploymentWithContainers(ns string, caps map[string][]string) string {
	var cs []any
	for _, name := range []string{"app", "capture"} {
		if c, ok := caps[name]; ok {
			cs = append(cs, map[string]any{
				"name": name, "image": "registry.example.com/web:1",
				"securityContext": map[string]any{"capabilities": map[string]any{"add": c}},
			})
		}
	}
	obj := map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": "web", "namespace": ns},
		"spec": map[string]any{
			"selector": map[string]any{"matchLabels": map[string]any{"app": "web"}},
			"template": map[string]any{
				"metadata": map[string]any{"labels": map[string]any{"app": "web"}},
				"spec":     map[string]any{"containers": cs},
			},
		},
	}
	b, _ := json.Marshal(obj)
	return string(b)
}

func TestGrandfatheringPerItem(t *testing.T) {
	ctx := context.Background()
	v := newTestValidator(t, nil)
	both := deploymentWithContainers("shop", map[string][]string{"app": {"NET_RAW"}, "capture": {"NET_RAW"}})
	cases := []struct {
		name    string
		obj     string
		allowed bool
	}{
		{"dropping NET_RAW from one of two containers is admitted", deploymentWithContainers("shop", map[string][]string{"app": {}, "capture": {"NET_RAW"}}), true},
		{"keeping both grandfathered items is admitted", both, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := v.Handle(ctx, request(admissionv1.Update, "Deployment", "shop", tc.obj, both))
			if resp.Allowed != tc.allowed {
				t.Fatalf("allowed = %v, want %v: %+v", resp.Allowed, tc.allowed, resp.Result)
			}
		})
	}
	t.Run("an item that was not there before is judged in full", func(t *testing.T) {
		one := deploymentWithContainers("shop", map[string][]string{"app": {"NET_RAW"}, "capture": {}})
		resp := v.Handle(ctx, request(admissionv1.Update, "Deployment", "shop", both, one))
		if resp.Allowed || !strings.Contains(resp.Result.Message, `container "capture" adds capability "NET_RAW"`) {
			t.Fatalf("want a denial naming the new item, got %+v", resp.Result)
		}
	})
	for _, tc := range []struct {
		items, before []string
		want          bool
	}{
		{[]string{"a", "b"}, []string{"a", "b"}, true},
		{[]string{"b"}, []string{"a", "b"}, true},
		{[]string{"a", "c"}, []string{"a", "b"}, false},
		{[]string{"a"}, []string{"b"}, false},
		{nil, []string{"a"}, false},
		// An old item whose text holds "; " is one item, not two.
		{[]string{"y"}, []string{"x; y"}, false},
	} {
		if got := itemsWerePresent(tc.items, tc.before); got != tc.want {
			t.Errorf("itemsWerePresent(%q, %q) = %v, want %v", tc.items, tc.before, got, tc.want)
		}
	}
}

func podJSON(labels, annotations map[string]any, extra map[string]any) string {
	obj := map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": "web", "namespace": "shop", "labels": labels, "annotations": annotations},
		"spec":     map[string]any{"containers": []any{map[string]any{"name": "app", "image": "registry.example.com/web:1"}}},
	}
	for k, v := range extra {
		obj[k] = v
	}
	b, _ := json.Marshal(obj)
	return string(b)
}

func TestSubresources(t *testing.T) {
	ctx := context.Background()
	v := newTestValidator(t, nil)
	t.Run("a pods/status patch that adds an ambient opt-out label is judged", func(t *testing.T) {
		snap := rules.NewSnapshot()
		snap.AddNamespace(rules.Namespace{Name: "shop", Labels: map[string]string{"istio.io/dataplane-mode": "ambient"}})
		v := NewValidator(v.evaluator, snap, DefaultPolicy(), nil)
		req := request(admissionv1.Update, "Pod", "shop", podJSON(map[string]any{"app": "web", "istio.io/dataplane-mode": "none"}, nil, nil), podJSON(map[string]any{"app": "web"}, nil, nil))
		req.SubResource = "status"
		resp := v.Handle(ctx, req)
		if resp.Allowed || !strings.Contains(resp.Result.Message, "MESH0111") {
			t.Fatalf("want MESH0111, got %+v", resp.AdmissionResponse)
		}
	})
	t.Run("a kubelet status update of a pod with a Critical finding is admitted when no label or annotation changes", func(t *testing.T) {
		host := map[string]any{"status": map[string]any{"phase": "Running"}}
		bad := podJSON(map[string]any{"app": "web"}, nil, nil)
		var m map[string]any
		_ = json.Unmarshal([]byte(bad), &m)
		m["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)["securityContext"] = map[string]any{"capabilities": map[string]any{"add": []any{"NET_ADMIN"}}}
		b, _ := json.Marshal(m)
		for k, val := range host {
			m[k] = val
		}
		nb, _ := json.Marshal(m)
		req := request(admissionv1.Update, "Pod", "shop", string(nb), string(b))
		req.SubResource = "status"
		if resp := v.Handle(ctx, req); !resp.Allowed {
			t.Fatalf("want allowed, got %+v", resp.Result)
		}
		req.SubResource = ""
		if resp := v.Handle(ctx, req); resp.Allowed {
			t.Fatalf("the same update of the object itself is judged (Critical is never grandfathered), got allowed")
		}
	})
	t.Run("a namespaces/finalize update that sets meshguard's mode label is judged", func(t *testing.T) {
		ns := func(labels map[string]any) string {
			b, _ := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": "shop", "labels": labels}})
			return string(b)
		}
		req := request(admissionv1.Update, "Namespace", "", ns(map[string]any{"istio-injection": "enabled", "meshguard.io/mode": "audit"}), ns(map[string]any{"istio-injection": "enabled"}))
		req.SubResource = "finalize"
		req.Name = "shop"
		resp := v.Handle(ctx, req)
		if resp.Allowed || !strings.Contains(resp.Result.Message, "MESH0106") {
			t.Fatalf("want MESH0106, got %+v", resp.AdmissionResponse)
		}
	})
	t.Run("a Binding that carries a capture annotation is denied with MESH0117", func(t *testing.T) {
		b := `{"apiVersion":"v1","kind":"Binding","metadata":{"name":"web","namespace":"shop","annotations":{"traffic.sidecar.istio.io/excludeOutboundIPRanges":"0.0.0.0/0"}},"target":{"kind":"Node","name":"n1"}}`
		req := request(admissionv1.Create, "Binding", "shop", b, "")
		req.Kind = metav1.GroupVersionKind{Version: "v1", Kind: "Binding"}
		req.Resource = metav1.GroupVersionResource{Version: "v1", Resource: "pods"}
		req.SubResource = "binding"
		resp := v.Handle(ctx, req)
		if resp.Allowed || !strings.Contains(resp.Result.Message, "MESH0117") || !strings.Contains(resp.Result.Message, "traffic.sidecar.istio.io/excludeOutboundIPRanges") {
			t.Fatalf("want MESH0117 naming the annotation, got %+v", resp.AdmissionResponse)
		}
	})
	t.Run("the scale subresource is not judged", func(t *testing.T) {
		req := request(admissionv1.Update, "Scale", "shop", `{"apiVersion":"autoscaling/v1","kind":"Scale","metadata":{"name":"web","namespace":"shop"},"spec":{"replicas":3}}`, "")
		req.SubResource = "scale"
		if resp := v.Handle(ctx, req); !resp.Allowed {
			t.Fatalf("want allowed, got %+v", resp.Result)
		}
	})
}

func TestBeingDeletedComparesWhatRulesRead(t *testing.T) {
	tmpl := func(caps []any, finalizers []any) map[string]any {
		return map[string]any{
			"apiVersion": "v1", "kind": "PodTemplate",
			"metadata": map[string]any{"name": "t", "namespace": "shop", "deletionTimestamp": "2026-12-01T00:00:00Z", "finalizers": finalizers},
			"template": map[string]any{"spec": map[string]any{"containers": []any{map[string]any{"name": "app", "securityContext": map[string]any{"capabilities": map[string]any{"add": caps}}}}}},
		}
	}
	if !beingDeleted(tmpl(nil, nil), tmpl(nil, []any{"example.com/hold"})) {
		t.Errorf("removing a finalizer of a PodTemplate being deleted must take the shortcut")
	}
	if beingDeleted(tmpl([]any{"NET_ADMIN"}, nil), tmpl(nil, []any{"example.com/hold"})) {
		t.Errorf("a PodTemplate being deleted whose template changes must be judged")
	}
	a, b := tmpl(nil, nil), tmpl(nil, nil)
	a["metadata"].(map[string]any)["labels"] = map[string]any{"istio.io/dataplane-mode": "none"}
	if beingDeleted(a, b) {
		t.Errorf("a label change of an object being deleted must be judged")
	}
}
