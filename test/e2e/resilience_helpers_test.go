package e2e_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"

	"github.com/meshguard/meshguard/certs"
	"github.com/meshguard/meshguard/test/e2e/framework"
	"github.com/meshguard/meshguard/webhook"
)

// faults makes chosen GET requests of meshguard's client fail with 503
// Service Unavailable before they reach the API server: the failures a
// discovery or a list can meet on a bad day, injected at the client's
// transport while everything else goes to the real API server.
type faults struct {
	mu    sync.Mutex
	paths map[string]bool // exact request paths that fail
	hits  atomic.Int64
}

func newFaults(paths ...string) *faults {
	f := &faults{paths: map[string]bool{}}
	for _, p := range paths {
		f.paths[p] = true
	}
	return f
}

// clear lets every request through from now on.
func (f *faults) clear() {
	f.mu.Lock()
	f.paths = map[string]bool{}
	f.mu.Unlock()
}

func (f *faults) failing(r *http.Request) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return r.Method == http.MethodGet && f.paths[r.URL.Path]
}

// config returns a copy of cfg whose requests pass through the faults.
func (f *faults) config(cfg *rest.Config) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripperFunc(func(r *http.Request) (*http.Response, error) {
			if !f.failing(r) {
				return rt.RoundTrip(r)
			}
			f.hits.Add(1)
			body := `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"injected by the test: the server is currently unable to handle the request","reason":"ServiceUnavailable","code":503}`
			return &http.Response{
				StatusCode: http.StatusServiceUnavailable, Status: "503 Service Unavailable", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
				Header:  http.Header{"Content-Type": []string{"application/json"}},
				Body:    io.NopCloser(strings.NewReader(body)),
				Request: r, ContentLength: int64(len(body)),
			}, nil
		})
	})
	return c
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// resilient is a `meshguard serve` in this process (production wiring, files
// mode) with its health and metrics endpoints, not yet known to be ready.
type resilient struct {
	srv                           *webhook.Server
	port, healthPort, metricsPort int
	certDir, logPath              string
	pool                          *x509.CertPool
	done                          <-chan error
}

// startResilient starts meshguard against cfg with the certificates in
// certDir (written by the caller) and asks discovery every interval.
func startResilient(t *testing.T, cfg *rest.Config, certDir string, pool *x509.CertPool, interval time.Duration) *resilient {
	t.Helper()
	dir := t.TempDir()
	r := &resilient{certDir: certDir, logPath: filepath.Join(dir, "meshguard.log"), pool: pool}
	for _, p := range []*int{&r.port, &r.healthPort, &r.metricsPort} {
		var err error
		if *p, err = framework.FreeLoopbackPort(); err != nil {
			t.Fatal(err)
		}
	}
	o := webhook.NewOptions()
	o.Host = "127.0.0.1"
	o.Port = r.port
	o.CertDir = certDir
	o.Certificates = &certs.Options{Mode: certs.ModeFiles}
	o.MetricsAddr = fmt.Sprintf("127.0.0.1:%d", r.metricsPort)
	o.HealthAddr = fmt.Sprintf("127.0.0.1:%d", r.healthPort)
	o.GracefulShutdown = 5 * time.Second
	o.IstioDiscoveryInterval = interval
	r.srv, r.done = runInProcess(t, cfg, o, r.logPath)
	return r
}

func (r *resilient) get(path string) probe {
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Get(fmt.Sprintf("http://127.0.0.1:%d%s", r.healthPort, path))
	if err != nil {
		return probe{err: err}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return probe{code: resp.StatusCode, body: string(b)}
}

func (r *resilient) exited(t *testing.T) {
	t.Helper()
	select {
	case err := <-r.done:
		t.Fatalf("meshguard serve exited: %v\n%s", err, tail(r.logPath, 40))
	default:
	}
}

// waitHealth polls a health path until its answer has the code and contains
// want (bounded), failing the test with the last answer otherwise.
func (r *resilient) waitHealth(t *testing.T, path string, code int, want string) {
	t.Helper()
	var last probe
	if !poll(30*time.Second, 50*time.Millisecond, func() bool {
		r.exited(t)
		last = r.get(path)
		return last.code == code && strings.Contains(last.body, want)
	}) {
		t.Fatalf("%s did not answer %d with %q within 30s; last: %s\n%s", path, code, want, last, tail(r.logPath, 30))
	}
}

// waitMetric polls the metrics endpoint until cond holds for the sample
// (bounded) and returns it.
func (r *resilient) waitMetric(t *testing.T, name string, labels map[string]string, what string, cond func(float64) bool) float64 {
	t.Helper()
	var v float64
	if !poll(30*time.Second, 50*time.Millisecond, func() bool {
		r.exited(t)
		v = scrapeMetric(t, r.metricsPort, name, labels)
		return cond(v)
	}) {
		t.Fatalf("%s%v did not become %s within 30s; last %v\n%s", name, labels, what, v, tail(r.logPath, 30))
	}
	return v
}

// review posts an AdmissionReview for a manifest straight to the webhook
// port (verified against the test CA) and returns the response.
func (r *resilient) review(t *testing.T, group, version, kind, resource, manifest string) *admissionv1.AdmissionResponse {
	t.Helper()
	var meta struct {
		Metadata struct{ Name, Namespace string }
	}
	if err := json.Unmarshal([]byte(manifest), &meta); err != nil {
		t.Fatal(err)
	}
	ar := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       "e2e-resilience",
			Kind:      metav1.GroupVersionKind{Group: group, Version: version, Kind: kind},
			Resource:  metav1.GroupVersionResource{Group: group, Version: version, Resource: resource},
			Name:      meta.Metadata.Name,
			Namespace: meta.Metadata.Namespace,
			Operation: admissionv1.Create,
			Object:    runtime.RawExtension{Raw: []byte(manifest)},
		},
	}
	body, err := json.Marshal(ar)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: r.pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Post(fmt.Sprintf("https://127.0.0.1:%d%s", r.port, webhook.ValidatePath), "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("post AdmissionReview: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("AdmissionReview: HTTP %d: %s", resp.StatusCode, b)
	}
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(b, &out); err != nil || out.Response == nil {
		t.Fatalf("decode AdmissionReview: %v: %s", err, b)
	}
	return out.Response
}
