package e2e_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"k8s.io/client-go/rest"

	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	ctrlzap "sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/yaml"

	"github.com/meshguard/meshguard/rules"
	"github.com/meshguard/meshguard/test/e2e/framework"
	"github.com/meshguard/meshguard/webhook"
)

// OwnNamespace is meshguard's own namespace in the tests: excluded from the
// workload webhook and from enrollment, as the chart does.
const ownNamespace = "meshguard"

// meshguard is a `meshguard serve` running in this process with the
// production wiring (webhook.NewServer) against the shared control plane.
type meshguard struct {
	Server                         *webhook.Server
	Certs                          *framework.Certs
	Port, MetricsPort, HealthPort  int
	LogPath                        string
	done                           <-chan error
	validatingName, mutatingName   string
	registeredValidating, mutating bool
}

// URL is the webhook server's base URL.
func (m *meshguard) URL() string { return fmt.Sprintf("https://127.0.0.1:%d", m.Port) }

// startMeshguard starts the server with a policy file, waits until its real
// /readyz endpoint answers 200 (bounded) and stops it when the test ends.
// webhook.NewServer registers its metrics on controller-runtime's global
// registry, so one process runs one server.
func startMeshguard(t *testing.T, env *framework.Env, policy string) *meshguard {
	t.Helper()
	dir := t.TempDir()
	certs, err := framework.WriteServingCerts(filepath.Join(dir, "certs"))
	if err != nil {
		t.Fatal(err)
	}
	m := &meshguard{Certs: certs, LogPath: filepath.Join(dir, "meshguard.log")}
	for _, p := range []*int{&m.Port, &m.MetricsPort, &m.HealthPort} {
		if *p, err = framework.FreeLoopbackPort(); err != nil {
			t.Fatal(err)
		}
	}
	policyFile := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(policyFile, []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	o := webhook.NewOptions()
	o.Host = "127.0.0.1"
	o.Port = m.Port
	o.CertDir = certs.Dir
	o.MetricsAddr = fmt.Sprintf("127.0.0.1:%d", m.MetricsPort)
	o.HealthAddr = fmt.Sprintf("127.0.0.1:%d", m.HealthPort)
	o.PolicyFile = policyFile
	o.EnrollLabel = "istio-injection=enabled"
	o.GracefulShutdown = 5 * time.Second
	o.AdmissionEvents = true // as the chart runs it

	m.Server, m.done = runInProcess(t, env.Config, o, m.LogPath)

	// Ready means caches synced and the certificate loaded: poll the real endpoint.
	readyz := fmt.Sprintf("http://127.0.0.1:%d/readyz", m.HealthPort)
	hc := &http.Client{Timeout: 2 * time.Second}
	var last string
	if !poll(60*time.Second, 100*time.Millisecond, func() bool {
		select {
		case err := <-m.done:
			t.Fatalf("meshguard serve exited before it was ready: %v\n%s", err, tail(m.LogPath, 40))
		default:
		}
		resp, err := hc.Get(readyz)
		if err != nil {
			last = err.Error()
			return false
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		last = fmt.Sprintf("%d %s", resp.StatusCode, body)
		return resp.StatusCode == http.StatusOK
	}) {
		t.Fatalf("meshguard /readyz did not turn OK within 60s; last answer: %s\n%s", last, tail(m.LogPath, 40))
	}

	// The webhook port serves TLS with the test CA's certificate for 127.0.0.1,
	// HTTP/1.1 only (HTTP/2 is off by default).
	conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", m.Port), &tls.Config{RootCAs: certs.Pool, ServerName: "127.0.0.1", NextProtos: []string{"h2", "http/1.1"}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("TLS handshake with the webhook port: %v", err)
	}
	if p := conn.ConnectionState().NegotiatedProtocol; p == "h2" {
		t.Errorf("the webhook server negotiated HTTP/2 although EnableHTTP2 is off")
	}
	_ = conn.Close()
	return m
}

// register applies the webhook configurations generated from the catalog with
// kubectl and waits (bounded) until the API server calls the webhook: the API
// server picks configurations up through an informer, so the first requests
// after the apply may not be sent yet. The configurations are deleted when
// the test ends, and the test waits until the API server stops calling them.
func (m *meshguard) register(t *testing.T, env *framework.Env) {
	t.Helper()
	cat, err := rules.DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	co := webhook.ConfigOptions{
		Name:              "meshguard-e2e",
		URL:               m.URL(),
		CABundle:          m.Certs.CAPEM,
		ExcludeNamespaces: append(append([]string{}, rules.NewConfig().SystemNamespaces...), ownNamespace),
		Enroll:            true,
	}
	var docs []string
	for _, obj := range []any{webhook.ValidatingConfiguration(cat, co), webhook.MutatingConfiguration(co)} {
		b, err := yaml.Marshal(obj)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, string(b))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	mustKubectl(t, ctx, env, strings.Join(docs, "---\n"), "apply", "-f", "-")
	t.Cleanup(func() { m.deregister(t, env, co.Name) })

	// A Deployment adding NET_ADMIN in a namespace that exists is denied
	// once the validating configuration is in effect. The probe namespace
	// is created once (an earlier registration may have enrolled it: applying
	// it again without labels would be an enrollment downgrade, MESH0102).
	if res := kubectl(t, ctx, env, namespaceYAML("e2e-probe", nil), "create", "-f", "-"); res.ExitCode != 0 && !strings.Contains(res.Stderr, "AlreadyExists") && !strings.Contains(res.Stderr, "already exists") {
		t.Fatalf("create namespace e2e-probe:\n%s", res)
	}
	probe := deploymentYAML("e2e-probe", "probe", deploymentOpts{Caps: []string{"NET_ADMIN"}})
	var last framework.KubectlResult
	if !poll(30*time.Second, 100*time.Millisecond, func() bool {
		last = kubectl(t, ctx, env, probe, "apply", "--dry-run=server", "-f", "-")
		return last.ExitCode != 0 && strings.Contains(last.Stderr, "MESH0150")
	}) {
		t.Fatalf("the validating webhook did not take effect within 30s; last apply:\n%s", last)
	}
	// A new namespace is enrolled once the mutating configuration is in effect.
	if !poll(30*time.Second, 100*time.Millisecond, func() bool {
		last = kubectl(t, ctx, env, namespaceYAML("e2e-enroll-probe", nil), "create", "--dry-run=server", "-o", "jsonpath={.metadata.labels}", "-f", "-")
		return last.ExitCode == 0 && strings.Contains(last.Stdout, `"istio-injection":"enabled"`)
	}) {
		t.Fatalf("the mutating webhook did not take effect within 30s; last create:\n%s", last)
	}
}

func (m *meshguard) deregister(t *testing.T, env *framework.Env, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	mustKubectl(t, ctx, env, "", "delete", "validatingwebhookconfiguration,mutatingwebhookconfiguration", name, "--ignore-not-found")
	// Other tests share the control plane: wait until the API server no
	// longer calls the webhook before the server stops (failurePolicy Fail
	// would otherwise reject their requests).
	probe := deploymentYAML("e2e-probe", "probe", deploymentOpts{Caps: []string{"NET_ADMIN"}})
	var last framework.KubectlResult
	if !poll(30*time.Second, 100*time.Millisecond, func() bool {
		last = kubectl(t, ctx, env, probe, "apply", "--dry-run=server", "-f", "-")
		return last.ExitCode == 0
	}) {
		t.Errorf("the API server still calls the webhook 30s after its configuration was deleted; last apply:\n%s", last)
	}
}

// waitForNamespace waits (bounded) until meshguard's informer cache, the one
// the webhook decides with, holds the namespace with the wanted label values
// ("" for a label that must be absent).
func (m *meshguard) waitForNamespace(t *testing.T, name string, want map[string]string) {
	t.Helper()
	waitCachedNamespace(t, m.Server, name, want)
}

// waitCachedNamespace is waitForNamespace for any in-process server.
func waitCachedNamespace(t *testing.T, srv *webhook.Server, name string, want map[string]string) {
	t.Helper()
	var ns corev1.Namespace
	if !poll(30*time.Second, 50*time.Millisecond, func() bool {
		if err := srv.Manager.GetCache().Get(context.Background(), client.ObjectKey{Name: name}, &ns); err != nil {
			return false
		}
		for k, v := range want {
			if got, ok := ns.Labels[k]; (v == "" && ok) || (v != "" && got != v) {
				return false
			}
		}
		return true
	}) {
		t.Fatalf("meshguard's cache did not see namespace %s with labels %v within 30s (has %v)", name, want, ns.Labels)
	}
}

// metric returns the value of one sample from the real metrics endpoint, 0
// when it is absent.
func (m *meshguard) metric(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	return scrapeMetric(t, m.MetricsPort, name, labels)
}

// scrapeMetric reads one sample (a metric with these labels, or without any)
// from the metrics endpoint on a loopback port, 0 when it is absent.
func scrapeMetric(t *testing.T, port int, name string, labels map[string]string) float64 {
	t.Helper()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	if err != nil {
		t.Fatalf("scrape metrics: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
lines:
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		for k, v := range labels {
			if !strings.Contains(line, fmt.Sprintf("%s=%q", k, v)) {
				continue lines
			}
		}
		var f float64
		if _, err := fmt.Sscanf(line[strings.LastIndex(line, " ")+1:], "%g", &f); err == nil {
			return f
		}
	}
	return 0
}

// poll calls cond every interval until it returns true or timeout passes.
func poll(timeout, interval time.Duration, cond func() bool) bool {
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

// kubectl runs the real kubectl; a kubectl that cannot run fails the test.
func kubectl(t *testing.T, ctx context.Context, env *framework.Env, stdin string, args ...string) framework.KubectlResult {
	t.Helper()
	var in io.Reader
	if stdin != "" {
		in = strings.NewReader(stdin)
	}
	res, err := env.Kubectl(ctx, in, args...)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// mustKubectl runs kubectl and fails the test unless it exits 0.
func mustKubectl(t *testing.T, ctx context.Context, env *framework.Env, stdin string, args ...string) framework.KubectlResult {
	t.Helper()
	res := kubectl(t, ctx, env, stdin, args...)
	if res.ExitCode != 0 {
		t.Fatalf("want success:\n%s", res)
	}
	return res
}

// namespaceYAML renders a Namespace.
func namespaceYAML(name string, labels map[string]string) string {
	return mustYAML(map[string]any{
		"apiVersion": "v1", "kind": "Namespace",
		"metadata": map[string]any{"name": name, "labels": labels},
	})
}

type deploymentOpts struct {
	Caps              []string
	PodLabels         map[string]string
	HostNetwork       bool
	Image             string
	Replicas          int
	DeploymentLabels  map[string]string
	DeploymentAnnots  map[string]string
	ContainerSecurity map[string]any
}

// deploymentYAML renders a Deployment with one container.
func deploymentYAML(ns, name string, o deploymentOpts) string {
	if o.Image == "" {
		o.Image = "registry.example.com/shop/app:1.0"
	}
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	podLabels := map[string]string{"app": name}
	for k, v := range o.PodLabels {
		podLabels[k] = v
	}
	c := map[string]any{"name": "app", "image": o.Image}
	sc := map[string]any{}
	for k, v := range o.ContainerSecurity {
		sc[k] = v
	}
	if len(o.Caps) > 0 {
		sc["capabilities"] = map[string]any{"add": o.Caps}
	}
	if len(sc) > 0 {
		c["securityContext"] = sc
	}
	spec := map[string]any{"containers": []any{c}}
	if o.HostNetwork {
		spec["hostNetwork"] = true
	}
	return mustYAML(map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": name, "namespace": ns, "labels": o.DeploymentLabels, "annotations": o.DeploymentAnnots},
		"spec": map[string]any{
			"replicas": o.Replicas,
			"selector": map[string]any{"matchLabels": map[string]string{"app": name}},
			"template": map[string]any{"metadata": map[string]any{"labels": podLabels}, "spec": spec},
		},
	})
}

func mustYAML(v any) string {
	b, err := yaml.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// tail returns the last n lines of a file.
func tail(file string, n int) string {
	data, err := os.ReadFile(file)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// runInProcess builds `meshguard serve` with the production wiring
// (webhook.NewServer) against cfg, logging JSON to logPath, and runs it until
// the test ends; on failure the log's last lines are printed. done receives
// Start's result (a server that exits early shows up there).
func runInProcess(t *testing.T, cfg *rest.Config, o *webhook.Options, logPath string) (srv *webhook.Server, done <-chan error) {
	t.Helper()
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	logger := ctrlzap.New(ctrlzap.WriteTo(logFile), ctrlzap.JSONEncoder())
	// In-process servers stop when their test ends, with nothing left to
	// drain; TestResilienceHA exercises the drain with real processes.
	o.ShutdownDelay = 0
	if srv, err = webhook.NewServer(cfg, o, logger); err != nil {
		_ = logFile.Close()
		t.Fatalf("webhook.NewServer: %v", err)
	}
	ctx, cancel := context.WithCancel(ctrllog.IntoContext(context.Background(), logger))
	ch := make(chan error, 1)
	go func() { ch <- srv.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-ch:
			if err != nil {
				t.Errorf("meshguard serve stopped with an error: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("meshguard serve did not stop within 30s of its context being cancelled")
		}
		_ = logFile.Close()
		if t.Failed() {
			t.Logf("meshguard log (last lines of %s):\n%s", logPath, tail(logPath, 60))
		}
	})
	return srv, ch
}

// grantNamespaceEditor lets user get, list, patch and update namespaces (a
// ClusterRole and binding named e2e-namespace-editor-USER) and waits until
// the API server's RBAC informer says so (at most 30 s).
func grantNamespaceEditor(t *testing.T, ctx context.Context, env *framework.Env, user string) {
	t.Helper()
	name := "e2e-namespace-editor-" + user
	mustKubectl(t, ctx, env, fmt.Sprintf(`apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: %[1]s}
rules:
- apiGroups: [""]
  resources: [namespaces]
  verbs: [get, list, patch, update]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: %[1]s}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: %[1]s}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: %[2]s}
`, name, user), "apply", "-f", "-")
	var can framework.KubectlResult
	if !poll(30*time.Second, 100*time.Millisecond, func() bool {
		can = kubectl(t, ctx, env, "", "auth", "can-i", "patch", "namespaces", "--as="+user)
		return strings.TrimSpace(can.Stdout) == "yes"
	}) {
		t.Fatalf("RBAC for %s did not take effect:\n%s", user, can)
	}
}
