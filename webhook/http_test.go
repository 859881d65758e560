package webhook

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
)

// TestServeHTTPSurvivesBadReviews drives the validating handler over TLS on
// 127.0.0.1 with malformed, empty and oversized AdmissionReviews: each gets a
// clear error and the server keeps deciding well-formed reviews.
//
// It runs against the handler `meshguard serve` registers (ReviewHandler) and
// against controller-runtime's admission.Webhook, which it replaces.
func TestServeHTTPSurvivesBadReviews(t *testing.T) {
	for name, h := range map[string]func(*Validator) http.Handler{
		"ReviewHandler":      func(v *Validator) http.Handler { return NewReviewHandler(v) },
		"controller-runtime": func(v *Validator) http.Handler { return &crwebhook.Admission{Handler: v, RecoverPanic: ptrTrue()} },
	} {
		t.Run(name, func(t *testing.T) { testServeHTTPSurvivesBadReviews(t, h(newTestValidator(t, nil))) })
	}
}

func testServeHTTPSurvivesBadReviews(t *testing.T, h http.Handler) {
	srv := httptest.NewUnstartedServer(h)
	srv.StartTLS()
	defer srv.Close()
	client := srv.Client()

	post := func(t *testing.T, body []byte) (int, admissionv1.AdmissionReview, string) {
		t.Helper()
		resp, err := client.Post(srv.URL+ValidatePath, "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var review admissionv1.AdmissionReview
		_ = json.Unmarshal(raw, &review)
		return resp.StatusCode, review, string(raw)
	}
	good := func(t *testing.T) {
		t.Helper()
		req := request(admissionv1.Create, "Deployment", "shop", deployment("shop", []string{"NET_ADMIN"}, 1, nil), "")
		review := admissionv1.AdmissionReview{Request: &req.AdmissionRequest}
		review.APIVersion, review.Kind = "admission.k8s.io/v1", "AdmissionReview"
		body, _ := json.Marshal(review)
		code, out, raw := post(t, body)
		if code != http.StatusOK || out.Response == nil || out.Response.Allowed || out.Response.UID != req.UID ||
			!strings.Contains(out.Response.Result.Message, "MESH0150") {
			t.Fatalf("a well-formed review must still be decided (denied), got %d %s", code, raw)
		}
	}
	good(t)
	for _, tc := range []struct {
		name string
		body []byte
		want string
	}{
		{"malformed JSON", []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":`), ""},
		{"an empty body", nil, "request body is empty"},
		{"a review without a request", []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`), ""},
		{"a review whose object is not an object", []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u1","kind":{"group":"apps","version":"v1","kind":"Deployment"},"operation":"CREATE","object":"nope"}}`), ""},
		{"an oversized review", append(append([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u2","object":{"x":"`), bytes.Repeat([]byte("a"), 8<<20)...), []byte(`"}}}`)...), "too large"},
	} {
		t.Run(tc.name+" gets an error and the server keeps serving", func(t *testing.T) {
			_, out, raw := post(t, tc.body)
			if out.Response == nil || out.Response.Allowed || out.Response.Result == nil || out.Response.Result.Code < 400 {
				t.Fatalf("want an error response, got %s", truncate(raw, 300))
			}
			if tc.want != "" && !strings.Contains(out.Response.Result.Message, tc.want) {
				t.Errorf("want %q in %q", tc.want, out.Response.Result.Message)
			}
			good(t)
		})
	}
}
