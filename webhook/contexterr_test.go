package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/meshguard/meshguard/rules"
)

// fakeReader is a cache that holds namespaces and AuthorizationPolicies and
// fails the kinds named in fail.
type fakeReader struct {
	namespaces map[string]*corev1.Namespace
	policies   []unstructured.Unstructured
	// serviceEntries are listed in every namespace.
	serviceEntries []unstructured.Unstructured
	fail           map[string]error // by kind
}

func (r *fakeReader) Get(_ context.Context, key client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
	switch o := obj.(type) {
	case *corev1.Namespace:
		if err := r.fail["Namespace"]; err != nil {
			return err
		}
		ns, ok := r.namespaces[key.Name]
		if !ok {
			return apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, key.Name)
		}
		*o = *ns
		return nil
	case *corev1.Service:
		if err := r.fail["Service"]; err != nil {
			return err
		}
		return apierrors.NewNotFound(schema.GroupResource{Resource: "services"}, key.Name)
	}
	return errors.New("unexpected Get")
}

func (r *fakeReader) List(_ context.Context, list client.ObjectList, opts ...client.ListOption) error {
	lo := &client.ListOptions{}
	lo.ApplyOptions(opts)
	switch l := list.(type) {
	case *unstructured.UnstructuredList:
		kind := strings.TrimSuffix(l.GetObjectKind().GroupVersionKind().Kind, "List")
		if err := r.fail[kind]; err != nil {
			return err
		}
		if kind == "ServiceEntry" {
			l.Items = append(l.Items, r.serviceEntries...)
		}
		if kind == "AuthorizationPolicy" {
			for _, p := range r.policies {
				if p.GetNamespace() == lo.Namespace {
					l.Items = append(l.Items, p)
				}
			}
		}
		return nil
	case *corev1.PodList:
		return r.fail["Pod"]
	case *admissionregistrationv1.MutatingWebhookConfigurationList:
		return r.fail["MutatingWebhookConfiguration"]
	case *admissionregistrationv1.ValidatingWebhookConfigurationList:
		return r.fail["ValidatingWebhookConfiguration"]
	}
	return errors.New("unexpected List")
}

// fakeInformers are Istio informers whose sync the test releases.
type fakeInformers struct {
	startErr         error
	started, stopped atomic.Int32
	synced           chan struct{}
}

func (f *fakeInformers) start(context.Context) error {
	if f.startErr != nil {
		return f.startErr
	}
	f.started.Add(1)
	return nil
}

func (f *fakeInformers) waitSynced(ctx context.Context) bool {
	select {
	case <-f.synced:
		return true
	case <-ctx.Done():
		return false
	}
}

func (f *fakeInformers) stop(context.Context) error { f.stopped.Add(1); return nil }

func testContextErrors() *contextErrors {
	return newContextErrors(NewMetrics().ContextErrors, logr.Discard())
}

