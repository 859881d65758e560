package e2e_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	ctrlzap "sigs.k8s.io/controller-runtime/pkg/log/zap"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/meshguard/meshguard/posture"
	"github.com/meshguard/meshguard/reports"
	"github.com/meshguard/meshguard/test/e2e/framework"
	"github.com/meshguard/meshguard/webhook"
)

// postureRoot is the mesh root namespace of the posture tests' servers: their
// own, so the mesh-wide PeerAuthentication they create touches no other test.
const postureRoot = "e2e-posture-root"

// postureServer is an in-process `meshguard serve --background-audit`.
type postureServer struct {
	srv    *webhook.Server
	client client.Client
	format reports.Format
	health int
	// stop stops the server (also at the end of the test).
	stop func()
}

// startPostureServer starts meshguard with the background audit in a format,
// leader-elected under leaseID, and waits until its first full resync is done.
func startPostureServer(t *testing.T, env *framework.Env, format reports.Format, leaseID string, interval time.Duration, configure ...func(*webhook.Options)) *postureServer {
	t.Helper()
	dir := t.TempDir()
	certs, err := framework.WriteServingCerts(filepath.Join(dir, "certs"))
	if err != nil {
		t.Fatal(err)
	}
	var port, metricsPort, health int
	for _, p := range []*int{&port, &metricsPort, &health} {
		if *p, err = framework.FreeLoopbackPort(); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	kubectl(t, ctx, env, "", "create", "namespace", "e2e-posture-system") // may exist from an earlier test
	o := webhook.NewOptions()
	o.Host = "127.0.0.1"
	o.Port = port
	o.CertDir = certs.Dir
	o.MetricsAddr = fmt.Sprintf("127.0.0.1:%d", metricsPort)
	o.HealthAddr = fmt.Sprintf("127.0.0.1:%d", health)
	o.GracefulShutdown = 5 * time.Second
	o.LeaderElection = true
	o.LeaderElectionNamespace = "e2e-posture-system"
	o.LeaderElectionID = leaseID
	o.Rules.RootNamespace = postureRoot
	o.Posture = &posture.Options{Format: format, Interval: interval, Debounce: 200 * time.Millisecond}
	for _, f := range configure {
		f(o)
	}
	logPath := filepath.Join(dir, "meshguard.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	logger := ctrlzap.New(ctrlzap.WriteTo(logFile), ctrlzap.JSONEncoder())
	o.ShutdownDelay = 0
	srv, err := webhook.NewServer(env.Config, o, logger)
	if err != nil {
		t.Fatalf("webhook.NewServer: %v", err)
	}
	runCtx, stop := context.WithCancel(ctrllog.IntoContext(context.Background(), logger))
	done := make(chan error, 1)
	go func() { done <- srv.Start(runCtx) }()
	c, err := client.New(env.Config, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := &postureServer{srv: srv, client: c, format: format, health: health}
	stopped := false
	s.stop = func() {
		if stopped {
			return
		}
		stopped = true
		stop()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("meshguard serve stopped with an error: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("meshguard serve did not stop within 30s")
		}
		_ = logFile.Close()
		if t.Failed() {
			t.Logf("meshguard log (last lines of %s):\n%s", logPath, tail(logPath, 60))
		}
	}
	t.Cleanup(s.stop)
	if !poll(90*time.Second, 100*time.Millisecond, func() bool {
		select {
		case err := <-done:
			t.Fatalf("meshguard serve exited: %v", err)
		default:
		}
		at, _ := srv.Posture.LastFullResync()
		return !at.IsZero()
	}) {
		t.Fatalf("the background audit did not finish its first full resync within 90s")
	}
	return s
}

// report returns the stored report of a namespace ("" for the cluster report).
func (s *postureServer) report(t *testing.T, ns string) (*unstructured.Unstructured, bool) {
	t.Helper()
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(s.format.GVK(ns != ""))
	err := s.client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: reports.Name}, u)
	if apierrors.IsNotFound(err) {
		return nil, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return u, true
}

// results renders a namespace's report as "Kind/name CODE severity" lines, sorted.
func (s *postureServer) results(t *testing.T, ns string) []string {
	t.Helper()
	u, ok := s.report(t, ns)
	if !ok {
		return nil
	}
	rep, err := reports.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rep.Results {
		out = append(out, fmt.Sprintf("%s/%s %s %s", r.Subject.Kind, r.Subject.Name, r.Rule, r.Severity))
	}
	sort.Strings(out)
	return out
}

// waitResults waits until cond holds for a namespace's results.
func (s *postureServer) waitResults(t *testing.T, ns, what string, cond func([]string) bool) []string {
	t.Helper()
	var last []string
	if !poll(30*time.Second, 100*time.Millisecond, func() bool {
		last = s.results(t, ns)
		return cond(last)
	}) {
		t.Fatalf("namespace %s: %s: not within 30s; results:\n  %s", ns, what, strings.Join(last, "\n  "))
	}
	return last
}

func has(lines []string, prefix string) bool {
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
	return false
}

// resourceVersions returns the resourceVersion of the reports of namespaces.
func (s *postureServer) resourceVersions(t *testing.T, namespaces ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, ns := range namespaces {
		if u, ok := s.report(t, ns); ok {
			out[ns] = u.GetResourceVersion()
		}
	}
	return out
}

const postureApps = `apiVersion: v1
kind: Namespace
metadata:
  name: %[1]s-a
---
apiVersion: v1
kind: Namespace
metadata:
  name: %[1]s-b
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: %[1]s-a}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: app
        image: nginx
        securityContext: {capabilities: {add: [NET_ADMIN]}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: %[1]s-a}
spec:
  mtls: {mode: PERMISSIVE}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: to-web, namespace: %[1]s-b}
spec:
  host: web.%[1]s-a.svc.cluster.local
  trafficPolicy:
    tls: {mode: SIMPLE}
`

// TestPostureReports: reports appear for existing objects and follow changes
// of the objects, of their namespace's labels (also across namespaces: a
// DestinationRule towards a host in another namespace) and of the mesh-wide
// PeerAuthentication, and lose results when objects are deleted.
func TestPostureReports(t *testing.T) {
	env := framework.Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const p = "e2e-posture"
	mustKubectl(t, ctx, env, fmt.Sprintf(postureApps, p), "apply", "-f", "-")
	kubectl(t, ctx, env, "", "create", "namespace", postureRoot) // may exist from an earlier run
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		kubectl(t, ctx, env, "", "delete", "namespace", p+"-a", p+"-b", "--wait=false")
		kubectl(t, ctx, env, "", "delete", "peerauthentication", "-n", postureRoot, "--all")
	})
	s := startPostureServer(t, env, reports.FormatOpenReports, "e2e-posture-reports", time.Hour)
	a, b := p+"-a", p+"-b"

	t.Run("existing objects are in their namespace's report", func(t *testing.T) {
		got := s.waitResults(t, a, "MESH0150 on the Deployment and MESH0003 (Medium) on the PeerAuthentication", func(l []string) bool {
			return has(l, "Deployment/web MESH0150 critical") && has(l, "PeerAuthentication/default MESH0003 medium")
		})
		if u, ok := s.report(t, a); !ok || u.GetLabels()[reports.LabelManagedBy] != reports.ManagedBy {
			t.Errorf("the report is not labelled managed-by meshguard: %v", u)
		}
		if has(s.results(t, b), "DestinationRule/to-web MESH0011") {
			t.Errorf("MESH0011 before the host's namespace is in the mesh: %v", got)
		}
		if _, ok := s.report(t, ""); !ok {
			t.Error("no ClusterReport")
		}
	})

	t.Run("a changed object is judged again", func(t *testing.T) {
		mustKubectl(t, ctx, env, "", "patch", "deployment", "web", "-n", a, "--type=json",
			"-p", `[{"op":"remove","path":"/spec/template/spec/containers/0/securityContext"},{"op":"add","path":"/spec/template/spec/hostNetwork","value":true}]`)
		s.waitResults(t, a, "MESH0150 gone, MESH0160 there", func(l []string) bool {
			return !has(l, "Deployment/web MESH0150") && has(l, "Deployment/web MESH0160")
		})
	})

	t.Run("a namespace's labels re-judge the objects that read them, in other namespaces too", func(t *testing.T) {
		mustKubectl(t, ctx, env, "", "label", "namespace", a, "istio-injection=enabled")
		s.waitResults(t, b, "MESH0011 on the DestinationRule towards the now in-mesh host", func(l []string) bool {
			return has(l, "DestinationRule/to-web MESH0011")
		})
		mustKubectl(t, ctx, env, "", "label", "namespace", a, "istio-injection-")
		s.waitResults(t, b, "MESH0011 gone once the host's namespace leaves the mesh", func(l []string) bool {
			return !has(l, "DestinationRule/to-web MESH0011")
		})
	})

	t.Run("a mesh-wide PeerAuthentication re-judges what depends on it", func(t *testing.T) {
		mustKubectl(t, ctx, env, fmt.Sprintf("apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: %s}\nspec:\n  mtls: {mode: STRICT}\n", postureRoot), "apply", "-f", "-")
		s.waitResults(t, a, "MESH0003 raised to High under a mesh-wide STRICT", func(l []string) bool {
			return has(l, "PeerAuthentication/default MESH0003 high")
		})
		mustKubectl(t, ctx, env, "", "delete", "peerauthentication", "default", "-n", postureRoot)
		s.waitResults(t, a, "MESH0003 back to Medium", func(l []string) bool {
			return has(l, "PeerAuthentication/default MESH0003 medium")
		})
	})

	t.Run("deleted objects lose their results", func(t *testing.T) {
		mustKubectl(t, ctx, env, "", "delete", "deployment", "web", "-n", a)
		mustKubectl(t, ctx, env, "", "delete", "peerauthentication", "default", "-n", a)
		got := s.waitResults(t, a, "no result about the deleted objects", func(l []string) bool {
			return !has(l, "Deployment/web") && !has(l, "PeerAuthentication/default")
		})
		u, _ := s.report(t, a)
		if n, _, _ := unstructured.NestedInt64(u.Object, "summary", "fail"); int(n) != len(got) {
			t.Errorf("summary.fail %d for %d results", n, len(got))
		}
	})
}

