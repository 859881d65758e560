// Command posturescale measures the background audit at scale, run by
// `make bench` (see BENCHMARKS.md, "Background audit at scale").
//
// It starts a real kube-apiserver and etcd (bin/, `make tools`) with Istio's
// and the OpenReports CRDs, creates -namespaces namespaces holding
// -per-namespace covered objects each (Deployments, Services, Pods, a
// PeerAuthentication, an AuthorizationPolicy, a DestinationRule), then starts
// `meshguard serve --background-audit` as a child process and measures:
//
//   - the time from its start to the first complete set of reports (the first
//     full resync: every namespace judged and its report written);
//
//   - the time for one changed object to show in its report (-changes
//     sequential changes, p50/p99);
//
//   - a change of the mesh-wide PeerAuthentication: how long until every
//     namespace's compliance view follows, and how many LIST requests the API
//     server served meanwhile (re-judging reads the informer caches);
//
//   - the child's peak and current RSS (VmHWM, VmRSS from /proc);
//
//   - the API server writes in an idle window (-idle) at steady state, by
//     resource (the leader-election Lease renewals apart).
//
//     go run ./test/posturescale                                  # the full run
//     go run ./test/posturescale -namespaces 200 -changes 10 -idle 20s
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/meshguard/meshguard/reports"
	"github.com/meshguard/meshguard/test/e2e/framework"
)

type config struct {
	Namespaces, PerNamespace, Changes, Workers int
	Idle, Timeout                              time.Duration
	ServeArgs                                  []string
}

type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, " ") }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }

func main() {
	var c config
	flag.IntVar(&c.Namespaces, "namespaces", 2000, "namespaces to create")
	flag.IntVar(&c.PerNamespace, "per-namespace", 10, "covered objects per namespace (at least 6)")
	flag.IntVar(&c.Changes, "changes", 50, "sequential single-object changes to time")
	flag.IntVar(&c.Workers, "workers", 32, "parallel creators")
	flag.DurationVar(&c.Idle, "idle", 2*time.Minute, "idle window in which API server writes are counted")
	flag.DurationVar(&c.Timeout, "timeout", 15*time.Minute, "give up after this long")
	var serveArgs stringList
	flag.Var(&serveArgs, "serve-arg", "extra `meshguard serve` argument (repeatable), e.g. -serve-arg=--gc-percent=100")
	flag.Parse()
	c.ServeArgs = serveArgs
	if c.PerNamespace < 6 {
		fmt.Fprintln(os.Stderr, "posturescale: -per-namespace must be at least 6")
		os.Exit(2)
	}
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "posturescale:", err)
		os.Exit(1)
	}
}

var (
	gvrPA = schema.GroupVersionResource{Group: "security.istio.io", Version: "v1", Resource: "peerauthentications"}
	gvrAP = schema.GroupVersionResource{Group: "security.istio.io", Version: "v1", Resource: "authorizationpolicies"}
	gvrDR = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "destinationrules"}
)

