package webhook

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/meshguard/meshguard/rules"
)

func newTestValidator(t *testing.T, p *Policy) *Validator {
	t.Helper()
	cat, err := rules.DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	ev, err := rules.New(cat, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p == nil {
		p = DefaultPolicy()
	}
	if err := p.Validate(cat); err != nil {
		t.Fatal(err)
	}
	snap := rules.NewSnapshot()
	snap.AddNamespace(rules.Namespace{Name: "shop", Labels: map[string]string{"istio-injection": "enabled"}})
	snap.AddNamespace(rules.Namespace{Name: "relaxed", Labels: map[string]string{"istio-injection": "enabled", LabelMode: "warn"}})
	v := NewValidator(ev, snap, p, nil)
	v.now = func() time.Time { return time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC) }
	return v
}

func deployment(ns string, caps []string, replicas int, annotations map[string]string) string {
	obj := map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": "web", "namespace": ns, "labels": map[string]any{"app": "web"}, "annotations": annotations},
		"spec": map[string]any{
			"replicas": replicas,
			"selector": map[string]any{"matchLabels": map[string]any{"app": "web"}},
			"template": map[string]any{
				"metadata": map[string]any{"labels": map[string]any{"app": "web"}},
				"spec": map[string]any{"containers": []any{map[string]any{
					"name": "app", "image": "registry.example.com/web:1",
					"securityContext": map[string]any{"capabilities": map[string]any{"add": caps}},
				}}},
			},
		},
	}
	b, _ := json.Marshal(obj)
	return string(b)
}

func request(op admissionv1.Operation, kind, ns, obj, old string) admission.Request {
	r := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID:       "0d2f5c3a-0000-4000-8000-000000000001",
		Kind:      metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: kind},
		Operation: op,
		Namespace: ns,
		Name:      "web",
		UserInfo:  authenticationv1.UserInfo{Username: "alice@example.com", Groups: []string{"system:authenticated"}},
		Object:    runtime.RawExtension{Raw: []byte(obj)},
	}}
	if kind == "Namespace" || kind == "Pod" {
		r.Kind.Group = ""
	}
	if old != "" {
		r.OldObject = runtime.RawExtension{Raw: []byte(old)}
	}
	return r
}