// TestPostureRestartAndSteadyState: a second server (a restart) finds the
// reports the first wrote and writes nothing, and full resyncs with nothing
// changed write nothing either.
func TestPostureRestartAndSteadyState(t *testing.T) {
	env := framework.Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const p = "e2e-posture-rs"
	mustKubectl(t, ctx, env, fmt.Sprintf(postureApps, p), "apply", "-f", "-")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		kubectl(t, ctx, env, "", "delete", "namespace", p+"-a", p+"-b", "--wait=false")
	})
	a, b := p+"-a", p+"-b"

	first := startPostureServer(t, env, reports.FormatOpenReports, "e2e-posture-restart", time.Hour)
	first.waitResults(t, a, "the first server's report", func(l []string) bool { return has(l, "Deployment/web MESH0150") })
	before := first.resourceVersions(t, a, b, "")
	if len(before) != 3 {
		t.Fatalf("want the reports of %s, %s and the cluster, got %v", a, b, before)
	}
	first.stop()

	writes := postureWrites(t)
	second := startPostureServer(t, env, reports.FormatOpenReports, "e2e-posture-restart", 10*time.Second)
	if after := second.resourceVersions(t, a, b, ""); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("the restart rewrote reports: resourceVersions %v, before %v", after, before)
	}
	// Exactly one report per namespace: the fixed name leaves no room for a duplicate.
	for _, ns := range []string{a, b} {
		var l unstructured.UnstructuredList
		l.SetGroupVersionKind(reports.FormatOpenReports.GVK(true))
		if err := second.client.List(ctx, &l, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		if len(l.Items) != 1 {
			t.Errorf("namespace %s holds %d reports, want 1", ns, len(l.Items))
		}
	}

	// Two more full resyncs at steady state: no write at all.
	at, _ := second.srv.Posture.LastFullResync()
	for i := 0; i < 2; i++ {
		prev := at
		if !poll(40*time.Second, 200*time.Millisecond, func() bool {
			at, _ = second.srv.Posture.LastFullResync()
			return at.After(prev)
		}) {
			t.Fatal("no full resync within 40s at a 10s interval")
		}
	}
	if after := second.resourceVersions(t, a, b, ""); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("steady-state resyncs rewrote reports: resourceVersions %v, before %v", after, before)
	}
	if n := postureWrites(t) - writes; n != 0 {
		t.Errorf("%v report writes since the restart with nothing changed, want 0", n)
	}
	// The steady state is not a broken writer: a change is still written.
	mustKubectl(t, ctx, env, "", "delete", "deployment", "web", "-n", a)
	second.waitResults(t, a, "the deleted Deployment's result gone", func(l []string) bool { return !has(l, "Deployment/web") })
	if postureWrites(t)-writes != 1 {
		t.Errorf("%v writes for one changed report, want 1", postureWrites(t)-writes)
	}
}