func run(c config) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
	defer cancel()
	root, err := framework.RepoRoot()
	if err != nil {
		return err
	}
	env, err := framework.Start(framework.Options{
		CRDPaths: []string{filepath.Join(root, "charts", "meshguard", "files", "crds")},
		// Room for thousands of Services (envtest's default range holds 254).
		APIServerArgs: map[string][]string{"service-cluster-ip-range": {"10.96.0.0/16"}},
	})
	if err != nil {
		return err
	}
	defer func() { _ = env.Stop() }()
	fmt.Printf("machine: %d CPUs (GOMAXPROCS of this harness); control plane started in %s\n", runtimeNumCPU(), env.StartupTime.Round(time.Millisecond))

	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = 2000, 4000
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	dc, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}

	// 1. Populate.
	began := time.Now()
	objects, err := populate(ctx, cs, dc, c)
	if err != nil {
		return err
	}
	took := time.Since(began)
	fmt.Printf("created %d namespaces and %d covered objects in %s (%.0f objects/s, %d workers)\n",
		c.Namespaces, objects, took.Round(time.Millisecond), float64(objects)/took.Seconds(), c.Workers)

	// 2. meshguard serve --background-audit, a child process.
	child, err := startMeshguard(ctx, env, root, c.ServeArgs)
	if err != nil {
		return err
	}
	defer child.stop()
	first, err := child.waitFirstResync(ctx)
	if err != nil {
		return err
	}
	reportsN, err := countReports(ctx, dc)
	if err != nil {
		return err
	}
	hwm, rss := child.memory()
	fmt.Printf("first complete set of reports: %s after start (%d namespace reports); RSS peak %s, now %s\n",
		first.Round(time.Millisecond), reportsN, mib(hwm), mib(rss))

	// 3. Single-object changes.
	lat, err := timeChanges(ctx, cs, dc, c)
	if err != nil {
		return err
	}
	fmt.Printf("one changed object in its report: p50 %s, p99 %s, max %s (%d changes)\n",
		pct(lat, 0.5).Round(time.Millisecond), pct(lat, 0.99).Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond), len(lat))

	// 4. A mesh-wide PeerAuthentication.
	lists0, err := apiserverCounts(ctx, cs, "LIST")
	if err != nil {
		return err
	}
	puts0, err := apiserverCounts(ctx, cs, "PUT")
	if err != nil {
		return err
	}
	meshTook, err := timeMeshWide(ctx, dc, c)
	if err != nil {
		return err
	}
	allTook, rewritten, err := waitWritesSettle(ctx, cs, meshTook, puts0["reports"])
	if err != nil {
		return err
	}
	lists1, err := apiserverCounts(ctx, cs, "LIST")
	if err != nil {
		return err
	}
	fmt.Printf("mesh-wide PeerAuthentication STRICT: sampled namespaces followed in %s, every report rewritten (%d) in %s; LIST requests meanwhile: %s\n",
		meshTook.Round(time.Millisecond), rewritten, allTook.Round(time.Millisecond), describeDelta(lists0, lists1))

	// 5. Steady state.
	w0, err := apiserverCounts(ctx, cs, "POST", "PUT", "PATCH", "DELETE")
	if err != nil {
		return err
	}
	select {
	case <-time.After(c.Idle):
	case <-ctx.Done():
		return ctx.Err()
	}
	w1, err := apiserverCounts(ctx, cs, "POST", "PUT", "PATCH", "DELETE")
	if err != nil {
		return err
	}
	hwm, rss = child.memory()
	fmt.Printf("idle %s: API server writes %s; RSS peak %s, now %s\n", c.Idle, describeDelta(w0, w1), mib(hwm), mib(rss))
	return nil
}

// populate creates the namespaces and their objects with c.Workers workers.
func populate(ctx context.Context, cs kubernetes.Interface, dc dynamic.Interface, c config) (int, error) {
	var created atomic.Int64
	var firstErr error
	var mu sync.Mutex
	work := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < c.Workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				n, err := populateNamespace(ctx, cs, dc, i, c.PerNamespace)
				created.Add(int64(n))
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := 0; i < c.Namespaces; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	return int(created.Load()), firstErr
}

func nsName(i int) string { return fmt.Sprintf("scale-%04d", i) }