func TestValidatorDecisions(t *testing.T) {
	ctx := context.Background()
	t.Run("a Deployment adding NET_ADMIN is denied with the finding and its fix", func(t *testing.T) {
		v := newTestValidator(t, nil)
		resp := v.Handle(ctx, request(admissionv1.Create, "Deployment", "shop", deployment("shop", []string{"NET_ADMIN"}, 1, nil), ""))
		if resp.Allowed || resp.Result.Code != 403 || resp.Result.Reason != metav1.StatusReasonForbidden {
			t.Fatalf("want a Forbidden denial, got %+v", resp.AdmissionResponse)
		}
		for _, want := range []string{"Deployment/shop/web", `MESH0150 priv-net-admin: container "app" adds capability "NET_ADMIN"`, "Fix: Remove NET_ADMIN"} {
			if !strings.Contains(resp.Result.Message, want) {
				t.Errorf("message lacks %q: %s", want, resp.Result.Message)
			}
		}
		if strings.Contains(resp.Result.Message, "\n") {
			t.Errorf("the denial must be one line for kubectl: %q", resp.Result.Message)
		}
		if resp.AuditAnnotations["MESH0150"] == "" {
			t.Errorf("want an audit annotation for MESH0150, got %v", resp.AuditAnnotations)
		}
	})
	t.Run("the root namespace without a mesh-wide PeerAuthentication is admitted: MESH0008 is audit only", func(t *testing.T) {
		v := newTestValidator(t, nil)
		resp := v.Handle(ctx, request(admissionv1.Create, "Namespace", "", `{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"istio-system"}}`, ""))
		if !resp.Allowed || len(resp.Warnings) > 0 || resp.AuditAnnotations["MESH0008"] != "" {
			t.Fatalf("want allowed without MESH0008, got %+v", resp.AdmissionResponse)
		}
	})
	t.Run("a clean Deployment is allowed without warnings", func(t *testing.T) {
		v := newTestValidator(t, nil)
		resp := v.Handle(ctx, request(admissionv1.Create, "Deployment", "shop", deployment("shop", nil, 1, nil), ""))
		if !resp.Allowed || len(resp.Warnings) > 0 {
			t.Fatalf("want allowed, got %+v", resp.AdmissionResponse)
		}
	})
	t.Run("warn mode allows and says what would be denied", func(t *testing.T) {
		v := newTestValidator(t, &Policy{Mode: ModeWarn})
		resp := v.Handle(ctx, request(admissionv1.Create, "Deployment", "shop", deployment("shop", []string{"NET_ADMIN"}, 1, nil), ""))
		if !resp.Allowed || len(resp.Warnings) != 1 || !strings.HasPrefix(resp.Warnings[0], "meshguard would deny: MESH0150") {
			t.Fatalf("want allowed with a would-deny warning, got %+v", resp.AdmissionResponse)
		}
	})
	t.Run("audit mode allows silently and records the finding", func(t *testing.T) {
		v := newTestValidator(t, &Policy{Mode: ModeAudit})
		resp := v.Handle(ctx, request(admissionv1.Create, "Deployment", "shop", deployment("shop", []string{"NET_ADMIN"}, 1, nil), ""))
		if !resp.Allowed || len(resp.Warnings) != 0 || !strings.HasPrefix(resp.AuditAnnotations["MESH0150"], "audit: ") {
			t.Fatalf("want allowed with an audit annotation only, got %+v", resp.AdmissionResponse)
		}
	})
	t.Run("a Medium finding is a warning in enforce mode", func(t *testing.T) {
		v := newTestValidator(t, nil)
		obj := deployment("shop", nil, 1, nil)
		obj = strings.Replace(obj, `"labels":{"app":"web"}},"spec":{"containers"`, `"labels":{"app":"web"},"annotations":{"traffic.sidecar.istio.io/excludeOutboundPorts":"5432"}},"spec":{"containers"`, 1)
		resp := v.Handle(ctx, request(admissionv1.Create, "Deployment", "shop", obj, ""))
		if !resp.Allowed || len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "MESH0125") {
			t.Fatalf("want allowed with a MESH0125 warning, got %+v", resp.AdmissionResponse)
		}
	})
	t.Run("an unrelated update of a grandfathered High violation is allowed", func(t *testing.T) {
		v := newTestValidator(t, nil)
		old := deployment("shop", []string{"NET_RAW"}, 1, nil)
		resp := v.Handle(ctx, request(admissionv1.Update, "Deployment", "shop", deployment("shop", []string{"NET_RAW"}, 3, nil), old))
		if !resp.Allowed || !strings.HasPrefix(resp.AuditAnnotations["MESH0151"], "audit: ") {
			t.Fatalf("want the scale-up allowed and the finding audited, got %+v", resp.AdmissionResponse)
		}
	})
	t.Run("an update that worsens a violation is judged in full", func(t *testing.T) {
		v := newTestValidator(t, nil)
		old := deployment("shop", []string{"NET_RAW"}, 1, nil)
		resp := v.Handle(ctx, request(admissionv1.Update, "Deployment", "shop", deployment("shop", []string{"NET_RAW", "net_raw"}, 1, nil), old))
		if resp.Allowed {
			t.Fatalf("want denied, got %+v", resp.AdmissionResponse)
		}
	})
	t.Run("a Critical violation blocks even unrelated updates", func(t *testing.T) {
		v := newTestValidator(t, nil)
		old := deployment("shop", []string{"NET_ADMIN"}, 1, nil)
		resp := v.Handle(ctx, request(admissionv1.Update, "Deployment", "shop", deployment("shop", []string{"NET_ADMIN"}, 3, nil), old))
		if resp.Allowed {
			t.Fatalf("want denied, got %+v", resp.AdmissionResponse)
		}
	})
	t.Run("an admin exemption allows the object and is recorded", func(t *testing.T) {
		p := &Policy{Exemptions: []Exemption{{Name: "web-net-tuning", Codes: []string{"MESH0150"}, Namespaces: []string{"shop"}, Names: []string{"web"},
			Reason: "vendor appliance, ticket SEC-42", Expires: metav1.NewTime(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC))}}}
		v := newTestValidator(t, p)
		resp := v.Handle(ctx, request(admissionv1.Create, "Deployment", "shop", deployment("shop", []string{"NET_ADMIN"}, 1, nil), ""))
		if !resp.Allowed || !strings.HasPrefix(resp.AuditAnnotations["MESH0150"], "exempt: ") {
			t.Fatalf("want allowed as exempt, got %+v", resp.AdmissionResponse)
		}
	})
	t.Run("an expired exemption stops applying and is reported", func(t *testing.T) {
		p := &Policy{Exemptions: []Exemption{{Name: "old-exception", Codes: []string{"MESH0150"}, Namespaces: []string{"shop"},
			Reason: "migration", Expires: metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))}}}
		v := newTestValidator(t, p)
		resp := v.Handle(ctx, request(admissionv1.Create, "Deployment", "shop", deployment("shop", []string{"NET_ADMIN"}, 1, nil), ""))
		if resp.Allowed || len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], `"old-exception" has expired`) {
			t.Fatalf("want denied with an expiry warning, got %+v", resp.AdmissionResponse)
		}
	})
	t.Run("an object's exemption annotation counts only where the policy allows it, never for Critical", func(t *testing.T) {
		ann := map[string]string{AnnotationExempt: "MESH0151,MESH0150", AnnotationExemptReason: "packet capture appliance"}
		obj := deployment("shop", []string{"NET_RAW"}, 1, ann)
		if resp := newTestValidator(t, nil).Handle(ctx, request(admissionv1.Create, "Deployment", "shop", obj, "")); resp.Allowed {
			t.Fatalf("without the policy's permission the annotation must not count, got %+v", resp.AdmissionResponse)
		}
		v := newTestValidator(t, &Policy{ObjectExemptions: []string{"shop"}})
		if resp := v.Handle(ctx, request(admissionv1.Create, "Deployment", "shop", obj, "")); !resp.Allowed {
			t.Fatalf("with permission the High finding is exempt, got %+v", resp.AdmissionResponse)
		}
		crit := deployment("shop", []string{"NET_ADMIN"}, 1, ann)
		if resp := v.Handle(ctx, request(admissionv1.Create, "Deployment", "shop", crit, "")); resp.Allowed {
			t.Fatalf("a Critical finding cannot be exempted by the object itself, got %+v", resp.AdmissionResponse)
		}
	})
	t.Run("a namespace mode label counts only where allowed and never softens Critical", func(t *testing.T) {
		high := deployment("relaxed", []string{"NET_RAW"}, 1, nil)
		if resp := newTestValidator(t, nil).Handle(ctx, request(admissionv1.Create, "Deployment", "relaxed", high, "")); resp.Allowed {
			t.Fatalf("without permission the label must not count, got %+v", resp.AdmissionResponse)
		}
		v := newTestValidator(t, &Policy{NamespaceModes: []string{"relax*"}})
		if resp := v.Handle(ctx, request(admissionv1.Create, "Deployment", "relaxed", high, "")); !resp.Allowed || len(resp.Warnings) != 1 {
			t.Fatalf("with permission a High finding becomes a warning, got %+v", resp.AdmissionResponse)
		}
		if resp := v.Handle(ctx, request(admissionv1.Create, "Deployment", "relaxed", deployment("relaxed", []string{"NET_ADMIN"}, 1, nil), "")); resp.Allowed {
			t.Fatalf("a Critical finding stays denied, got %+v", resp.AdmissionResponse)
		}
	})
	t.Run("only admins may change meshguard's namespace labels", func(t *testing.T) {
		ns := `{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"shop","labels":{"istio-injection":"enabled","meshguard.io/mode":"audit"}}}`
		old := `{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"shop","labels":{"istio-injection":"enabled"}}}`
		p := &Policy{Admins: Admins{Groups: []string{"platform-admins"}}}
		v := newTestValidator(t, p)
		req := request(admissionv1.Update, "Namespace", "", ns, old)
		if resp := v.Handle(ctx, req); resp.Allowed || !strings.Contains(resp.Result.Message, "MESH0106") {
			t.Fatalf("a non-admin must be denied, got %+v", resp.AdmissionResponse)
		}
		req.UserInfo.Groups = append(req.UserInfo.Groups, "platform-admins")
		if resp := v.Handle(ctx, req); !resp.Allowed {
			t.Fatalf("an admin may, got %+v", resp.AdmissionResponse)
		}
	})
}

