package chart

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/meshguard/meshguard/test/e2e/framework"
)

// installSeq names a fresh application namespace per run: namespaces are
// never removed here (no namespace controller runs), and -count=N reruns.
var installSeq atomic.Int64

// TestInstallSelfSigned is the end-to-end install in self-signed mode. The
// chart is rendered with bin/helm and applied to the real API server with the
// real kubectl, all but its Deployment (no kubelet runs here). Its webhook
// configurations are pointed at a meshguard process on 127.0.0.1, and the
// meshguard binary, built from this repository, runs `meshguard serve` with
// the Deployment's own arguments under the chart's ServiceAccount and RBAC.
// It must issue its certificate into the chart's Secret, inject the CA into
// the chart's webhook configurations, turn ready, enroll a new namespace and
// deny a bad `kubectl apply`; the pre-delete hook's command, run with the
// hook's identity, then leaves no webhook configuration behind and the same
// apply is admitted.
func TestInstallSelfSigned(t *testing.T) {
	env := framework.Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const (
		release   = "meshguard-install"
		namespace = "meshguard-install"
		fullname  = "meshguard-install" // the release name already contains the chart's
		enroll    = "istio-injection=enabled"
	)
	apps := fmt.Sprintf("meshguard-install-apps-%d", installSeq.Add(1))
	identity := fmt.Sprintf("system:serviceaccount:%s:%s", namespace, fullname)
	hookIdentity := identity + "-uninstall"

	bin := buildMeshguard(t)
	port, healthPort, metricsPort := freePort(t), freePort(t), freePort(t)

	// With enrollment on, the chart renders both webhook configurations.
	c := render(t, release, namespace, "--set", "webhook.enrollNamespaces="+enroll)
	deploy := deployment(t, c, fullname)
	var policy corev1.ConfigMap
	into(t, c.get(t, "ConfigMap", fullname+"-policy"), &policy)

	// Point every webhook of the chart's two configurations at
	// https://localhost:<port><same path> instead of the Service. That is
	// the only change made to the rendered chart's objects (the Deployment
	// and the hook Job, which need a kubelet, are left out). localhost, not 127.0.0.1: cert-controller issues DNS
	// names only; meshguard binds 127.0.0.1, which localhost resolves to.
	paths := map[string]string{}
	for _, o := range c.objs {
		if o.GetKind() != "ValidatingWebhookConfiguration" && o.GetKind() != "MutatingWebhookConfiguration" {
			continue
		}
		hooks, _, err := unstructured.NestedSlice(o.Object, "webhooks")
		if err != nil || len(hooks) == 0 {
			t.Fatalf("%s %s has no webhooks: %v", o.GetKind(), o.GetName(), err)
		}
		for i, h := range hooks {
			w := h.(map[string]any)
			path, _, _ := unstructured.NestedString(w, "clientConfig", "service", "path")
			if path == "" {
				t.Fatalf("%s %s webhook %d has no service path", o.GetKind(), o.GetName(), i)
			}
			w["clientConfig"] = map[string]any{"url": fmt.Sprintf("https://localhost:%d%s", port, path)}
			paths[fmt.Sprintf("%s/%v", o.GetKind(), w["name"])] = path
		}
		if err := unstructured.SetNestedSlice(o.Object, hooks, "webhooks"); err != nil {
			t.Fatal(err)
		}
	}
	if len(paths) < 3 {
		t.Fatalf("want the validating and the mutating webhooks, got %v", paths)
	}

	// Install: everything Helm installs but the Deployment, plus the
	// pre-delete hook's ServiceAccount and RBAC (its Job only runs at helm
	// uninstall; the test runs its command below).
	var installed, hookRBAC strings.Builder
	for _, o := range c.objs {
		b, err := yaml.Marshal(o.Object)
		if err != nil {
			t.Fatal(err)
		}
		_, hook := o.GetAnnotations()["helm.sh/hook"]
		switch {
		case o.GetKind() == "Deployment" || o.GetKind() == "Job":
			continue
		case hook:
			hookRBAC.WriteString("---\n")
			hookRBAC.Write(b)
		default:
			installed.WriteString("---\n")
			installed.Write(b)
		}
	}
	kubectl(t, ctx, env, fmt.Sprintf("apiVersion: v1\nkind: Namespace\nmetadata: {name: %s}\n", namespace), "apply", "-f", "-")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// The webhook configurations first, so nothing else is held up by them.
		run(t, ctx, env, "", "delete", "validatingwebhookconfiguration,mutatingwebhookconfiguration", fullname, "--ignore-not-found")
		run(t, ctx, env, installed.String()+hookRBAC.String(), "delete", "--ignore-not-found", "--wait=false", "-f", "-")
		run(t, ctx, env, "", "delete", "deployment", "net-admin", "-n", apps, "--ignore-not-found", "--wait=false")
	})
	out := kubectl(t, ctx, env, installed.String()+hookRBAC.String(), "apply", "-f", "-")
	if strings.Contains(out, "deployment.apps/") {
		t.Fatalf("the Deployment was applied:\n%s", out)
	}

	// Nothing is issued yet: the Secret is empty, the caBundles too.
	secret := fullname + "-tls"
	if got := kubectl(t, ctx, env, "", "get", "secret", secret, "-n", namespace, "-o", "jsonpath={.data}"); strings.TrimSpace(got) != "" && strings.TrimSpace(got) != "{}" {
		t.Fatalf("the chart's Secret is not empty before meshguard runs: %s", got)
	}
	if got := webhookCABundles(t, ctx, env, fullname); strings.Join(got, "") != "" {
		t.Fatalf("the chart's webhook configurations carry a caBundle before meshguard runs: %q", got)
	}

	// The API server's RBAC authorizer picks up new roles asynchronously.
	waitAllowed(t, ctx, env, identity, [][]string{
		{"update", "secrets/" + secret, "-n", namespace},
		{"update", "validatingwebhookconfigurations/" + fullname},
		{"update", "mutatingwebhookconfigurations/" + fullname},
		{"update", "leases/" + fullname + "-controller", "-n", namespace},
		{"watch", "authorizationpolicies.security.istio.io", "-A"},
	})
	waitAllowed(t, ctx, env, hookIdentity, [][]string{
		{"delete", "validatingwebhookconfigurations/" + fullname},
		{"delete", "mutatingwebhookconfigurations/" + fullname},
	})

	// `meshguard serve` with the Deployment container's arguments; only what
	// a pod gets from its surroundings is replaced: addresses (loopback and
	// free ports instead of the pod's network), the certificate directory
	// (an emptyDir in the pod), the policy file (the mounted ConfigMap), the
	// credentials (the pod's ServiceAccount, here by impersonation) and the
	// leader election namespace (read in a pod from its ServiceAccount
	// mount). localhost is added to the certificate's DNS names.
	dir := t.TempDir()
	certDir := filepath.Join(dir, "certs")
	policyPath := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(policyPath, []byte(policy.Data["policy.yaml"]), 0o600); err != nil {
		t.Fatal(err)
	}
	ctr := deploy.Spec.Template.Spec.Containers[0]
	if deploy.Spec.Template.Spec.ServiceAccountName != fullname {
		t.Fatalf("the Deployment runs as %q, want %q", deploy.Spec.Template.Spec.ServiceAccountName, fullname)
	}
	args := overrideFlags(t, ctr.Args,
		map[string]string{
			"--port":                      fmt.Sprint(port),
			"--metrics-bind-address":      fmt.Sprintf("127.0.0.1:%d", metricsPort),
			"--health-probe-bind-address": fmt.Sprintf("127.0.0.1:%d", healthPort),
			"--cert-dir":                  certDir,
			"--policy":                    policyPath,
		},
		map[string]string{
			"--host":                      "127.0.0.1",
			"--kubeconfig":                impersonating(t, env, identity),
			"--leader-election-namespace": namespace,
			"--cert-dns-names":            "localhost",
		})
	// The container's environment: POD_NAMESPACE from the downward API.
	podEnv := map[string]string{}
	for _, e := range ctr.Env {
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace" {
			podEnv[e.Name] = namespace
		}
	}
	if podEnv["POD_NAMESPACE"] != namespace {
		t.Fatalf("the container does not get POD_NAMESPACE from the downward API: %+v", ctr.Env)
	}
	mg := startProcess(t, bin, args, podEnv, filepath.Join(dir, "meshguard.log"))

	var last string
	// (meshguard's log is printed when the test fails.)
	if !pollUntil(90*time.Second, 200*time.Millisecond, func() bool {
		mg.exited(t)
		last = httpGet(fmt.Sprintf("http://127.0.0.1:%d/readyz", healthPort))
		return strings.HasPrefix(last, "200 ")
	}) {
		t.Fatalf("/readyz did not turn OK within 90s; last: %s; /readyz/certificate: %s", last,
			httpGet(fmt.Sprintf("http://127.0.0.1:%d/readyz/certificate", healthPort)))
	}

	// The chart's Secret now holds the CA and a serving certificate for the
	// Service and localhost, and every webhook carries that CA.
	var sec corev1.Secret
	into(t, getObject(t, ctx, env, "secret", secret, "-n", namespace), &sec)
	for _, k := range []string{"ca.crt", "tls.crt", "tls.key"} {
		if len(sec.Data[k]) == 0 {
			t.Fatalf("Secret %s/%s lacks %s once meshguard is ready", namespace, secret, k)
		}
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(sec.Data["ca.crt"]) {
		t.Fatalf("ca.crt holds no certificate:\n%s", sec.Data["ca.crt"])
	}
	block, _ := pem.Decode(sec.Data["tls.crt"])
	if block == nil {
		t.Fatalf("tls.crt holds no PEM block")
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{fullname + "." + namespace + ".svc", fullname + "." + namespace + ".svc.cluster.local", "localhost"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("the serving certificate does not verify for %s against the Secret's CA: %v", name, err)
		}
	}
	bundles := webhookCABundles(t, ctx, env, fullname)
	if len(bundles) != len(paths) {
		t.Errorf("want %d webhooks, the configurations have %d", len(paths), len(bundles))
	}
	for i, b := range bundles {
		if got, err := base64.StdEncoding.DecodeString(b); err != nil || !bytes.Equal(got, sec.Data["ca.crt"]) {
			t.Errorf("webhook %d: the caBundle is not the Secret's CA (%v)", i, err)
		}
	}
	for _, kind := range []string{"validatingwebhookconfiguration", "mutatingwebhookconfiguration"} {
		urls := kubectl(t, ctx, env, "", "get", kind, fullname, "-o", "jsonpath={.webhooks[*].clientConfig.url}")
		for _, u := range strings.Fields(urls) {
			if !strings.HasPrefix(u, fmt.Sprintf("https://localhost:%d/", port)) {
				t.Errorf("%s %s: the CA injection changed the URL to %s", kind, fullname, u)
			}
		}
	}
	served, err := servedLeaf(port, pool)
	if err != nil {
		t.Fatalf("TLS handshake for localhost with the Secret's CA: %v", err)
	}
	if !served.Equal(leaf) {
		t.Errorf("meshguard does not serve the Secret's certificate")
	}

	// The API server reaches meshguard with the injected CA. The mutating
	// webhook enrolls a new namespace (checked with a dry run first: it
	// fails open, and the API server sees the injected CA asynchronously).
	nsYAML := fmt.Sprintf("apiVersion: v1\nkind: Namespace\nmetadata: {name: %s}\n", apps)
	labels := `{.metadata.labels.istio-injection}`
	var res framework.KubectlResult
	if !pollUntil(30*time.Second, 200*time.Millisecond, func() bool {
		res = run(t, ctx, env, nsYAML, "create", "--dry-run=server", "-o", "jsonpath="+labels, "-f", "-")
		return res.ExitCode == 0 && res.Stdout == "enabled"
	}) {
		t.Fatalf("the mutating webhook did not enroll a new namespace within 30s of readiness:\n%s", res)
	}
	if got := kubectl(t, ctx, env, nsYAML, "create", "-o", "jsonpath="+labels, "-f", "-"); got != "enabled" {
		t.Fatalf("namespace %s was created without %s: %q", apps, enroll, got)
	}

	// A bad apply: a Deployment adding NET_ADMIN in a namespace the chart
	// does not exclude.
	bad := fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: net-admin, namespace: %s}