func counterValue(t *testing.T, c *prometheus.CounterVec, kind string) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.WithLabelValues(kind).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// syncedIstio returns an istioAPI whose Istio caches have synced.
func syncedIstio(errs *contextErrors) *istioAPI {
	a := newIstioAPI(nil, &fakeInformers{}, time.Hour, errs, logr.Discard(), nil)
	a.mu.Lock()
	a.set(istioSynced)
	a.mu.Unlock()
	return a
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

const requestAuthentication = `{"apiVersion":"security.istio.io/v1","kind":"RequestAuthentication","metadata":{"name":"jwt","namespace":"api"},
"spec":{"jwtRules":[{"issuer":"https://accounts.example.com","jwksUri":"https://accounts.example.com/jwks.json"}]}}`

func raRequest() admission.Request {
	r := request(admissionv1.Create, "RequestAuthentication", "api", requestAuthentication, "")
	r.Kind = metav1.GroupVersionKind{Group: "security.istio.io", Version: "v1", Kind: "RequestAuthentication"}
	r.Name = "jwt"
	return r
}

func denyWithoutToken() unstructured.Unstructured {
	var u unstructured.Unstructured
	if err := json.Unmarshal([]byte(`{"apiVersion":"security.istio.io/v1","kind":"AuthorizationPolicy","metadata":{"name":"deny-without-token","namespace":"api","creationTimestamp":"2026-01-01T00:00:00Z"},
"spec":{"action":"DENY","rules":[{"from":[{"source":{"notRequestPrincipals":["*"]}}]}]}}`), &u.Object); err != nil {
		panic(err)
	}
	return u
}

func TestContextReadsThatFailAreErrorResponses(t *testing.T) {
	cat, err := rules.DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	ev, err := rules.New(cat, nil)
	if err != nil {
		t.Fatal(err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "api", Labels: map[string]string{"istio-injection": "enabled"}}}
	listErr := errors.New("the cache is gone")
	for _, tc := range []struct {
		name  string
		istio func(*contextErrors) *istioAPI
		fail  map[string]error
		// want: "allow" (no finding), "finding MESHxxxx" (denied or warned, as
		// the default policy says) or "error <text>"; kind is the counted kind.
		want, kind string
	}{
		{"with the policies read, a RequestAuthentication paired with a DENY is allowed", syncedIstio, nil, "allow", ""},
		{"an AuthorizationPolicy list that fails is an error, not an empty list (which would deny)", syncedIstio,
			map[string]error{"AuthorizationPolicy": listErr}, "error read AuthorizationPolicy from the cache: the cache is gone", "AuthorizationPolicy"},
		{"while discovery has not answered, the Istio context is an error", func(e *contextErrors) *istioAPI {
			a := newIstioAPI(nil, &fakeInformers{}, time.Hour, e, logr.Discard(), nil)
			a.discoveryFailed(errors.New("connection refused"))
			return a
		}, nil, "error is not known yet: connection refused", "AuthorizationPolicy"},
		{"while the Istio caches sync, the Istio context is an error", func(e *contextErrors) *istioAPI {
			a := newIstioAPI(nil, &fakeInformers{synced: make(chan struct{})}, time.Hour, e, logr.Discard(), nil)
			a.observe(context.Background(), true)
			return a
		}, nil, "error the Istio policy caches have not synced yet", "AuthorizationPolicy"},
		{"with the Istio API not served there are no policies: MESH0030 decides", func(e *contextErrors) *istioAPI {
			a := newIstioAPI(nil, &fakeInformers{}, time.Hour, e, logr.Discard(), nil)
			a.observe(context.Background(), false)
			return a
		}, nil, "finding MESH0030", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := testContextErrors()
			cc := &cacheContext{
				reader: &fakeReader{namespaces: map[string]*corev1.Namespace{"api": ns}, policies: []unstructured.Unstructured{denyWithoutToken()}, fail: tc.fail},
				errs:   errs,
			}
			cc.istio = tc.istio(errs)
			cc.synced.Store(true)
			v := NewValidator(ev, cc, DefaultPolicy(), nil)
			resp := v.Handle(context.Background(), raRequest())
			verb, text, _ := strings.Cut(tc.want, " ")
			switch verb {
			case "allow":
				if !resp.Allowed || len(resp.Warnings) > 0 {
					t.Fatalf("want allowed without findings, got %+v %v", resp.Result, resp.Warnings)
				}
			case "finding":
				if !strings.Contains(resp.Result.Message+strings.Join(resp.Warnings, "\n"), text) {
					t.Fatalf("want a %s finding, got %+v %v", text, resp.Result, resp.Warnings)
				}
			case "error":
				if resp.Allowed || resp.Result.Code != http.StatusServiceUnavailable || !strings.Contains(resp.Result.Message, text) {
					t.Fatalf("want a 503 error saying %q, got %+v", text, resp.Result)
				}
			}
			if tc.kind != "" {
				if got := counterValue(t, errs.counter, tc.kind); got < 1 {
					t.Errorf("meshguard_context_errors_total{kind=%q} = %v, want at least 1", tc.kind, got)
				}
			}
		})
	}
	t.Run("a namespace that does not exist is no error", func(t *testing.T) {
		errs := testContextErrors()
		cc := &cacheContext{reader: &fakeReader{}, errs: errs}
		view, firstErr := cc.forRequest()
		if _, ok := view.Namespace("new"); ok {
			t.Fatal("a missing namespace must not be known")
		}
		if err := firstErr(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("every failing kind is recorded on the request", func(t *testing.T) {
		for _, kind := range []string{"Namespace", "Pod", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "Service"} {
			errs := testContextErrors()
			fr := &fakeReader{fail: map[string]error{kind: listErr}}
			cc := &cacheContext{reader: fr, errs: errs}
			cc.synced.Store(true)
			view, firstErr := cc.forRequest()
			view.Namespace("api")
			view.(rules.NamespacePods).Pods("api")
			view.(rules.InjectorRevisions).InjectorRevisions()
			// A Service is only read for a webhook that names one.
			if kind == "Service" {
				fr.fail = nil
				cc.reader = &serviceReader{fakeReader: fr, err: listErr}
			}
			view.(rules.WebhookBackends).WebhookBackends("api")
			if err := firstErr(); err == nil || !strings.Contains(err.Error(), "read "+kind+" from the cache") {
				t.Errorf("%s: want the failed read recorded, got %v", kind, err)
			}
			if got := counterValue(t, errs.counter, kind); got < 1 {
				t.Errorf("%s: not counted", kind)
			}
		}
	})
}

// serviceReader lists one validating webhook configuration that names a
// Service, whose Get fails.
type serviceReader struct {
	*fakeReader
	err error
}

func (r *serviceReader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if l, ok := list.(*admissionregistrationv1.ValidatingWebhookConfigurationList); ok {
		l.Items = []admissionregistrationv1.ValidatingWebhookConfiguration{{
			ObjectMeta: metav1.ObjectMeta{Name: "other"},
			Webhooks:   []admissionregistrationv1.ValidatingWebhook{{Name: "x.example.com", ClientConfig: admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{Namespace: "api", Name: "hook"}}}},
		}}
		return nil
	}
	return r.fakeReader.List(ctx, list, opts...)
}

func (r *serviceReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if _, ok := obj.(*corev1.Service); ok {
		return r.err
	}
	return r.fakeReader.Get(ctx, key, obj, opts...)
}

func TestIstioAPIFollowsDiscovery(t *testing.T) {
	errs := testContextErrors()
	inf := &fakeInformers{synced: make(chan struct{})}
	var states []istioState
	var mu sync.Mutex
	a := newIstioAPI(nil, inf, time.Hour, errs, logr.Discard(), func(s istioState) { mu.Lock(); states = append(states, s); mu.Unlock() })
	ctx := context.Background()

	if err := a.check(); err == nil || !strings.Contains(err.Error(), "not known yet") {
		t.Fatalf("before discovery answers, readiness must fail: %v", err)
	}
	a.discoveryFailed(errors.New("503 Service Unavailable"))
	if err := a.check(); err == nil || !strings.Contains(err.Error(), "503 Service Unavailable") {
		t.Fatalf("a discovery error is not taken for \"not installed\": %v", err)
	}
	if got := counterValue(t, errs.counter, "discovery"); got != 1 {
		t.Fatalf("discovery errors counted: %v", got)
	}
	a.observe(ctx, false)
	if served, err := a.readable(); served || err != nil {
		t.Fatalf("not served: want (false, nil), got (%v, %v)", served, err)
	}
	// Discovery errors after an answer keep the answer.
	a.discoveryFailed(errors.New("timeout"))
	if err := a.check(); err != nil {
		t.Fatalf("a later discovery error must keep the last answer: %v", err)
	}
	// The CRDs appear: not ready until the informers sync.
	a.observe(ctx, true)
	if inf.started.Load() != 1 {
		t.Fatal("the informers were not started")
	}
	if err := a.check(); err == nil || !strings.Contains(err.Error(), "not synced") {
		t.Fatalf("readiness must fail until the Istio caches sync: %v", err)
	}
	close(inf.synced)
	waitFor(t, func() bool { return a.check() == nil })
	if served, _ := a.readable(); !served {
		t.Fatal("synced caches must be read")
	}
	a.observe(ctx, true) // no change
	if inf.started.Load() != 1 {
		t.Fatal("informers started twice")
	}
	// The CRDs go: the informers are removed and there are no policies.
	a.observe(ctx, false)
	if inf.stopped.Load() != 1 {
		t.Fatal("the informers were not stopped")
	}
	if served, err := a.readable(); served || err != nil {
		t.Fatalf("removed: want (false, nil), got (%v, %v)", served, err)
	}
	// Informers that cannot start are retried at the next discovery.
	inf.startErr = errors.New("no matches for kind")
	a.observe(ctx, true)
	if served, err := a.readable(); served || err != nil || a.current() != istioAbsent {
		t.Fatalf("a failed start must leave the state: %v %v %v", served, err, a.current())
	}
	mu.Lock()
	defer mu.Unlock()
	want := []istioState{istioAbsent, istioSyncing, istioSynced, istioAbsent}
	if len(states) != len(want) {
		t.Fatalf("state changes: got %v, want %v", states, want)
	}
	for i := range want {
		if states[i] != want[i] {
			t.Fatalf("state changes: got %v, want %v", states, want)
		}
	}
}

func TestIstioAPIRetriesDiscovery(t *testing.T) {
	var calls atomic.Int32
	probe := func(context.Context) (bool, error) {
		if calls.Add(1) <= 3 {
			return false, errors.New("connection refused")
		}
		return true, nil
	}
	inf := &fakeInformers{synced: make(chan struct{})}
	close(inf.synced)
	a := newIstioAPI(probe, inf, time.Hour, testContextErrors(), logr.Discard(), nil)
	a.retry = time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Start(ctx) }()
	// With an hour between discoveries, only the retries can get here.
	waitFor(t, func() bool { return a.check() == nil })
	if served, _ := a.readable(); !served || calls.Load() != 4 {
		t.Fatalf("served %v after %d discoveries", served, calls.Load())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestContextErrorLogIsRateLimited(t *testing.T) {
	var lines []string
	log := funcr.New(func(prefix, args string) { lines = append(lines, args) }, funcr.Options{})
	e := newContextErrors(NewMetrics().ContextErrors, log)
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	e.now = func() time.Time { return now }
	for range 5 {
		e.record("Namespace", errors.New("boom"))
	}
	e.record("Pod", errors.New("boom"))
	now = now.Add(contextErrorLogEvery)
	e.record("Namespace", errors.New("boom"))
	if len(lines) != 3 {
		t.Fatalf("want 3 lines (Namespace, Pod, Namespace after the interval), got %d:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	if !strings.Contains(lines[2], `"notLogged"=4`) {
		t.Errorf("the suppressed count is not logged: %s", lines[2])
	}
	if got := counterValue(t, e.counter, "Namespace"); got != 6 {
		t.Errorf("every error is counted: %v", got)
	}
}

func TestReflectorKind(t *testing.T) {
	for desc, want := range map[string]string{
		"*v1.Namespace": "Namespace",
		"security.istio.io/v1, Kind=PeerAuthentication": "PeerAuthentication",
		"*unstructured.Unstructured":                    "Unstructured",
	} {
		if got := reflectorKind(desc); got != want {
			t.Errorf("reflectorKind(%q) = %q, want %q", desc, got, want)
		}
	}
}

// mwcCountingReader counts the MutatingWebhookConfiguration lists.
type mwcCountingReader struct {
	*fakeReader
	lists int
}

func (r *mwcCountingReader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if _, ok := list.(*admissionregistrationv1.MutatingWebhookConfigurationList); ok {
		r.lists++
	}
	return r.fakeReader.List(ctx, list, opts...)
}

// A request reads the injector configurations once however many rules ask
// for revisions and releases, and a failed read fails every use.
func TestRequestViewReadsInjectorConfigsOnce(t *testing.T) {
	r := &mwcCountingReader{fakeReader: &fakeReader{}}
	cc := &cacheContext{reader: r, errs: testContextErrors()}
	cc.synced.Store(true)
	view, firstErr := cc.forRequest()
	for i := 0; i < 3; i++ {
		view.(rules.InjectorRevisions).InjectorRevisions()
		view.(rules.InjectorVersions).InjectorVersions()
	}
	if r.lists != 1 || firstErr() != nil {
		t.Errorf("%d lists (err %v), want 1 per request", r.lists, firstErr())
	}
	if view2, _ := cc.forRequest(); view2 != nil {
		view2.(rules.InjectorVersions).InjectorVersions()
	}
	if r.lists != 2 {
		t.Errorf("a second request must read again: %d lists", r.lists)
	}

	r = &mwcCountingReader{fakeReader: &fakeReader{fail: map[string]error{"MutatingWebhookConfiguration": errors.New("boom")}}}
	cc = &cacheContext{reader: r, errs: testContextErrors()}
	view, firstErr = cc.forRequest()
	if revs, known := view.(rules.InjectorRevisions).InjectorRevisions(); revs != nil || known {
		t.Errorf("a failed read must not report known revisions: %v %v", revs, known)
	}
	if err := firstErr(); err == nil || !strings.Contains(err.Error(), "MutatingWebhookConfiguration") {
		t.Errorf("failed read not recorded: %v", err)
	}
}

// TestServiceEntryContext checks the DestinationRule's ServiceEntry context:
// read from the networking API's cache, an error response while it cannot be
// read, and an in-mesh alias once it is.
func TestServiceEntryContext(t *testing.T) {
	cat, err := rules.DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	ev, err := rules.New(cat, nil)
	if err != nil {
		t.Fatal(err)
	}
	var se unstructured.Unstructured
	if err := json.Unmarshal([]byte(`{"apiVersion":"networking.istio.io/v1","kind":"ServiceEntry","metadata":{"name":"reviews-alias","namespace":"api"},
"spec":{"hosts":["reviews-alias.example.com"],"resolution":"DNS","endpoints":[{"address":"reviews.api.svc.cluster.local"}]}}`), &se.Object); err != nil {
		t.Fatal(err)
	}
	dr := `{"apiVersion":"networking.istio.io/v1","kind":"DestinationRule","metadata":{"name":"r","namespace":"api"},"spec":{"host":"reviews-alias.example.com","trafficPolicy":{"tls":{"mode":"DISABLE"}}}}`
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "api", Labels: map[string]string{"istio-injection": "enabled"}}}
	for _, tc := range []struct {
		name     string
		net      func(*contextErrors) *istioAPI
		fail     error
		want     string // "allow", "deny <text>" or "error <text>"
		entries  bool
		failKind string
	}{
		{"without the networking API there are no ServiceEntries: the host is outside the mesh", func(*contextErrors) *istioAPI { return nil }, nil, "allow", true, ""},
		{"while its caches sync, the ServiceEntry context is an error", func(e *contextErrors) *istioAPI {
			a := newIstioAPI(nil, &fakeInformers{synced: make(chan struct{})}, time.Hour, e, logr.Discard(), nil)
			a.kinds = istioNetworking
			a.observe(context.Background(), true)
			return a
		}, nil, "error the ServiceEntry and DestinationRule caches have not synced yet", false, "ServiceEntry"},
		{"a ServiceEntry list that fails is an error", syncedIstio, errors.New("the cache is gone"), "error read ServiceEntry from the cache: the cache is gone", false, "ServiceEntry"},
		{"a cached alias of an in-mesh Service makes the host in-mesh", syncedIstio, nil,
			`deny MESH0010 dr-tls-disable-in-mesh: spec.trafficPolicy.tls sets mode DISABLE towards in-mesh host "reviews-alias.example.com" (ServiceEntry api/reviews-alias sends`, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := testContextErrors()
			fr := &fakeReader{namespaces: map[string]*corev1.Namespace{"api": ns}}
			if tc.entries {
				fr.serviceEntries = []unstructured.Unstructured{se}
			}
			if tc.fail != nil {
				fr.fail = map[string]error{"ServiceEntry": tc.fail}
			}
			cc := &cacheContext{reader: fr, errs: errs, istio: syncedIstio(errs), istioNet: tc.net(errs)}
			cc.synced.Store(true)
			r := request(admissionv1.Create, "DestinationRule", "api", dr, "")
			r.Kind = metav1.GroupVersionKind{Group: "networking.istio.io", Version: "v1", Kind: "DestinationRule"}
			resp := NewValidator(ev, cc, DefaultPolicy(), nil).Handle(context.Background(), r)
			verb, text, _ := strings.Cut(tc.want, " ")
			switch verb {
			case "allow":
				if !resp.Allowed {
					t.Fatalf("want allowed, got %+v", resp.Result)
				}
			case "deny":
				if resp.Allowed || !strings.Contains(resp.Result.Message, text) {
					t.Fatalf("want a denial saying %q, got %+v", text, resp.Result)
				}
			case "error":
				if resp.Allowed || resp.Result.Code != http.StatusServiceUnavailable || !strings.Contains(resp.Result.Message, text) {
					t.Fatalf("want a 503 error saying %q, got %+v", text, resp.Result)
				}
			}
			if tc.failKind != "" {
				if got := counterValue(t, errs.counter, tc.failKind); got < 1 {
					t.Errorf("meshguard_context_errors_total{kind=%q} = %v, want at least 1", tc.failKind, got)
				}
			}
		})
	}
}