// populateNamespace creates namespace i (sidecar-injected; every tenth
// ambient) and per objects in it: half Deployments with a Service each, a
// Pod, a PeerAuthentication, an AuthorizationPolicy and a DestinationRule;
// every fifth Deployment adds NET_ADMIN, so reports hold findings.
func populateNamespace(ctx context.Context, cs kubernetes.Interface, dc dynamic.Interface, i, per int) (int, error) {
	ns := nsName(i)
	labels := map[string]string{"istio-injection": "enabled"}
	if i%10 == 0 {
		labels = map[string]string{"istio.io/dataplane-mode": "ambient"}
	}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: labels}}, metav1.CreateOptions{}); err != nil {
		return 0, fmt.Errorf("create namespace %s: %w", ns, err)
	}
	n := 0
	pa := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
		"metadata": map[string]any{"name": "default", "namespace": ns}, "spec": map[string]any{"mtls": map[string]any{"mode": "PERMISSIVE"}}}}
	ap := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
		"metadata": map[string]any{"name": "callers", "namespace": ns},
		"spec":     map[string]any{"rules": []any{map[string]any{"from": []any{map[string]any{"source": map[string]any{"principals": []any{"cluster.local/ns/" + ns + "/sa/app-0"}}}}}}}}}
	dr := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
		"metadata": map[string]any{"name": "app-0", "namespace": ns},
		"spec":     map[string]any{"host": "app-0." + ns + ".svc.cluster.local", "trafficPolicy": map[string]any{"tls": map[string]any{"mode": "ISTIO_MUTUAL"}}}}}
	for _, o := range []struct {
		gvr schema.GroupVersionResource
		u   *unstructured.Unstructured
	}{{gvrPA, pa}, {gvrAP, ap}, {gvrDR, dr}} {
		if _, err := dc.Resource(o.gvr).Namespace(ns).Create(ctx, o.u, metav1.CreateOptions{}); err != nil {
			return n, fmt.Errorf("create %s %s/%s: %w", o.u.GetKind(), ns, o.u.GetName(), err)
		}
		n++
	}
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, pod(ns), metav1.CreateOptions{}); err != nil {
		return n, fmt.Errorf("create pod in %s: %w", ns, err)
	}
	n++
	for j := 0; n < per; j++ {
		if _, err := cs.AppsV1().Deployments(ns).Create(ctx, deployment(ns, j, j%5 == 4), metav1.CreateOptions{}); err != nil {
			return n, fmt.Errorf("create deployment in %s: %w", ns, err)
		}
		n++
		if n == per {
			break
		}
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("app-%d", j), Namespace: ns},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": fmt.Sprintf("app-%d", j)},
				Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}}}}
		if _, err := cs.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			return n, fmt.Errorf("create service in %s: %w", ns, err)
		}
		n++
	}
	return n, nil
}

func deployment(ns string, j int, netAdmin bool) *appsv1.Deployment {
	name := fmt.Sprintf("app-%d", j)
	sc := &corev1.SecurityContext{RunAsUser: ptr(int64(1000)), AllowPrivilegeEscalation: ptr(false)}
	if netAdmin {
		sc.Capabilities = &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN"}}
	}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec: corev1.PodSpec{ServiceAccountName: name, Containers: []corev1.Container{{
					Name: "app", Image: "registry.example.com/app:1.0", SecurityContext: sc,
					Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
				}}},
			},
		},
	}
}

func pod(ns string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "debug", Namespace: ns, Labels: map[string]string{"app": "debug"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "sh", Image: "registry.example.com/toolbox:1.0",
			SecurityContext: &corev1.SecurityContext{RunAsUser: ptr(int64(1000)), AllowPrivilegeEscalation: ptr(false)}}}},
	}
}

func ptr[T any](v T) *T { return &v }

// child is `meshguard serve --background-audit` in its own process.
type child struct {
	cmd     *exec.Cmd
	started time.Time
	metrics string
	logPath string
}

func startMeshguard(ctx context.Context, env *framework.Env, root string, extra []string) (*child, error) {
	dir, err := os.MkdirTemp("", "posturescale-")
	if err != nil {
		return nil, err
	}
	bin := filepath.Join(dir, "meshguard")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/meshguard")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build meshguard: %v\n%s", err, out)
	}
	certs, err := framework.WriteServingCerts(filepath.Join(dir, "certs"))
	if err != nil {
		return nil, err
	}
	ports := make([]int, 3)
	for i := range ports {
		if ports[i], err = framework.FreeLoopbackPort(); err != nil {
			return nil, err
		}
	}
	c := &child{metrics: fmt.Sprintf("127.0.0.1:%d", ports[1]), logPath: filepath.Join(dir, "meshguard.log")}
	logf, err := os.Create(c.logPath)
	if err != nil {
		return nil, err
	}
	c.cmd = exec.Command(bin, "serve", "--kubeconfig", env.KubeconfigPath, "--cert-mode", "files", "--cert-dir", certs.Dir,
		"--host", "127.0.0.1", "--port", strconv.Itoa(ports[0]), "--metrics-bind-address", c.metrics,
		"--health-probe-bind-address", fmt.Sprintf("127.0.0.1:%d", ports[2]), "--namespace", "default",
		"--background-audit", "--log-level", "error")
	c.cmd.Args = append(c.cmd.Args, extra...)
	fmt.Printf("meshguard %s\n", strings.Join(c.cmd.Args[1:], " "))
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	c.started = time.Now()
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start meshguard: %w", err)
	}
	return c, nil
}