spec:
  replicas: 1
  selector: {matchLabels: {app: net-admin}}
  template:
    metadata: {labels: {app: net-admin}}
    spec:
      containers:
      - name: app
        image: registry.example.com/shop/app:1.0
        securityContext: {capabilities: {add: [NET_ADMIN]}}
`, apps)
	if !pollUntil(30*time.Second, 200*time.Millisecond, func() bool {
		res = run(t, ctx, env, bad, "apply", "-f", "-")
		return res.ExitCode != 0 && strings.Contains(res.Stderr, "MESH0150")
	}) {
		t.Fatalf("the bad apply was not denied with MESH0150 within 30s of readiness:\n%s", res)
	}
	for _, want := range []string{"Error from server (Forbidden)", "denied the request: meshguard: ", "MESH0150", "NET_ADMIN"} {
		if !strings.Contains(res.Stderr, want) {
			t.Errorf("kubectl's error lacks %q:\n%s", want, res)
		}
	}
	if r := run(t, ctx, env, "", "get", "deployment", "net-admin", "-n", apps); r.ExitCode == 0 {
		t.Errorf("the denied Deployment exists")
	}

	// Uninstall: the pre-delete hook Job's arguments, run by the same binary
	// as the hook's ServiceAccount, with the hook's RBAC.
	hookArgs := append(uninstallArgs(t, c, fullname), "--kubeconfig", impersonating(t, env, hookIdentity))
	hook := exec.CommandContext(ctx, bin, hookArgs...)
	hook.Env = []string{"HOME=" + dir, "PATH=" + os.Getenv("PATH"), "POD_NAMESPACE=" + namespace}
	hookOut, err := hook.CombinedOutput()
	if err != nil {
		t.Fatalf("meshguard %s: %v\n%s", strings.Join(hookArgs, " "), err, hookOut)
	}
	for _, want := range []string{`validatingwebhookconfiguration "` + fullname + `" deleted`, `mutatingwebhookconfiguration "` + fullname + `" deleted`} {
		if !strings.Contains(string(hookOut), want) {
			t.Errorf("the uninstall hook's output lacks %q:\n%s", want, hookOut)
		}
	}
	for _, kind := range []string{"validatingwebhookconfiguration", "mutatingwebhookconfiguration"} {
		if r := run(t, ctx, env, "", "get", kind, fullname); r.ExitCode == 0 || !strings.Contains(r.Stderr, "NotFound") {
			t.Errorf("%s %s is left behind after the uninstall hook:\n%s", kind, fullname, r)
		}
		if left := kubectl(t, ctx, env, "", "get", kind, "-l", "app.kubernetes.io/instance="+release, "-o", "name"); strings.TrimSpace(left) != "" {
			t.Errorf("the release's webhook configurations are left behind: %s", left)
		}
	}
	// The API server stops calling meshguard (its webhook informer catches
	// up asynchronously): the same apply is admitted.
	if !pollUntil(30*time.Second, 200*time.Millisecond, func() bool {
		res = run(t, ctx, env, bad, "apply", "-f", "-")
		return res.ExitCode == 0
	}) {
		t.Fatalf("the bad apply is still refused 30s after the uninstall hook:\n%s", res)
	}

	// meshguard shuts down cleanly on SIGTERM, as the kubelet stops a pod.
	if err := mg.stop(30 * time.Second); err != nil {
		t.Errorf("meshguard serve did not stop cleanly on SIGTERM: %v", err)
	}
}

// buildMeshguard builds the meshguard binary from this repository into a
// temporary directory.
func buildMeshguard(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go") //nolint:staticcheck // fallback when go is not on PATH
	}
	out := filepath.Join(t.TempDir(), "meshguard")
	cmd := exec.Command(goBin, "build", "-o", out, "./cmd/meshguard")
	cmd.Dir = repoRoot(t)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/meshguard: %v\n%s", err, b)
	}
	return out
}

func freePort(t *testing.T) int {
	t.Helper()
	p, err := framework.FreeLoopbackPort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// overrideFlags replaces the values of flags the arguments must already
// pass (--name=value) and appends the added ones: a flag the arguments
// already pass gets the added value appended to its list (--cert-dns-names),
// any other is appended as a new flag.
func overrideFlags(t *testing.T, args []string, replace, add map[string]string) []string {
	t.Helper()
	out := append([]string(nil), args...)
	seen := map[string]bool{}
	for i, a := range out {
		name, _, ok := strings.Cut(a, "=")
		if !ok {
			continue
		}
		if v, ok := replace[name]; ok {
			out[i] = name + "=" + v
			seen[name] = true
		}
		if v, ok := add[name]; ok {
			out[i] += "," + v
			seen[name] = true
		}
	}
	for name := range replace {
		if !seen[name] {
			t.Fatalf("the Deployment's arguments do not pass %s: %v", name, args)
		}
	}
	for name, v := range add {
		if !seen[name] {
			out = append(out, name+"="+v)
		}
	}
	return out
}

// process is a running meshguard process.
type process struct {
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error
	stopped bool
}

// startProcess starts the binary with only the given environment (and PATH,
// HOME), logging to logPath; it is stopped when the test ends.
func startProcess(t *testing.T, bin string, args []string, env map[string]string, logPath string) *process {
	t.Helper()
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: exec.Command(bin, args...), logPath: logPath, done: make(chan struct{})}
	p.cmd.Env = []string{"HOME=" + filepath.Dir(logPath), "PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		p.cmd.Env = append(p.cmd.Env, k+"="+v)
	}
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	if err := p.cmd.Start(); err != nil {
		_ = logFile.Close()
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		_ = logFile.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		if err := p.stop(30 * time.Second); err != nil {
			t.Errorf("meshguard serve: %v", err)
		}
		if t.Failed() {
			t.Logf("meshguard log (last lines of %s):\n%s", p.logPath, p.tail(40))
		}
	})
	return p
}

// stop sends SIGTERM and waits, killing the process after the timeout. It
// returns the process's exit error (nil for a clean exit); calling it again
// returns nil.
func (p *process) stop(timeout time.Duration) error {
	if p.stopped {
		return nil
	}
	p.stopped = true
	select {
	case <-p.done:
		return fmt.Errorf("exited before it was stopped: %v", p.err)
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("still running %s after SIGTERM; killed", timeout)
	}
}

// exited fails the test if the process stopped on its own.
func (p *process) exited(t *testing.T) {
	t.Helper()
	select {
	case <-p.done:
		t.Fatalf("meshguard serve exited: %v", p.err)
	default:
	}
}

// tail returns the last n lines of the process's log, without the failed
// health checks the readiness polls cause.
func (p *process) tail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return err.Error()
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if !strings.Contains(l, `"healthz check failed"`) {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// pollUntil calls cond every interval until it returns true or the timeout passes.
func pollUntil(timeout, interval time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(interval)
	}
}

// httpGet returns "<status> <body>" or the error.
func httpGet(url string) string {
	hc := &http.Client{Timeout: 2 * time.Second}
	resp, err := hc.Get(url)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(b)))
}

// servedLeaf dials 127.0.0.1:port and verifies the served certificate for
// localhost against pool.
func servedLeaf(port int, pool *x509.CertPool) (*x509.Certificate, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", fmt.Sprintf("127.0.0.1:%d", port), &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	certs := conn.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return nil, errors.New("no certificate served")
	}
	return certs[0], nil
}

// waitAllowed waits (bounded) until `kubectl auth can-i` grants the identity
// every check.
func waitAllowed(t *testing.T, ctx context.Context, env *framework.Env, as string, checks [][]string) {
	t.Helper()
	for _, c := range checks {
		var last framework.KubectlResult
		if !pollUntil(30*time.Second, 200*time.Millisecond, func() bool {
			last = run(t, ctx, env, "", append([]string{"auth", "can-i", "--as", as}, c...)...)
			return last.ExitCode == 0 && strings.TrimSpace(last.Stdout) == "yes"
		}) {
			t.Fatalf("RBAC did not grant %s %v within 30s:\n%s", as, c, last)
		}
	}
}

// webhookCABundles returns the caBundle (base64, as stored) of every webhook
// of both configurations.
func webhookCABundles(t *testing.T, ctx context.Context, env *framework.Env, name string) []string {
	t.Helper()
	var out []string
	for _, kind := range []string{"validatingwebhookconfiguration", "mutatingwebhookconfiguration"} {
		o := getObject(t, ctx, env, kind, name)
		hooks, _, _ := unstructured.NestedSlice(o.Object, "webhooks")
		for _, h := range hooks {
			b, _, _ := unstructured.NestedString(h.(map[string]any), "clientConfig", "caBundle")
			out = append(out, b)
		}
	}
	return out
}

// getObject reads one object with kubectl.
func getObject(t *testing.T, ctx context.Context, env *framework.Env, args ...string) *unstructured.Unstructured {
	t.Helper()
	out := kubectl(t, ctx, env, "", append([]string{"get", "-o", "json"}, args...)...)
	var o unstructured.Unstructured
	if err := o.UnmarshalJSON([]byte(out)); err != nil {
		t.Fatalf("kubectl get %s: %v", strings.Join(args, " "), err)
	}
	return &o
}