// TestPostureWGPolicyFormat: --report-format wgpolicyk8s writes PolicyReports.
func TestPostureWGPolicyFormat(t *testing.T) {
	env := framework.Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const p = "e2e-posture-wg"
	mustKubectl(t, ctx, env, fmt.Sprintf(postureApps, p), "apply", "-f", "-")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		kubectl(t, ctx, env, "", "delete", "namespace", p+"-a", p+"-b", "--wait=false")
	})
	s := startPostureServer(t, env, reports.FormatWGPolicy, "e2e-posture-wg", time.Hour)
	s.waitResults(t, p+"-a", "a PolicyReport with MESH0150", func(l []string) bool { return has(l, "Deployment/web MESH0150 critical") })
	u, _ := s.report(t, p+"-a")
	if u.GetAPIVersion() != "wgpolicyk8s.io/v1alpha2" || u.GetKind() != "PolicyReport" {
		t.Errorf("report is %s %s", u.GetAPIVersion(), u.GetKind())
	}
	if _, ok := s.report(t, ""); !ok {
		t.Error("no ClusterPolicyReport")
	}
}

// postureWrites is the process-wide count of successful report writes
// (meshguard_posture_report_writes_total, shared by the in-process servers).
func postureWrites(t *testing.T) float64 {
	t.Helper()
	mfs, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() != "meshguard_posture_report_writes_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == "ok" {
					n += m.GetCounter().GetValue()
				}
			}
		}
	}
	return n
}