func TestValidatorRejectsBadInput(t *testing.T) {
	ctx := context.Background()
	v := newTestValidator(t, nil)
	cases := []struct {
		name string
		req  admission.Request
		code int32
	}{
		{"malformed JSON", request(admissionv1.Create, "Deployment", "shop", `{"apiVersion":`, ""), 400},
		{"an empty object", request(admissionv1.Create, "Deployment", "shop", ``, ""), 400},
		{"a JSON array", request(admissionv1.Create, "Deployment", "shop", `[1,2]`, ""), 400},
		{"a field of the wrong type", request(admissionv1.Create, "Deployment", "shop", `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},"spec":{"template":{"spec":{"containers":"app"}}}}`, ""), 400},
		{"an oversized object", request(admissionv1.Create, "Deployment", "shop", `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","annotations":{"x":"`+strings.Repeat("a", MaxObjectBytes)+`"}}}`, ""), 413},
	}
	for _, tc := range cases {
		t.Run(tc.name+" gets an error response, not an allow", func(t *testing.T) {
			resp := v.Handle(ctx, tc.req)
			if resp.Allowed || resp.Result == nil || resp.Result.Code != tc.code {
				t.Fatalf("want error %d, got %+v", tc.code, resp.AdmissionResponse)
			}
		})
	}
	t.Run("a subresource meshguard does not judge is allowed", func(t *testing.T) {
		req := request(admissionv1.Update, "Deployment", "shop", `{}`, "")
		req.SubResource = "scale"
		if resp := v.Handle(ctx, req); !resp.Allowed {
			t.Fatalf("got %+v", resp.AdmissionResponse)
		}
	})
}

