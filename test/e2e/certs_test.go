package e2e_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/meshguard/meshguard/certs"
	"github.com/meshguard/meshguard/cmd/meshguard/app"
	"github.com/meshguard/meshguard/rules"
	"github.com/meshguard/meshguard/test/e2e/framework"
	"github.com/meshguard/meshguard/webhook"
)

// certsLabel scopes the webhook configurations of the certificate tests to
// the namespaces carrying it, so they never touch other tests' requests.
const certsLabel = "meshguard.io/e2e-certs"

// rotatorSeq makes the rotator's controller name unique per server (names
// are unique per process in controller-runtime, and -count=N reruns tests).
var rotatorSeq atomic.Int64

// certServer is `meshguard serve` with a certificate mode, started in this
// process with the production wiring and not yet known to be ready.
type certServer struct {
	srv        *webhook.Server
	port       int
	healthPort int
	certDir    string
	logPath    string
	done       <-chan error
}

// startCertServer starts meshguard with the certificate options against cfg
// on the webhook port (0 picks a free one) and stops it when the test ends.
// It does not wait for readiness.
func startCertServer(t *testing.T, cfg *rest.Config, port int, co *certs.Options) *certServer {
	t.Helper()
	dir := t.TempDir()
	s := &certServer{port: port, certDir: filepath.Join(dir, "certs"), logPath: filepath.Join(dir, "meshguard.log")}
	var err error
	for _, p := range []*int{&s.port, &s.healthPort} {
		if *p != 0 {
			continue
		}
		if *p, err = framework.FreeLoopbackPort(); err != nil {
			t.Fatal(err)
		}
	}
	if co.Mode == certs.ModeSelfSigned {
		co.ControllerName = fmt.Sprintf("cert-rotator-e2e-%d", rotatorSeq.Add(1))
	}
	o := webhook.NewOptions()
	o.Host = "127.0.0.1"
	o.Port = s.port
	o.CertDir = s.certDir
	o.MetricsAddr = "0"
	o.HealthAddr = fmt.Sprintf("127.0.0.1:%d", s.healthPort)
	o.GracefulShutdown = 5 * time.Second
	o.Certificates = co
	s.srv, s.done = runInProcess(t, cfg, o, s.logPath)
	return s
}

// probe is one look at the health endpoint.
type probe struct {
	code int
	body string
	err  error
}

