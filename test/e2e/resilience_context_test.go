package e2e_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"

	"github.com/meshguard/meshguard/test/e2e/framework"
)

// The Istio security API's discovery document and the AuthorizationPolicy
// list, as meshguard's client requests them.
const (
	istioDiscoveryPath = "/apis/security.istio.io/v1"
	authzListPath      = "/apis/security.istio.io/v1/authorizationpolicies"
)

// requestAuthenticationJSON is a namespace-wide RequestAuthentication, which
// MESH0030 judges against the AuthorizationPolicies of its namespace (and
// the root namespace): meshguard can decide it only with that context.
func requestAuthenticationJSON(ns string) string {
	return fmt.Sprintf(`{"apiVersion":"security.istio.io/v1","kind":"RequestAuthentication","metadata":{"name":"jwt","namespace":%q},
"spec":{"jwtRules":[{"issuer":"https://accounts.example.com","jwksUri":"https://accounts.example.com/jwks.json"}]}}`, ns)
}

// denyWithoutTokenYAML is the AuthorizationPolicy that makes the token
// mandatory in a namespace (MESH0030's pass case).
func denyWithoutTokenYAML(ns string) string {
	return fmt.Sprintf(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-without-token, namespace: %s}
spec:
  action: DENY
  rules:
  - from:
    - source:
        notRequestPrincipals: ["*"]
`, ns)
}

func (r *resilient) reviewRA(t *testing.T, ns string) *admissionv1.AdmissionResponse {
	t.Helper()
	return r.review(t, "security.istio.io", "v1", "RequestAuthentication", "requestauthentications", requestAuthenticationJSON(ns))
}

// hasFinding reports whether a response carries a finding of the code,
// denied or warned.
func hasFinding(resp *admissionv1.AdmissionResponse, code string) bool {
	text := strings.Join(resp.Warnings, "\n")
	if resp.Result != nil {
		text += resp.Result.Message
	}
	return strings.Contains(text, code)
}

// contextError reports whether a response is meshguard's "cannot decide now"
// error saying want.
func contextError(resp *admissionv1.AdmissionResponse, want string) bool {
	return !resp.Allowed && resp.Result != nil && resp.Result.Code == http.StatusServiceUnavailable &&
		strings.Contains(resp.Result.Message, "meshguard cannot decide this request now") && strings.Contains(resp.Result.Message, want)
}

// TestResilienceContextDiscoveryFailsAtStart starts meshguard while the Istio
// API's discovery fails (503): it must not decide that Istio is not
// installed. Readiness stays false with the reason, the failures are counted
// and logged and retried, and a request whose rule needs the Istio policies
// is answered with an error rather than judged on an empty context. Once
// discovery answers, meshguard turns ready and the rules see the policies.
func TestResilienceContextDiscoveryFailsAtStart(t *testing.T) {
	env := framework.Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const (
		withPolicy    = "e2e-res-disc-api"
		withoutPolicy = "e2e-res-disc-open"
	)
	mustKubectl(t, ctx, env, namespaceYAML(withPolicy, nil)+"---\n"+namespaceYAML(withoutPolicy, nil)+"---\n"+denyWithoutTokenYAML(withPolicy), "apply", "-f", "-")

	certs, err := framework.WriteServingCerts(filepath.Join(t.TempDir(), "certs"))
	if err != nil {
		t.Fatal(err)
	}
	f := newFaults(istioDiscoveryPath)
	r := startResilient(t, f.config(env.Config), certs.Dir, certs.Pool, 200*time.Millisecond)

	// Not ready, with the discovery failure as the reason; retried.
	r.waitHealth(t, "/readyz/context-caches", http.StatusInternalServerError, "whether the Istio security API is served is not known yet")
	r.waitHealth(t, "/readyz/context-caches", http.StatusInternalServerError, "the server is currently unable to handle the request")
	r.waitMetric(t, "meshguard_context_errors_total", map[string]string{"kind": "discovery"}, "at least 2 (retried)", func(v float64) bool { return v >= 2 })
	if p := r.get("/readyz"); p.code != http.StatusInternalServerError || !strings.Contains(p.body, "[-]context-caches failed") {
		t.Errorf("/readyz must fail on the context: %s", p)
	}
	if v := scrapeMetric(t, r.metricsPort, "meshguard_cache_synced", nil); v != 0 {
		t.Errorf("meshguard_cache_synced = %v while the Istio context is unknown", v)
	}
	// The webhook already serves (files mode): the request is an error, not
	// a MESH0030 denial on an empty policy list.
	if resp := r.reviewRA(t, withPolicy); !contextError(resp, "read AuthorizationPolicy from the cache") {
		t.Fatalf("while discovery fails, a RequestAuthentication must get meshguard's error, got allowed=%v %+v %v", resp.Allowed, resp.Result, resp.Warnings)
	}
	if log, _ := os.ReadFile(r.logPath); !bytes.Contains(log, []byte("context read failed")) || !bytes.Contains(log, []byte(`"kind":"discovery"`)) {
		t.Errorf("the discovery failure is not logged:\n%s", tail(r.logPath, 20))
	}
	if f.hits.Load() == 0 {
		t.Fatal("no discovery request met the fault")
	}

	// Discovery recovers: ready, and the rules see the policies.
	f.clear()
	r.waitHealth(t, "/readyz", http.StatusOK, "")
	r.waitMetric(t, "meshguard_istio_security_api_served", nil, "1", func(v float64) bool { return v == 1 })
	if v := scrapeMetric(t, r.metricsPort, "meshguard_cache_synced", nil); v != 1 {
		t.Errorf("meshguard_cache_synced = %v once ready", v)
	}
	if resp := r.reviewRA(t, withPolicy); !resp.Allowed || hasFinding(resp, "MESH0030") {
		t.Errorf("with the namespace's DENY policy read, the RequestAuthentication must pass: %+v %v", resp.Result, resp.Warnings)
	}
	if resp := r.reviewRA(t, withoutPolicy); !hasFinding(resp, "MESH0030") {
		t.Errorf("without a policy requiring a token, MESH0030 must be found: %+v %v", resp.Result, resp.Warnings)
	}
}

// TestResilienceContextIstioCRDsInstalledLater runs meshguard against a
// control plane of its own that starts without Istio's CRDs. meshguard is
// ready with an empty Istio context; when the CRDs are installed it picks
// them up without a restart, is not ready until the new caches have synced
// (held here by failing the AuthorizationPolicy list, which is counted and
// answered with errors), and then judges with the policies. When the CRDs
// are deleted, the context is empty again.
func TestResilienceContextIstioCRDsInstalledLater(t *testing.T) {
	framework.Shared(t) // skips (or fails) like every e2e test when the control plane is not built
	env, err := framework.Start(framework.Options{NoIstioCRDs: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Error(err)
		}
	})
	t.Logf("second control plane (no Istio CRDs) started in %s", env.StartupTime.Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const ns = "e2e-res-crd"

	certs, err := framework.WriteServingCerts(filepath.Join(t.TempDir(), "certs"))
	if err != nil {
		t.Fatal(err)
	}
	f := newFaults(authzListPath)
	r := startResilient(t, f.config(env.Config), certs.Dir, certs.Pool, 200*time.Millisecond)

	// No Istio API: ready, the Istio context is empty (MESH0030 finds no policy).
	r.waitHealth(t, "/readyz", http.StatusOK, "")
	if v := scrapeMetric(t, r.metricsPort, "meshguard_istio_security_api_served", nil); v != 0 {
		t.Errorf("meshguard_istio_security_api_served = %v without the CRDs", v)
	}
	if resp := r.reviewRA(t, ns); !hasFinding(resp, "MESH0030") {
		t.Errorf("without Istio policies MESH0030 must be found: %+v %v", resp.Result, resp.Warnings)
	}

	// Install the CRDs and a policy that makes the token mandatory.
	crds, err := framework.IstioCRDPath(env.Root)
	if err != nil {
		t.Fatal(err)
	}
	mustKubectl(t, ctx, env, "", "apply", "--server-side", "-f", crds)
	mustKubectl(t, ctx, env, "", "wait", "--for=condition=Established", "--timeout=60s",
		"crd/authorizationpolicies.security.istio.io", "crd/peerauthentications.security.istio.io")
	mustKubectl(t, ctx, env, namespaceYAML(ns, nil)+"---\n"+denyWithoutTokenYAML(ns), "apply", "-f", "-")

	// Picked up, but the AuthorizationPolicy list fails: not ready, counted,
	// and the request that needs the policies is an error.
	r.waitHealth(t, "/readyz/context-caches", http.StatusInternalServerError, "the Istio policy caches have not synced yet")
	r.waitMetric(t, "meshguard_context_errors_total", map[string]string{"kind": "AuthorizationPolicy"}, "at least 1", func(v float64) bool { return v >= 1 })
	if resp := r.reviewRA(t, ns); !contextError(resp, "have not synced yet") {
		t.Fatalf("while the AuthorizationPolicy cache cannot sync, a RequestAuthentication must get meshguard's error, got allowed=%v %+v %v", resp.Allowed, resp.Result, resp.Warnings)
	}
	if f.hits.Load() == 0 {
		t.Fatal("no AuthorizationPolicy list met the fault")
	}

	// The list recovers: the caches sync, meshguard is ready and sees the policy.
	f.clear()
	r.waitHealth(t, "/readyz", http.StatusOK, "")
	r.waitMetric(t, "meshguard_istio_security_api_served", nil, "1", func(v float64) bool { return v == 1 })
	if resp := r.reviewRA(t, ns); !resp.Allowed || hasFinding(resp, "MESH0030") {
		t.Errorf("with the DENY policy read, the RequestAuthentication must pass: %+v %v", resp.Result, resp.Warnings)
	}
	if log, _ := os.ReadFile(r.logPath); !bytes.Contains(log, []byte("Istio policy caches synced")) {
		t.Errorf("the pick-up is not logged:\n%s", tail(r.logPath, 20))
	}

	// The CRDs go: the informers are removed and the Istio context is empty again.
	mustKubectl(t, ctx, env, "", "delete", "--timeout=90s", "crd/authorizationpolicies.security.istio.io", "crd/peerauthentications.security.istio.io")
	r.waitMetric(t, "meshguard_istio_security_api_served", nil, "0", func(v float64) bool { return v == 0 })
	r.waitHealth(t, "/readyz", http.StatusOK, "")
	if resp := r.reviewRA(t, ns); !hasFinding(resp, "MESH0030") {
		t.Errorf("with the Istio API gone MESH0030 must be found again: %+v %v", resp.Result, resp.Warnings)
	}
}