func TestLoadPolicy(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) string {
		p := dir + "/policy.yaml"
		if err := writeFile(p, s); err != nil {
			t.Fatal(err)
		}
		return p
	}
	p, err := LoadPolicy(write("mode: warn\nexemptions:\n- name: a\n  codes: [MESH0150]\n  namespaces: [shop]\n  reason: r\n  expires: \"2027-01-01T00:00:00Z\"\n"))
	if err != nil || p.Mode != ModeWarn || len(p.Exemptions) != 1 || p.Actions["MESH0030"] != ActionWarn {
		t.Fatalf("got %+v, %v", p, err)
	}
	for _, bad := range []struct{ name, yaml, want string }{
		{"an unknown field", "mdoe: warn\n", "mdoe"},
		{"an unknown mode", "mode: off\n", "mode"},
		{"an exemption without a reason", "exemptions:\n- name: a\n  codes: [MESH0150]\n  namespaces: [x]\n  expires: \"2027-01-01T00:00:00Z\"\n", "reason"},
		{"an exemption without an expiry", "exemptions:\n- name: a\n  codes: [MESH0150]\n  namespaces: [x]\n  reason: r\n", "expires"},
		{"an exemption for everything", "exemptions:\n- name: a\n  codes: [\"*\"]\n  reason: r\n  expires: \"2027-01-01T00:00:00Z\"\n", "namespaces, names or selector"},
		{"an exemption whose only narrowing is an empty selector", "exemptions:\n- name: a\n  codes: [\"*\"]\n  selector: {}\n  reason: r\n  expires: \"2027-01-01T00:00:00Z\"\n", "namespaces, names or selector"},
	} {
		t.Run(bad.name+" is rejected", func(t *testing.T) {
			if _, err := LoadPolicy(write(bad.yaml)); err == nil || !strings.Contains(err.Error(), bad.want) {
				t.Fatalf("want an error about %q, got %v", bad.want, err)
			}
		})
	}
	cat, _ := rules.DefaultCatalog()
	if err := (&Policy{Actions: map[string]Action{"MESH9999": ActionWarn}}).Validate(cat); err == nil {
		t.Fatal("an unknown code must be rejected")
	}
}

func writeFile(p, s string) error { return os.WriteFile(p, []byte(s), 0o600) }