func (s *certServer) get(path string) probe {
	hc := &http.Client{Timeout: 2 * time.Second}
	resp, err := hc.Get(fmt.Sprintf("http://127.0.0.1:%d%s", s.healthPort, path))
	if err != nil {
		return probe{err: err}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return probe{code: resp.StatusCode, body: string(b)}
}

func (p probe) String() string {
	if p.err != nil {
		return p.err.Error()
	}
	return fmt.Sprintf("%d %s", p.code, strings.TrimSpace(p.body))
}

// serving reports whether the webhook port accepts TCP connections.
func (s *certServer) serving() bool {
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", s.port), time.Second)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

// exited fails the test if the server stopped.
func (s *certServer) exited(t *testing.T) {
	t.Helper()
	select {
	case err := <-s.done:
		t.Fatalf("meshguard serve exited: %v\n%s", err, tail(s.logPath, 40))
	default:
	}
}

// waitReady polls /readyz until it answers 200 (bounded). On every poll it
// checks that the webhook port serves only once the certificate check passes:
// the port is dialled first, then the check read, so a port that serves
// while the check still fails is a server that served before its certificate.
func (s *certServer) waitReady(t *testing.T, timeout time.Duration) {
	t.Helper()
	var last probe
	if !poll(timeout, 100*time.Millisecond, func() bool {
		s.exited(t)
		served := s.serving()
		if c := s.get("/readyz/certificate"); served && c.code != http.StatusOK {
			t.Fatalf("the webhook port accepts connections while the certificate check fails: %s", c)
		}
		last = s.get("/readyz")
		return last.code == http.StatusOK
	}) {
		t.Fatalf("/readyz did not turn OK within %s; last: %s; /readyz/certificate: %s\n%s", timeout, last, s.get("/readyz/certificate"), tail(s.logPath, 40))
	}
}

// registerScoped creates meshguard's webhook configurations, generated from
// the catalog, pointing at https://localhost:<port> with an empty caBundle and
// scoped to namespaces labelled certsLabel=scope. They are deleted when the
// test ends. (cert-controller issues DNS names only, so the URL names
// localhost, which resolves to 127.0.0.1 here; the server binds 127.0.0.1.)
func registerScoped(t *testing.T, ctx context.Context, env *framework.Env, name string, port int, scope string) {
	t.Helper()
	cat, err := rules.DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	co := webhook.ConfigOptions{Name: name, URL: fmt.Sprintf("https://localhost:%d", port), Enroll: true}
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{certsLabel: scope}}
	v := webhook.ValidatingConfiguration(cat, co)
	for i := range v.Webhooks {
		v.Webhooks[i].NamespaceSelector = sel
	}
	m := webhook.MutatingConfiguration(co)
	for i := range m.Webhooks {
		m.Webhooks[i].NamespaceSelector = sel
	}
	var docs []string
	for _, obj := range []any{v, m} {
		b, err := sigsyaml.Marshal(obj)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, string(b))
	}
	mustKubectl(t, ctx, env, strings.Join(docs, "---\n"), "apply", "-f", "-")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		mustKubectl(t, ctx, env, "", "delete", "validatingwebhookconfiguration,mutatingwebhookconfiguration", name, "--ignore-not-found")
	})
}

// caBundles returns the caBundle of every webhook of both configurations.
func caBundles(t *testing.T, ctx context.Context, c client.Client, name string) [][]byte {
	t.Helper()
	var v admissionregistrationv1.ValidatingWebhookConfiguration
	var m admissionregistrationv1.MutatingWebhookConfiguration
	if err := c.Get(ctx, types.NamespacedName{Name: name}, &v); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(ctx, types.NamespacedName{Name: name}, &m); err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, w := range v.Webhooks {
		out = append(out, w.ClientConfig.CABundle)
	}
	for _, w := range m.Webhooks {
		out = append(out, w.ClientConfig.CABundle)
	}
	return out
}

func certPool(t *testing.T, caPEM []byte) *x509.CertPool {
	t.Helper()
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(caPEM) {
		t.Fatalf("no PEM certificate in the CA bundle:\n%s", caPEM)
	}
	return p
}