func (c *child) stop() {
	if c.cmd.Process != nil {
		_ = c.cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = c.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = c.cmd.Process.Kill()
		}
	}
}

// metric reads one unlabelled gauge or counter from the child's endpoint.
func (c *child) metric(name string) (float64, bool) {
	out, err := exec.Command("curl", "-sf", "--max-time", "5", "http://"+c.metrics+"/metrics").Output()
	if err != nil {
		return 0, false
	}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f, err == nil
		}
	}
	return 0, false
}

func (c *child) waitFirstResync(ctx context.Context) (time.Duration, error) {
	for {
		if v, ok := c.metric("meshguard_posture_last_full_resync_timestamp_seconds"); ok && v > 0 {
			return time.Since(c.started), nil
		}
		if c.cmd.ProcessState != nil {
			return 0, fmt.Errorf("meshguard exited; log %s", c.logPath)
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("no full resync before the timeout (log %s)", c.logPath)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// memory returns the child's peak and current resident set (bytes).
func (c *child) memory() (hwm, rss int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmHWM:":
			hwm = kb * 1024
		case "VmRSS:":
			rss = kb * 1024
		}
	}
	return hwm, rss
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

func countReports(ctx context.Context, dc dynamic.Interface) (int, error) {
	res, _ := reports.FormatOpenReports.Resources()
	l, err := dc.Resource(res).List(ctx, metav1.ListOptions{LabelSelector: reports.LabelManagedBy + "=" + reports.ManagedBy})
	if err != nil {
		return 0, err
	}
	return len(l.Items), nil
}

// report returns a namespace's stored report.
func report(ctx context.Context, dc dynamic.Interface, ns string) (reports.Report, bool) {
	res, _ := reports.FormatOpenReports.Resources()
	u, err := dc.Resource(res).Namespace(ns).Get(ctx, reports.Name, metav1.GetOptions{})
	if err != nil {
		return reports.Report{}, false
	}
	r, err := reports.Parse(u)
	return r, err == nil
}

// timeChanges adds NET_ADMIN to a clean Deployment in c.Changes namespaces,
// one after the other, and times each until MESH0150 names it in the report.
func timeChanges(ctx context.Context, cs kubernetes.Interface, dc dynamic.Interface, c config) ([]time.Duration, error) {
	var out []time.Duration
	patch := []byte(`[{"op":"add","path":"/spec/template/spec/containers/0/securityContext/capabilities","value":{"add":["NET_ADMIN"]}}]`)
	for k := 0; k < c.Changes; k++ {
		ns := nsName((k*37 + 11) % c.Namespaces)
		began := time.Now()
		if _, err := cs.AppsV1().Deployments(ns).Patch(ctx, "app-0", types.JSONPatchType, patch, metav1.PatchOptions{}); err != nil {
			return nil, fmt.Errorf("patch %s/app-0: %w", ns, err)
		}
		for {
			r, ok := report(ctx, dc, ns)
			if ok && hasResult(r, "Deployment", "app-0", "MESH0150") {
				break
			}
			if time.Since(began) > time.Minute {
				return nil, fmt.Errorf("%s/app-0: not in its report within a minute", ns)
			}
			time.Sleep(20 * time.Millisecond)
		}
		out = append(out, time.Since(began))
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}

func hasResult(r reports.Report, kind, name, code string) bool {
	for _, x := range r.Results {
		if x.Subject.Kind == kind && x.Subject.Name == name && x.Rule == code {
			return true
		}
	}
	return false
}

// timeMeshWide deletes every namespace's own PeerAuthentication of a sample
// (so the mesh-wide one decides there), creates a mesh-wide STRICT one in
// istio-system, and times until the sampled namespaces' compliance views say
// STRICT at mesh level; then until every namespace's report was rewritten.
func timeMeshWide(ctx context.Context, dc dynamic.Interface, c config) (time.Duration, error) {
	sample := []string{nsName(1), nsName(c.Namespaces / 2), nsName(c.Namespaces - 1)}
	for _, ns := range sample {
		if err := dc.Resource(gvrPA).Namespace(ns).Delete(ctx, "default", metav1.DeleteOptions{}); err != nil {
			return 0, err
		}
	}
	for _, ns := range sample {
		for {
			if r, ok := report(ctx, dc, ns); ok && r.Compliance != nil && r.Compliance.MTLS.Level == "default" {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if _, err := dc.Resource(schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}).Get(ctx, "istio-system", metav1.GetOptions{}); err != nil {
		ns := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": "istio-system"}}}
		if _, err := dc.Resource(schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}).Create(ctx, ns, metav1.CreateOptions{}); err != nil {
			return 0, err
		}
	}
	pa := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
		"metadata": map[string]any{"name": "default", "namespace": "istio-system"}, "spec": map[string]any{"mtls": map[string]any{"mode": "STRICT"}}}}
	began := time.Now()
	if _, err := dc.Resource(gvrPA).Namespace("istio-system").Create(ctx, pa, metav1.CreateOptions{}); err != nil {
		return 0, err
	}
	for _, ns := range sample {
		for {
			if r, ok := report(ctx, dc, ns); ok && r.Compliance != nil && r.Compliance.MTLS.Mode == "STRICT" && r.Compliance.MTLS.Level == "mesh" {
				break
			}
			if time.Since(began) > 5*time.Minute {
				return 0, fmt.Errorf("%s: the mesh-wide STRICT not in its report within 5 minutes", ns)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return time.Since(began), nil
}

// waitWritesSettle waits until no report has been updated for 5s and
// returns when the last update happened (counted from the mesh-wide change,
// since ago) and how many report updates there were since baseline (the
// sampled namespaces' own PeerAuthentication deletions included).
func waitWritesSettle(ctx context.Context, cs kubernetes.Interface, since time.Duration, baseline float64) (time.Duration, int, error) {
	began := time.Now().Add(-since)
	first, err := apiserverCounts(ctx, cs, "PUT")
	if err != nil {
		return 0, 0, err
	}
	last, lastAt := first["reports"], time.Now()
	for time.Since(lastAt) < 5*time.Second {
		time.Sleep(250 * time.Millisecond)
		now, err := apiserverCounts(ctx, cs, "PUT")
		if err != nil {
			return 0, 0, err
		}
		if now["reports"] != last {
			last, lastAt = now["reports"], time.Now()
		}
		if ctx.Err() != nil {
			return 0, 0, ctx.Err()
		}
	}
	return lastAt.Sub(began), int(last - baseline), nil
}

// apiserverCounts sums apiserver_request_total by resource for the verbs.
func apiserverCounts(ctx context.Context, cs kubernetes.Interface, verbs ...string) (map[string]float64, error) {
	raw, err := cs.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the API server's metrics: %w", err)
	}
	want := map[string]bool{}
	for _, v := range verbs {
		want[v] = true
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, "apiserver_request_total{") {
			continue
		}
		labels, value, ok := strings.Cut(strings.TrimPrefix(line, "apiserver_request_total{"), "} ")
		if !ok {
			continue
		}
		lv := map[string]string{}
		for _, kv := range strings.Split(labels, ",") {
			k, v, _ := strings.Cut(kv, "=")
			lv[k] = strings.Trim(v, `"`)
		}
		if !want[lv["verb"]] {
			continue
		}
		f, _ := strconv.ParseFloat(value, 64)
		out[lv["resource"]] += f
	}
	return out, nil
}

// describeDelta renders the per-resource increase, largest first ("none").
func describeDelta(before, after map[string]float64) string {
	type kv struct {
		k string
		v float64
	}
	var d []kv
	total := 0.0
	for k, v := range after {
		if n := v - before[k]; n > 0 {
			d = append(d, kv{k, n})
			total += n
		}
	}
	if len(d) == 0 {
		return "none"
	}
	sort.Slice(d, func(i, j int) bool { return d[i].v > d[j].v || d[i].v == d[j].v && d[i].k < d[j].k })
	parts := make([]string, 0, len(d))
	for _, x := range d {
		parts = append(parts, fmt.Sprintf("%s %.0f", x.k, x.v))
	}
	return fmt.Sprintf("%.0f (%s)", total, strings.Join(parts, ", "))
}

func pct(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p)
	return sorted[i]
}

func runtimeNumCPU() int { return runtime.NumCPU() }
