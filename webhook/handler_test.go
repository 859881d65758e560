package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	"sigs.k8s.io/yaml"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/rules"
)

// equivalenceCase is one AdmissionReview body and the context it is decided in.
type equivalenceCase struct {
	name string
	body []byte
	snap *rules.Snapshot
	// decodeError marks bodies that neither handler can decode: only the
	// outcome (an error, its code) must agree, not the decoder's wording.
	decodeError bool
}

func baseSnapshot() *rules.Snapshot {
	snap := rules.NewSnapshot()
	snap.AddNamespace(rules.Namespace{Name: "shop", Labels: map[string]string{"istio-injection": "enabled"}})
	snap.AddNamespace(rules.Namespace{Name: "bookinfo", Labels: map[string]string{"istio-injection": "enabled"}})
	snap.AddNamespace(rules.Namespace{Name: "relaxed", Labels: map[string]string{"istio-injection": "enabled", LabelMode: "warn"}})
	snap.Add(rules.Object{"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
		"metadata": map[string]any{"name": "default", "namespace": "istio-system"},
		"spec":     map[string]any{"mtls": map[string]any{"mode": "STRICT"}}}, "default")
	return snap
}

// managedFields is what the API server keeps in every object's metadata.
var managedFields = []any{map[string]any{
	"manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": "v1", "time": "2026-11-22T10:00:00Z",
	"fieldsType": "FieldsV1", "fieldsV1": map[string]any{"f:metadata": map[string]any{"f:labels": map[string]any{".": map[string]any{}, "f:app": map[string]any{}}}},
}}

func withManagedFields(obj map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range obj {
		out[k] = v
	}
	meta := map[string]any{}
	if m, ok := obj["metadata"].(map[string]any); ok {
		for k, v := range m {
			meta[k] = v
		}
	}
	meta["managedFields"] = managedFields
	out["metadata"] = meta
	return out
}