func leafOf(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode(certPEM)
	if b == nil {
		t.Fatalf("no PEM certificate:\n%s", certPEM)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// handshake dials the webhook port at 127.0.0.1 and verifies its certificate
// for serverName against pool, returning the served leaf.
func handshake(port int, pool *x509.CertPool, serverName string) (*x509.Certificate, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", fmt.Sprintf("127.0.0.1:%d", port), &tls.Config{RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS12})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}

// waitCanI waits (bounded) until the API server's RBAC authorizer grants the
// identity every verb (its informers pick up new roles asynchronously).
func waitCanI(t *testing.T, ctx context.Context, env *framework.Env, as string, checks [][]string) {
	t.Helper()
	for _, c := range checks {
		var last framework.KubectlResult
		if !poll(30*time.Second, 100*time.Millisecond, func() bool {
			last = kubectl(t, ctx, env, "", append([]string{"auth", "can-i", "--as", as}, c...)...)
			return last.ExitCode == 0 && strings.TrimSpace(last.Stdout) == "yes"
		}) {
			t.Fatalf("RBAC did not grant %s %v within 30s:\n%s", as, c, last)
		}
	}
}

// TestCertificatesSelfSigned installs meshguard the way the chart does in
// self-signed mode, under the least-privilege RBAC the chart needs: the
// chart's empty Secret and the webhook configurations with an empty caBundle
// exist, meshguard issues the CA and serving certificate into the Secret,
// injects the CA, turns ready only then and denies a bad apply; `meshguard
// uninstall` then removes the configurations and the apply is admitted.
func TestCertificatesSelfSigned(t *testing.T) {
	env := framework.Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const (
		ns       = "e2e-certs-ss"
		apps     = "e2e-certs-ss-apps"
		scope    = "self-signed"
		hookName = "meshguard-e2e-certs-ss"
		sa       = "meshguard"
	)
	identity := "system:serviceaccount:" + ns + ":" + sa
	mustKubectl(t, ctx, env, namespaceYAML(ns, nil)+"---\n"+namespaceYAML(apps, map[string]string{certsLabel: scope, "istio-injection": "enabled"}), "apply", "-f", "-")
	// The chart's Secret, empty until meshguard fills it.
	mustKubectl(t, ctx, env, "", "delete", "secret", "meshguard-tls", "-n", ns, "--ignore-not-found")
	mustKubectl(t, ctx, env, fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata: {name: meshguard-tls, namespace: %s}
type: kubernetes.io/tls
data: {tls.crt: "", tls.key: ""}
`, ns), "apply", "-f", "-")
	// Least privilege: the certificate part (Secret in its namespace;
	// its own webhook configurations by name) plus what the webhook's
	// context caches read.
	mustKubectl(t, ctx, env, fmt.Sprintf(`apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: e2e-certs-meshguard, namespace: %[1]s}
rules:
- {apiGroups: [""], resources: [secrets], verbs: [get, list, watch, create]}
- {apiGroups: [""], resources: [secrets], resourceNames: [meshguard-tls], verbs: [update]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: e2e-certs-meshguard, namespace: %[1]s}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: e2e-certs-meshguard}
subjects: [{kind: ServiceAccount, namespace: %[1]s, name: %[2]s}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: e2e-certs-meshguard}
rules:
- {apiGroups: [admissionregistration.k8s.io], resources: [validatingwebhookconfigurations, mutatingwebhookconfigurations], verbs: [get, list, watch]}
- {apiGroups: [admissionregistration.k8s.io], resources: [validatingwebhookconfigurations, mutatingwebhookconfigurations], resourceNames: [%[3]s], verbs: [update]}
- {apiGroups: [""], resources: [namespaces, pods, services], verbs: [get, list, watch]}
- {apiGroups: [security.istio.io], resources: [peerauthentications, authorizationpolicies], verbs: [get, list, watch]}
- {apiGroups: [networking.istio.io], resources: [serviceentries, destinationrules], verbs: [get, list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: e2e-certs-meshguard}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: e2e-certs-meshguard}
subjects: [{kind: ServiceAccount, namespace: %[1]s, name: %[2]s}]
`, ns, sa, hookName), "apply", "-f", "-")
	waitCanI(t, ctx, env, identity, [][]string{
		{"update", "secrets/meshguard-tls", "-n", ns},
		{"update", "validatingwebhookconfigurations/" + hookName},
		{"update", "mutatingwebhookconfigurations/" + hookName},
		{"watch", "peerauthentications.security.istio.io", "-A"},
	})
	for _, c := range [][]string{{"update", "secrets/other", "-n", ns}, {"update", "validatingwebhookconfigurations/other"}} {
		if res := kubectl(t, ctx, env, "", append([]string{"auth", "can-i", "--as", identity}, c...)...); strings.TrimSpace(res.Stdout) != "no" {
			t.Fatalf("the test's RBAC is broader than intended (%v):\n%s", c, res)
		}
	}

	port, err := framework.FreeLoopbackPort()
	if err != nil {
		t.Fatal(err)
	}
	registerScoped(t, ctx, env, hookName, port, scope)
	admin, err := client.New(env.Config, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range caBundles(t, ctx, admin, hookName) {
		if len(b) != 0 {
			t.Fatalf("the configurations must start without a caBundle")
		}
	}
	// Before meshguard runs, the API server cannot reach the webhook and
	// failurePolicy Fail rejects the apply: the scope is in effect.
	bad := deploymentYAML(apps, "net-admin", deploymentOpts{Caps: []string{"NET_ADMIN"}})
	var res framework.KubectlResult
	if !poll(30*time.Second, 100*time.Millisecond, func() bool {
		res = kubectl(t, ctx, env, bad, "apply", "--dry-run=server", "-f", "-")
		return res.ExitCode != 0 && strings.Contains(res.Stderr, "failed calling webhook")
	}) {
		t.Fatalf("the scoped configurations did not take effect within 30s:\n%s", res)
	}

	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: identity}
	co := certs.NewOptions()
	co.Namespace = ns
	co.ExtraDNSNames = []string{"localhost"}
	co.ValidatingWebhookConfiguration, co.MutatingWebhookConfiguration = hookName, hookName
	s := startCertServer(t, cfg, port, co)
	s.waitReady(t, 90*time.Second)

	// Ready means: the Secret holds the CA and a serving certificate for the
	// Service and localhost, the CA is in every webhook's caBundle, and the
	// certificate directory holds the Secret's certificate, which is served.
	var sec corev1.Secret
	if err := admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: "meshguard-tls"}, &sec); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"ca.crt", "ca.key", "tls.crt", "tls.key"} {
		if len(sec.Data[k]) == 0 {
			t.Fatalf("Secret %s/meshguard-tls lacks %s once ready", ns, k)
		}
	}
	pool := certPool(t, sec.Data["ca.crt"])
	leaf := leafOf(t, sec.Data["tls.crt"])
	for _, name := range []string{"meshguard." + ns + ".svc", "localhost"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("the serving certificate does not verify for %s against the Secret's CA: %v", name, err)
		}
	}
	if time.Until(leaf.NotAfter) < 300*24*time.Hour {
		t.Errorf("the default serving certificate should be valid for about a year, expires %s", leaf.NotAfter)
	}
	for i, b := range caBundles(t, ctx, admin, hookName) {
		if !bytes.Equal(b, sec.Data["ca.crt"]) {
			t.Errorf("webhook %d: caBundle is not the Secret's CA once ready", i)
		}
	}
	for file, want := range map[string][]byte{"tls.crt": sec.Data["tls.crt"], "tls.key": sec.Data["tls.key"], "ca.crt": sec.Data["ca.crt"]} {
		got, err := os.ReadFile(filepath.Join(s.certDir, file))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s in the certificate directory is not the Secret's (%v)", file, err)
		}
	}
	if st, err := os.Stat(filepath.Join(s.certDir, "tls.key")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("tls.key must be written 0600: %v %v", st, err)
	}
	if _, err := os.Stat(filepath.Join(s.certDir, "ca.key")); !os.IsNotExist(err) {
		t.Errorf("the CA key must never be written to the certificate directory: %v", err)
	}
	served, err := handshake(s.port, pool, "localhost")
	if err != nil {
		t.Fatalf("TLS handshake with the Secret's CA: %v", err)
	}
	if !served.Equal(leaf) {
		t.Errorf("the server does not serve the Secret's certificate")
	}

	// The API server now reaches meshguard with the injected CA: a bad apply is denied.
	if !poll(30*time.Second, 100*time.Millisecond, func() bool {
		res = kubectl(t, ctx, env, bad, "apply", "-f", "-")
		return res.ExitCode != 0 && strings.Contains(res.Stderr, "MESH0150")
	}) {
		t.Fatalf("a bad apply was not denied by meshguard within 30s of readiness:\n%s", res)
	}
	assertDenied(t, res, "MESH0150")

	// Uninstall: the configurations go, twice is fine, and the bad apply is admitted.
	uninstall := []string{"uninstall", "--kubeconfig", env.KubeconfigPath, "--validating-webhook-configuration", hookName, "--mutating-webhook-configuration", hookName}
	var out, errb bytes.Buffer
	if code := app.Main(ctx, uninstall, app.Streams{Out: &out, Err: &errb}); code != 0 {
		t.Fatalf("meshguard uninstall: exit %d\n%s%s", code, out.String(), errb.String())
	}
	for _, want := range []string{`validatingwebhookconfiguration "` + hookName + `" deleted`, `mutatingwebhookconfiguration "` + hookName + `" deleted`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("uninstall output lacks %q:\n%s", want, out.String())
		}
	}
	for _, obj := range []client.Object{&admissionregistrationv1.ValidatingWebhookConfiguration{}, &admissionregistrationv1.MutatingWebhookConfiguration{}} {
		if err := admin.Get(ctx, types.NamespacedName{Name: hookName}, obj); !apierrors.IsNotFound(err) {
			t.Errorf("%T %s still exists after uninstall: %v", obj, hookName, err)
		}
	}
	out.Reset()
	errb.Reset()
	if code := app.Main(ctx, uninstall, app.Streams{Out: &out, Err: &errb}); code != 0 || !strings.Contains(out.String(), "not found (already deleted)") {
		t.Fatalf("a second uninstall must succeed and say so: exit %d\n%s%s", code, out.String(), errb.String())
	}
	if !poll(30*time.Second, 100*time.Millisecond, func() bool {
		res = kubectl(t, ctx, env, bad, "apply", "--dry-run=server", "-f", "-")
		return res.ExitCode == 0
	}) {
		t.Fatalf("the API server still calls meshguard 30s after uninstall:\n%s", res)
	}
}

// TestCertificateRotation runs self-signed mode with a short-lived serving
// certificate and sends requests without pause over several renewals: direct
// AdmissionReviews over new TLS connections (trusting the CA read from the
// Secret each time) and server-side dry-run applies through the API server.
// Every one must be answered with meshguard's denial.
func TestCertificateRotation(t *testing.T) {
	env := framework.Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const (
		ns       = "e2e-certs-rot"
		apps     = "e2e-certs-rot-apps"
		scope    = "rotation"
		hookName = "meshguard-e2e-certs-rot"
	)
	mustKubectl(t, ctx, env, namespaceYAML(ns, nil)+"---\n"+namespaceYAML(apps, map[string]string{certsLabel: scope, "istio-injection": "enabled"}), "apply", "-f", "-")
	// No Secret: meshguard creates it.
	mustKubectl(t, ctx, env, "", "delete", "secret", "meshguard-tls", "-n", ns, "--ignore-not-found")
	co := certs.NewOptions()
	co.Namespace = ns
	co.ExtraDNSNames = []string{"localhost"}
	co.ValidatingWebhookConfiguration, co.MutatingWebhookConfiguration = hookName, hookName
	// Renewed 8s after issue, 16s before expiry; checked every second.
	co.CertValidity = 24 * time.Second
	co.RenewBefore = 16 * time.Second
	co.CheckInterval = time.Second
	s := startCertServer(t, env.Config, 0, co)
	registerScoped(t, ctx, env, hookName, s.port, scope)
	s.waitReady(t, 90*time.Second)

	admin, err := client.New(env.Config, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	bad := deploymentYAML(apps, "net-admin", deploymentOpts{Caps: []string{"NET_ADMIN"}})
	var res framework.KubectlResult
	if !poll(30*time.Second, 100*time.Millisecond, func() bool {
		res = kubectl(t, ctx, env, bad, "apply", "--dry-run=server", "-f", "-")
		return res.ExitCode != 0 && strings.Contains(res.Stderr, "MESH0150")
	}) {
		t.Fatalf("the webhook did not take effect within 30s of readiness:\n%s", res)
	}
	review := admissionReviewFor(t, bad)

	const window = 75 * time.Second
	deadline := time.Now().Add(window)
	seen := map[string]time.Time{} // served certificates by content, with when first seen
	var order []*x509.Certificate
	failures, requests, applies := 0, 0, 0
	fail := func(format string, args ...any) {
		failures++
		if failures <= 5 {
			t.Errorf(format, args...)
		}
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(deadline) && len(order) < 4 {
		<-tick.C
		var sec corev1.Secret
		if err := admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: "meshguard-tls"}, &sec); err != nil {
			t.Fatal(err)
		}
		leaf, err := postReview(s.port, certPool(t, sec.Data["ca.crt"]), review)
		requests++
		if err != nil {
			fail("request %d at %s: %v", requests, time.Now().Format(time.RFC3339Nano), err)
			continue
		}
		if _, ok := seen[string(leaf.Raw)]; !ok {
			seen[string(leaf.Raw)] = time.Now()
			order = append(order, leaf)
		}
		if requests%10 == 0 {
			applies++
			res := kubectl(t, ctx, env, bad, "apply", "--dry-run=server", "-f", "-")
			if res.ExitCode == 0 || !strings.Contains(res.Stderr, "MESH0150") {
				fail("dry-run apply %d was not answered with meshguard's denial:\n%s", applies, res)
			}
		}
	}
	t.Logf("%d AdmissionReviews and %d dry-run applies over %d serving certificates, %d failures", requests, applies, len(order), failures)
	if failures > 0 {
		t.Fatalf("%d of %d requests failed while the certificate was renewed", failures, requests+applies)
	}
	if len(order) < 3 {
		t.Fatalf("want at least two renewals within %s, saw %d certificates:\n%s", window, len(order), tail(s.logPath, 20))
	}
	for i := 1; i < len(order); i++ {
		if !order[i].NotAfter.After(order[i-1].NotAfter) {
			t.Errorf("certificate %d does not outlive its predecessor: %s vs %s", i, order[i].NotAfter, order[i-1].NotAfter)
		}
	}
}

// admissionReviewFor builds a CREATE AdmissionReview for a manifest.
func admissionReviewFor(t *testing.T, manifest string) []byte {
	t.Helper()
	obj, err := sigsyaml.YAMLToJSON([]byte(manifest))
	if err != nil {
		t.Fatal(err)
	}
	var meta struct {
		Metadata struct{ Name, Namespace string }
	}
	if err := json.Unmarshal(obj, &meta); err != nil {
		t.Fatal(err)
	}
	ar := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       "e2e-rotation",
			Kind:      metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"},
			Resource:  metav1.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"},
			Name:      meta.Metadata.Name,
			Namespace: meta.Metadata.Namespace,
			Operation: admissionv1.Create,
			Object:    runtime.RawExtension{Raw: obj},
		},
	}
	b, err := json.Marshal(ar)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// postReview sends the review over a new TLS connection (verified for
// localhost against pool) and checks that meshguard denied it with MESH0150.
func postReview(port int, pool *x509.CertPool, review []byte) (*x509.Certificate, error) {
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12},
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	resp, err := hc.Post(fmt.Sprintf("https://127.0.0.1:%d%s", port, webhook.ValidatePath), "application/json", bytes.NewReader(review))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d: %s", resp.StatusCode, body)
	}
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("decode AdmissionReview: %w: %s", err, body)
	}
	if out.Response == nil || out.Response.Allowed || out.Response.Result == nil || !strings.Contains(out.Response.Result.Message, "MESH0150") {
		return nil, fmt.Errorf("want a MESH0150 denial, got %s", body)
	}
	return resp.TLS.PeerCertificates[0], nil
}

// TestCertificatesCertManager runs cert-manager mode against cert-manager's
// real CRDs: while the Certificate is not Ready, nothing is served and
// /readyz/certificate and the log give the reason; once it is Ready and the
// Secret's files are mounted, meshguard serves them, and serves renewed
// files without a restart.
func TestCertificatesCertManager(t *testing.T) {
	env := framework.Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := env.InstallCertManagerCRDs(); err != nil {
		t.Fatal(err)
	}
	const ns = "e2e-certs-cm"
	mustKubectl(t, ctx, env, namespaceYAML(ns, nil), "apply", "-f", "-")
	mustKubectl(t, ctx, env, "", "delete", "certificates.cert-manager.io", "meshguard", "-n", ns, "--ignore-not-found")
	mustKubectl(t, ctx, env, fmt.Sprintf(`apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: meshguard, namespace: %[1]s}
spec:
  secretName: meshguard-tls
  dnsNames: [meshguard.%[1]s.svc]
  issuerRef: {name: meshguard, kind: Issuer}
`, ns), "apply", "-f", "-")

	co := certs.NewOptions()
	co.Mode = certs.ModeCertManager
	co.Namespace = ns
	co.PollInterval = 200 * time.Millisecond
	s := startCertServer(t, env.Config, 0, co)

	// waitReason polls /readyz/certificate until it gives the reason, then
	// checks that nothing is served, /readyz fails and the log has the reason.
	waitReason := func(want string) {
		t.Helper()
		var last probe
		if !poll(30*time.Second, 100*time.Millisecond, func() bool {
			s.exited(t)
			last = s.get("/readyz/certificate")
			return last.code == http.StatusInternalServerError && strings.Contains(last.body, want)
		}) {
			t.Fatalf("/readyz/certificate did not report %q within 30s; last: %s", want, last)
		}
		if r := s.get("/readyz"); r.code != http.StatusInternalServerError || !strings.Contains(r.body, "[-]certificate failed") {
			t.Errorf("/readyz must fail on the certificate: %s", r)
		}
		if s.serving() {
			t.Errorf("the webhook port accepts connections while the certificate is not ready")
		}
		if log, _ := os.ReadFile(s.logPath); !bytes.Contains(log, []byte(want)) {
			t.Errorf("the log does not give the reason %q:\n%s", want, tail(s.logPath, 10))
		}
	}
	waitReason("Certificate " + ns + "/meshguard has no Ready condition yet")
	setReady := func(status, reason, message string) {
		t.Helper()
		patch := fmt.Sprintf(`{"status":{"conditions":[{"type":"Ready","status":%q,"reason":%q,"message":%q,"lastTransitionTime":%q}]}}`,
			status, reason, message, time.Now().UTC().Format(time.RFC3339))
		mustKubectl(t, ctx, env, "", "patch", "certificates.cert-manager.io", "meshguard", "-n", ns, "--subresource=status", "--type=merge", "-p", patch)
	}
	setReady("False", "DoesNotExist", "Issuing certificate as Secret does not exist")
	waitReason("Certificate " + ns + "/meshguard is not Ready (False): DoesNotExist: Issuing certificate as Secret does not exist")
	setReady("True", "Ready", "Certificate is up to date and has not expired")
	waitReason("Certificate " + ns + "/meshguard is Ready but the mounted Secret is not usable yet")

	// The kubelet would now mount the Secret's files.
	first, err := framework.WriteServingCerts(s.certDir)
	if err != nil {
		t.Fatal(err)
	}
	s.waitReady(t, 30*time.Second)
	leaf, err := handshake(s.port, first.Pool, "127.0.0.1")
	if err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	if !leaf.Equal(leafOf(t, first.CertPEM)) {
		t.Fatalf("the server does not serve the mounted certificate")
	}

	// Renewal: new files are served without a restart.
	second, err := framework.WriteServingCerts(s.certDir)
	if err != nil {
		t.Fatal(err)
	}
	want := leafOf(t, second.CertPEM)
	var lastErr error
	if !poll(30*time.Second, 100*time.Millisecond, func() bool {
		s.exited(t)
		leaf, lastErr = handshake(s.port, second.Pool, "127.0.0.1")
		return lastErr == nil && leaf.Equal(want)
	}) {
		t.Fatalf("the renewed certificate was not served within 30s: %v", lastErr)
	}
	if r := s.get("/readyz"); r.code != http.StatusOK {
		t.Errorf("/readyz after renewal: %s", r)
	}
}