func TestWarningsFitAndSayWhyTheyAreWarnings(t *testing.T) {
	long := warning("meshguard: MESH0030 ra-without-authz (High): "+strings.Repeat("requests without a token are accepted ", 10), "MESH0030")
	if len(long) > maxWarning || !strings.HasSuffix(long, "(meshguard rules explain MESH0030)") {
		t.Fatalf("a long warning must fit in %d characters and point at the explanation: %q (%d)", maxWarning, long, len(long))
	}
	// MESH0030 is a warning by the default policy's action, not because a mode
	// softened a denial: it must not say "would deny".
	v := newTestValidator(t, nil)
	ra := `{"apiVersion":"security.istio.io/v1","kind":"RequestAuthentication","metadata":{"name":"jwt","namespace":"shop"},"spec":{"selector":{"matchLabels":{"app":"web"}},"jwtRules":[{"issuer":"https://auth.example.com/"}]}}`
	req := request(admissionv1.Create, "RequestAuthentication", "shop", ra, "")
	req.Kind.Group = "security.istio.io"
	resp := v.Handle(context.Background(), req)
	if !resp.Allowed || len(resp.Warnings) != 1 || !strings.HasPrefix(resp.Warnings[0], "meshguard: MESH0030") {
		t.Fatalf("want a plain MESH0030 warning, got %+v", resp.AdmissionResponse)
	}
}

func TestObjectsBeingDeletedAreNotBlocked(t *testing.T) {
	v := newTestValidator(t, nil)
	old := deployment("shop", []string{"NET_ADMIN"}, 1, nil)
	old = strings.Replace(old, `"metadata":{`, `"metadata":{"finalizers":["example.com/cleanup"],"deletionTimestamp":"2026-11-22T08:00:00Z",`, 1)
	cur := strings.Replace(old, `"finalizers":["example.com/cleanup"],`, ``, 1)
	if resp := v.Handle(context.Background(), request(admissionv1.Update, "Deployment", "shop", cur, old)); !resp.Allowed {
		t.Fatalf("removing the finalizer of a Deployment being deleted must not be blocked by its Critical finding: %+v", resp.AdmissionResponse)
	}
	// A spec change while terminating is still judged.
	worse := strings.Replace(cur, `"replicas":1`, `"replicas":2`, 1)
	if resp := v.Handle(context.Background(), request(admissionv1.Update, "Deployment", "shop", worse, old)); resp.Allowed {
		t.Fatalf("a spec change of an object being deleted is still judged: %+v", resp.AdmissionResponse)
	}
}

// escalatingEvaluator reports the same finding message on the old and the new
// object, but the new one (evaluated with its oldObject) is more severe, as a
// rule whose severity comes from feedback can be.
type escalatingEvaluator struct{}

func (escalatingEvaluator) Evaluate(_ context.Context, req *rules.Request) ([]rules.Finding, error) {
	sev := rules.SeverityHigh
	if req.OldObject == nil {
		sev = rules.SeverityLow
	}
	return []rules.Finding{{Code: "MESH0121", Rule: "r", Severity: sev, Message: "same message"}}, nil
}

func TestGrandfatheringDoesNotHideAnEscalation(t *testing.T) {
	v := NewValidator(escalatingEvaluator{}, rules.NewSnapshot(), DefaultPolicy(), nil)
	obj := deployment("shop", nil, 1, nil)
	resp := v.Handle(context.Background(), request(admissionv1.Update, "Deployment", "shop", obj, obj))
	if resp.Allowed {
		t.Fatalf("a finding escalated from Low to High was grandfathered: %+v", resp.Result)
	}
}

func TestBeingDeletedStillJudgesLabelChanges(t *testing.T) {
	old := rules.Object{"metadata": map[string]any{"deletionTimestamp": "2026-11-22T08:00:00Z", "finalizers": []any{"x"}, "labels": map[string]any{"meshguard.io/managed": "true"}}, "spec": map[string]any{}}
	onlyFinalizer := rules.Object{"metadata": map[string]any{"deletionTimestamp": "2026-11-22T08:00:00Z", "labels": map[string]any{"meshguard.io/managed": "true"}}, "spec": map[string]any{}}
	relabelled := rules.Object{"metadata": map[string]any{"deletionTimestamp": "2026-11-22T08:00:00Z", "finalizers": []any{"x"}}, "spec": map[string]any{}}
	if !beingDeleted(onlyFinalizer, old) {
		t.Error("removing a finalizer from an object being deleted must pass")
	}
	if beingDeleted(relabelled, old) {
		t.Error("removing a label from an object being deleted must still be judged")
	}
}