// reviewOf wraps an object in an AdmissionReview as the API server sends it.
func reviewOf(t testing.TB, apiVersion string, op admissionv1.Operation, obj, old map[string]any, user string, groups ...string) []byte {
	t.Helper()
	src := obj
	if src == nil {
		src = old
	}
	av, _ := src["apiVersion"].(string)
	kind, _ := src["kind"].(string)
	gv, _ := schema.ParseGroupVersion(av)
	meta, _ := src["metadata"].(map[string]any)
	ns, _ := meta["namespace"].(string)
	if ns == "" && kind != "Namespace" {
		if info, ok := rules.LookupKind(gv.WithKind(kind).GroupKind()); !ok || info.Namespaced {
			ns = "shop"
		}
	}
	name, _ := meta["name"].(string)
	req := map[string]any{
		"uid":       "7c1e0f6a-0000-4000-8000-" + fmt.Sprintf("%012d", len(name)+len(kind)),
		"kind":      map[string]any{"group": gv.Group, "version": gv.Version, "kind": kind},
		"resource":  map[string]any{"group": gv.Group, "version": gv.Version, "resource": strings.ToLower(kind) + "s"},
		"name":      name,
		"namespace": ns,
		"operation": string(op),
		"userInfo":  map[string]any{"username": user, "groups": groups},
		"dryRun":    false,
		"options":   map[string]any{"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
	}
	if obj != nil {
		req["object"] = obj
	}
	if old != nil {
		req["oldObject"] = old
	}
	b, err := json.Marshal(map[string]any{"apiVersion": apiVersion, "kind": "AdmissionReview", "request": req})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readDocs(t testing.TB, file string) []audit.Document {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	docs, errs := audit.Parse(file, data)
	if len(errs) > 0 {
		t.Fatalf("%s: %v", file, errs[0])
	}
	return docs
}

// equivalenceCases are the reviews both handlers must decide identically:
// every AdmissionReview among the catalog's fixtures; every other fixture
// object, the bench objects and the example (e2e) manifests as CREATE, UPDATE
// (unchanged, so grandfathered), DELETE and with managedFields; and edge cases
// of the JSON itself.
func equivalenceCases(t testing.TB) []equivalenceCase {
	t.Helper()
	var cases []equivalenceCase
	var objects []struct {
		name string
		obj  map[string]any
		snap *rules.Snapshot
	}
	fixtures, _ := filepath.Glob("../rules/catalog/*/*/*.yaml")
	for _, f := range fixtures {
		docs := readDocs(t, f)
		snap := baseSnapshot()
		for _, d := range docs {
			if d.Object["kind"] != "AdmissionReview" {
				snap.Add(d.Object, "default")
			}
		}
		for _, d := range docs {
			name := fmt.Sprintf("%s#%d", strings.TrimPrefix(f, "../rules/catalog/"), d.Index)
			if d.Object["kind"] == "AdmissionReview" {
				b, err := json.Marshal(d.Object)
				if err != nil {
					t.Fatal(err)
				}
				cases = append(cases, equivalenceCase{name: name, body: b, snap: snap})
				continue
			}
			objects = append(objects, struct {
				name string
				obj  map[string]any
				snap *rules.Snapshot
			}{name, d.Object, snap})
		}
	}
	more, _ := filepath.Glob("../rules/testdata/bench/*.yaml")
	examples, _ := filepath.Glob("../examples/*/*/*.yaml")
	for _, f := range append(more, examples...) {
		for _, d := range readDocs(t, f) {
			objects = append(objects, struct {
				name string
				obj  map[string]any
				snap *rules.Snapshot
			}{fmt.Sprintf("%s#%d", strings.TrimPrefix(f, "../"), d.Index), d.Object, baseSnapshot()})
		}
	}
	for _, o := range objects {
		mf := withManagedFields(o.obj)
		for _, c := range []struct {
			suffix   string
			op       admissionv1.Operation
			obj, old map[string]any
			version  string
		}{
			{"CREATE", admissionv1.Create, o.obj, nil, "admission.k8s.io/v1"},
			{"CREATE with managedFields", admissionv1.Create, mf, nil, "admission.k8s.io/v1"},
			{"CREATE v1beta1", admissionv1.Create, o.obj, nil, "admission.k8s.io/v1beta1"},
			{"UPDATE unchanged with managedFields", admissionv1.Update, mf, o.obj, "admission.k8s.io/v1"},
			{"DELETE", admissionv1.Delete, nil, mf, "admission.k8s.io/v1"},
		} {
			cases = append(cases, equivalenceCase{
				name: o.name + " " + c.suffix, snap: o.snap,
				body: reviewOf(t, c.version, c.op, c.obj, c.old, "alice@example.com", "system:authenticated"),
			})
		}
	}
	for _, e := range []struct {
		name, body  string
		decodeError bool
	}{
		{"escapes and numbers", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u\u00e9","kind":{"group":"apps","version":"v1","kind":"Deployment"},"namespace":"shop","operation":"CREATE","userInfo":{"username":"al\"ice","extra":{"k":["v"]}},"object":{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"w\ud83d\ude00\ud800x","namespace":"shop","labels":{"a\/b":"\u0041\n"}},"spec":{"replicas":1.0,"x":[-0,1e3,1.5E-3,123456789012345678,-12,[],{}],"template":{"spec":{"containers":[{"name":"app","image":"i","securityContext":{"capabilities":{"add":["NET_ADMIN"]}}}]}}}}}}`, false},
		{"duplicate keys keep the last", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"d","kind":{"group":"apps","version":"v1","kind":"Deployment"},"namespace":"shop","operation":"CREATE","object":{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"a","name":"b","managedFields":[1],"managedFields":null},"metadata":{"name":"c","namespace":"shop"},"spec":{"template":{"metadata":{"managedFields":[]},"spec":{"containers":[{"name":"app","image":"i","securityContext":{"privileged":true}}]}}}}}}`, false},
		{"a number out of range", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"n","kind":{"group":"apps","version":"v1","kind":"Deployment"},"operation":"CREATE","object":{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"a"},"spec":{"replicas":1e999}}}}`, true},
		{"bad JSON inside managedFields", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"m","kind":{"group":"apps","version":"v1","kind":"Deployment"},"operation":"CREATE","object":{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"a","managedFields":[{"x":tru}]}}}}`, true},
		{"no object", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"o","kind":{"group":"apps","version":"v1","kind":"Deployment"},"operation":"CREATE"}}`, false},
		{"a null object", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"o","operation":"CREATE","object":null}}`, false},
		{"an array object", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"o","operation":"CREATE","object":[1]}}`, false},
		{"a DELETE without oldObject", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"o","operation":"DELETE"}}`, false},
		{"a subresource", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"s","subResource":"status","operation":"UPDATE","object":{}}}`, false},
		{"an object without kind", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"k","operation":"CREATE","object":{"metadata":{}}}}`, false},
		{"metadata of the wrong type", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"k","operation":"CREATE","object":{"apiVersion":"apps/v1","kind":"Deployment","metadata":"x"}}}`, false},
		{"no request", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`, false},
		{"no apiVersion and kind", `{"request":{"uid":"x","operation":"DELETE"}}`, false},
		{"trailing garbage", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"} x`, true},
		{"a uid of the wrong type", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":5}}`, true},
		{"truncated", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"x","object":{"a":`, true},
		{"not an object", `[1,2]`, true},
		{"another kind", `{"apiVersion":"v1","kind":"Pod"}`, true},
	} {
		cases = append(cases, equivalenceCase{name: e.name, body: []byte(e.body), snap: baseSnapshot(), decodeError: e.decodeError})
	}
	return cases
}

func equivalencePolicy() *Policy {
	p := DefaultPolicy()
	p.NamespaceModes = []string{"relaxed"}
	p.ObjectExemptions = []string{"*"}
	p.Admins.Groups = []string{"meshguard-admins"}
	p.Exemptions = append(p.Exemptions,
		Exemption{Name: "legacy-web", Codes: []string{"MESH0150"}, Namespaces: []string{"legacy"}, Reason: "migration", Expires: metav1.NewTime(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))},
		Exemption{Name: "old", Codes: []string{"*"}, Namespaces: []string{"shop"}, Names: []string{"old-*"}, Reason: "gone", Expires: metav1.NewTime(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC))},
	)
	return p
}

type httpOutcome struct {
	status int
	review admissionv1.AdmissionReview
	raw    string
}

func serve(t testing.TB, h http.Handler, body []byte) httpOutcome {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, ValidatePath, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	out := httpOutcome{status: rec.Code, raw: rec.Body.String()}
	if err := json.Unmarshal(rec.Body.Bytes(), &out.review); err != nil {
		t.Fatalf("undecodable response %q: %v", out.raw, err)
	}
	return out
}

// TestReviewHandlerDecidesLikeControllerRuntime decides every review through
// controller-runtime's admission.Webhook (which the server used before) and
// through ReviewHandler, and requires identical responses: allowed, status
// (code, reason, message), warnings, audit annotations, UID, and the review's
// apiVersion and kind.
func TestReviewHandlerDecidesLikeControllerRuntime(t *testing.T) {
	cat, err := rules.DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	ev, err := rules.New(cat, nil)
	if err != nil {
		t.Fatal(err)
	}
	pol := equivalencePolicy()
	if err := pol.Validate(cat); err != nil {
		t.Fatal(err)
	}
	cases := equivalenceCases(t)
	stats := map[string]int{}
	for _, c := range cases {
		v := NewValidator(ev, c.snap, pol, nil)
		v.now = func() time.Time { return time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC) }
		old := serve(t, &crwebhook.Admission{Handler: v, RecoverPanic: ptrTrue()}, c.body)
		neu := serve(t, NewReviewHandler(v), c.body)
		if old.status != neu.status {
			t.Errorf("%s: HTTP status %d (controller-runtime) vs %d", c.name, old.status, neu.status)
		}
		o, n := old.review.Response, neu.review.Response
		if o == nil || n == nil {
			t.Fatalf("%s: a response is missing:\n%s\n%s", c.name, old.raw, neu.raw)
		}
		if c.decodeError {
			if o.Allowed || n.Allowed || o.Result.Code != n.Result.Code || o.Result.Code != http.StatusBadRequest {
				t.Errorf("%s: both must be 400 errors:\n%s\n%s", c.name, old.raw, neu.raw)
			}
			stats["error"]++
			continue
		}
		if !reflect.DeepEqual(old.review, neu.review) {
			t.Errorf("%s: responses differ:\ncontroller-runtime: %s\nReviewHandler:      %s", c.name, old.raw, neu.raw)
		}
		switch {
		case o.Result != nil && o.Result.Code >= 400 && o.Result.Code != http.StatusForbidden:
			stats["error"]++
		case !o.Allowed:
			stats["deny"]++
		case len(o.Warnings) > 0:
			stats["warn"]++
		default:
			stats["allow"]++
		}
	}
	keys := make([]string, 0, len(stats))
	for k := range stats {
		keys = append(keys, fmt.Sprintf("%s %d", k, stats[k]))
	}
	sort.Strings(keys)
	t.Logf("%d reviews decided identically: %s", len(cases), strings.Join(keys, ", "))
	if stats["deny"] < 50 || stats["allow"] < 50 || stats["warn"] == 0 {
		t.Errorf("the cases must exercise denials, warnings and allows: %v", stats)
	}
}

// TestJSONReaderMatchesEncodingJSON compares the single-pass decoder with
// encoding/json on every fixture object and on edge cases: the same value
// (apart from metadata.managedFields, which it drops) or both an error.
func TestJSONReaderMatchesEncodingJSON(t *testing.T) {
	inputs := []string{
		`{}`, `{"a":[]}`, `{"a":{}}`, `{"a":null,"b":true,"c":false}`, `{"n":[0,-0,1,-1,1023,1024,-1024,999999999999999,1e2,1E+2,1.25e-3,0.1,12345678901234567890]}`,
		`{"s":"\u00e9\ud83d\ude00\ud800\udc00\ud800x\udc00\\\/\b\f\n\r\t\"","t":"` + "\xff\xfe ok \xe2\x82" + `"}`,
		`{"metadata":{"managedFields":[{"a":1}],"name":"x"},"spec":{"metadata":{"managedFields":[1]}}}`,
		` {"a" : [ 1 , { "b" : [ ] } ] } `,
		`{"a":1e999}`, `{"a":01}`, `{"a":-}`, `{"a":1.}`, `{"a":1e}`, `{"a":tru}`, `{"a":nul}`, `{"a":"x`, `{"a":"\x"}`,
		`{"a":"` + "\x01" + `"}`, `{"a":1,}`, `{,}`, `{"a"}`, `{"a":1}}`, `{"a":[1,]}`, `{"a":[1 2]}`, `[1]`, `"x"`, `1`, ``, ` `,
		`{"metadata":{"managedFields":[{"x":tru}]}}`, `{"metadata":{"managedFields":1e999}}`, `{"a":"\u12"}`,
		strings.Repeat(`{"a":`, 10001) + `1` + strings.Repeat(`}`, 10001),
	}
	files, _ := filepath.Glob("../rules/catalog/*/*/*.yaml")
	bench, _ := filepath.Glob("../rules/testdata/bench/*.yaml")
	for _, f := range append(files, bench...) {
		data, _ := os.ReadFile(f)
		for _, doc := range strings.Split(string(data), "\n---") {
			if j, err := yaml.YAMLToJSON([]byte(doc)); err == nil && len(j) > 2 {
				inputs = append(inputs, string(j))
			}
		}
	}
	for _, in := range inputs {
		checkJSONReader(t, []byte(in))
	}
}

func checkJSONReader(t *testing.T, in []byte) {
	t.Helper()
	var want any
	wantErr := json.Unmarshal(in, &want)
	d := jsonReader{data: in}
	var got any
	var err error
	if d.peek() == '{' {
		var m map[string]any
		m, err = d.object(objectKubernetes)
		got = m
	} else {
		got, err = d.value()
	}
	if err == nil {
		err = d.end()
	}
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("%.200q: error %v, encoding/json: %v", in, err, wantErr)
	}
	if err != nil {
		return
	}
	if m, ok := want.(map[string]any); ok {
		if meta, ok := m["metadata"].(map[string]any); ok {
			delete(meta, "managedFields")
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%.200q:\n got %#v\nwant %#v", in, got, want)
	}
}

// FuzzJSONReader: go test -fuzz FuzzJSONReader ./webhook/
func FuzzJSONReader(f *testing.F) {
	for _, s := range []string{`{"a":[1,"b",{"c":null}],"metadata":{"managedFields":[{}],"n":"\u00e9"}}`, `{"x":1e5}`, `{"s":"\ud800"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) { checkJSONReader(t, in) })
}

// BenchmarkServeHTTP measures a validating decision over HTTP (an in-memory
// request and recorder, no TLS or sockets) through ReviewHandler and through
// controller-runtime's admission.Webhook, for the load test's reviews.
func BenchmarkServeHTTP(b *testing.B) {
	cat, err := rules.DefaultCatalog()
	if err != nil {
		b.Fatal(err)
	}
	ev, err := rules.New(cat, nil)
	if err != nil {
		b.Fatal(err)
	}
	v := NewValidator(ev, baseSnapshot(), DefaultPolicy(), nil)
	handlers := []struct {
		name string
		h    http.Handler
	}{
		{"ReviewHandler", NewReviewHandler(v)},
		{"ControllerRuntime", &crwebhook.Admission{Handler: v, RecoverPanic: ptrTrue()}},
	}
	for _, r := range []struct{ name, file string }{
		{"Pod7KB", "pod.yaml"}, {"Deployment", "deployment.yaml"}, {"PeerAuthentication", "peerauthentication.yaml"},
	} {
		docs := readDocs(b, filepath.Join("..", "rules", "testdata", "bench", r.file))
		obj := docs[0].Object
		if meta, _ := obj["metadata"].(map[string]any); meta != nil && meta["namespace"] == nil {
			meta["namespace"] = "bookinfo"
		}
		body := reviewOf(b, "admission.k8s.io/v1", admissionv1.Create, obj, nil, "alice@example.com", "system:authenticated")
		for _, h := range handlers {
			b.Run(h.name+"/"+r.name, func(b *testing.B) {
				req := httptest.NewRequest(http.MethodPost, ValidatePath, nil)
				req.Header.Set("Content-Type", "application/json")
				rd := bytes.NewReader(body)
				w := &discardWriter{header: http.Header{}}
				b.SetBytes(int64(len(body)))
				b.ReportAllocs()
				for b.Loop() {
					rd.Reset(body)
					req.Body = readCloser{rd}
					req.ContentLength = int64(len(body))
					h.h.ServeHTTP(w, req)
					if w.code != 0 && w.code != http.StatusOK {
						b.Fatalf("status %d", w.code)
					}
				}
			})
		}
	}
}

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }

// discardWriter is a ResponseWriter that keeps nothing, so the benchmark
// measures the handler rather than a recorder.
type discardWriter struct {
	header http.Header
	code   int
}

func (w *discardWriter) Header() http.Header         { return w.header }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }

// TestReviewHandlerRecoversPanics: a panicking handler gets a 500 error
// response with the request's UID, and the handler keeps serving.
func TestReviewHandlerRecoversPanics(t *testing.T) {
	calls := 0
	h := NewReviewHandler(admission.HandlerFunc(func(context.Context, admission.Request) admission.Response {
		calls++
		if calls == 1 {
			panic("boom")
		}
		return admission.Allowed("")
	}))
	body := []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"p1","operation":"CREATE","object":{}}}`)
	out := serve(t, h, body)
	r := out.review.Response
	if out.status != http.StatusOK || r == nil || r.Allowed || r.UID != "p1" || r.Result.Code != http.StatusInternalServerError || !strings.Contains(r.Result.Message, "boom") {
		t.Fatalf("want a 500 error response for p1, got %s", out.raw)
	}
	if out = serve(t, h, body); out.review.Response == nil || !out.review.Response.Allowed || out.review.Response.Result.Code != http.StatusOK {
		t.Fatalf("want the next review allowed, got %s", out.raw)
	}
}

// A duplicate oldObject member whose last value is null keeps the earlier
// object, as RawExtension.UnmarshalJSON (and so controller-runtime) does: a
// DELETE must not turn into "no object to judge".
func TestDecodeReviewNullObjectKeepsDuplicate(t *testing.T) {
	body := []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","operation":"DELETE","oldObject":{"kind":"NetworkPolicy"},"oldObject":null}}`)
	var d jsonReader
	req, _, err := decodeReview(body, &d)
	if err != nil {
		t.Fatal(err)
	}
	var want admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &want); err != nil {
		t.Fatal(err)
	}
	if string(req.OldObject.Raw) != string(want.Request.OldObject.Raw) || len(req.OldObject.Raw) == 0 {
		t.Fatalf("oldObject: got %q, encoding/json %q", req.OldObject.Raw, want.Request.OldObject.Raw)
	}
}
