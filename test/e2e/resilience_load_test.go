package e2e_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/meshguard/meshguard/rules"
	"github.com/meshguard/meshguard/test/e2e/framework"
	"github.com/meshguard/meshguard/test/hostile"
	"github.com/meshguard/meshguard/webhook"
)

// The resilience tests of issue 10, items 1 and 2, run against a real
// `meshguard serve` process (built from ./cmd/meshguard), so that its memory
// is its own: it runs with GOMEMLIMIT=460MiB, what the chart's 512 MiB limit
// gives at --memory-limit-ratio 0.9, and the tests read its peak RSS
// (VmHWM) from /proc.

// chartMemoryLimit is the chart's memory limit: the serve process's peak RSS
// must stay under it.
const chartMemoryLimit = 512 << 20

// serveProcess is a `meshguard serve` child process.
type serveProcess struct {
	*meshguard
	cmd *exec.Cmd
	// exited is closed when the process exits; err is its Wait error.
	exited chan struct{}
	err    error
}

// builtMeshguard builds ./cmd/meshguard once per test binary.
var builtMeshguard = sync.OnceValues(func() (string, error) {
	root, err := framework.RepoRoot()
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "meshguard-e2e-bin-")
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "meshguard")
	build := exec.Command("go", "build", "-o", out, "./cmd/meshguard")
	build.Dir = root
	if b, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/meshguard: %v\n%s", err, b)
	}
	return out, nil
})

// startServeProcess starts `meshguard serve` in files mode on 127.0.0.1 with
// the default policy and extra flags, waits (bounded) for /readyz and stops it when the test ends.
func startServeProcess(t *testing.T, env *framework.Env, extra ...string) *serveProcess {
	t.Helper()
	bin, err := builtMeshguard()
	if err != nil {
		t.Fatal(err)
	}
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
	logFile, err := os.Create(m.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"serve", "--kubeconfig", env.KubeconfigPath, "--cert-mode", "files", "--cert-dir", certs.Dir,
		"--host", "127.0.0.1", "--port", strconv.Itoa(m.Port),
		"--metrics-bind-address", fmt.Sprintf("127.0.0.1:%d", m.MetricsPort),
		"--health-probe-bind-address", fmt.Sprintf("127.0.0.1:%d", m.HealthPort),
		"--graceful-shutdown-timeout", "5s"}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "GOMEMLIMIT=460MiB")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &serveProcess{meshguard: m, cmd: cmd, exited: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-p.exited
		}
		_ = logFile.Close()
		if t.Failed() {
			t.Logf("meshguard serve log (last lines):\n%s", tail(m.LogPath, 40))
		}
	})
	hc := &http.Client{Timeout: 2 * time.Second}
	if !poll(60*time.Second, 100*time.Millisecond, func() bool {
		select {
		case <-p.exited:
			t.Fatalf("meshguard serve exited before it was ready: %v\n%s", p.err, tail(m.LogPath, 40))
		default:
		}
		resp, err := hc.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", m.HealthPort))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}) {
		t.Fatalf("meshguard serve was not ready within 60s\n%s", tail(m.LogPath, 40))
	}
	return p
}

// alive reports whether the process still runs.
func (p *serveProcess) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// peakRSS is the process's peak resident set size (VmHWM).
func (p *serveProcess) peakRSS(t *testing.T) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		t.Fatalf("read the process status: %v", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/PID/status")
	return 0
}

// client is an HTTPS client for the webhook port that trusts the test CA.
func (p *serveProcess) client(conns int) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:     &tls.Config{RootCAs: p.Certs.Pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12},
			MaxIdleConnsPerHost: conns,
		},
	}
}

// reviewResult is what a POST of a review got.
type reviewResult struct {
	status     int
	retryAfter string
	review     admissionv1.AdmissionReview
	err        error
}

func postLoadReview(c *http.Client, url string, body []byte) reviewResult {
	resp, err := c.Post(url+webhook.ValidatePath, "application/json", bytes.NewReader(body))
	if err != nil {
		return reviewResult{err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	r := reviewResult{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), err: err}
	if err == nil && resp.StatusCode == http.StatusOK {
		r.err = json.Unmarshal(data, &r.review)
	}
	return r
}

// normalReview is a 7 KB CREATE review of the bench Pod, as the API server
// sends it.
func normalReview(t *testing.T, env *framework.Env, uid string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(env.Root, "rules", "testdata", "bench", "pod.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var pod map[string]any
	if err := yaml.Unmarshal(data, &pod); err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(map[string]any{
		"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
		"request": map[string]any{
			"uid": uid, "kind": map[string]any{"group": "", "version": "v1", "kind": "Pod"},
			"resource":  map[string]any{"group": "", "version": "v1", "resource": "pods"},
			"namespace": "bookinfo", "operation": "CREATE", "name": "productpage",
			"userInfo": map[string]any{"username": "alice"}, "object": pod,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// TestResilienceFlood: concurrent floods of 1, 5.6 and 10 MB UPDATE reviews
// (objects with thousands of containers, every one with findings) sent
// straight to the webhook port neither kill `meshguard serve` nor push its
// peak RSS over the chart's 512 MiB limit; what does not fit in the in-flight
// budget gets 429 with Retry-After, a review over the size limit gets 413,
// no flood request is ever allowed; and meanwhile a normal 7 KB review sent
// directly, and Deployments created through the real API server, get the
// same decisions as without the flood.
func TestResilienceFlood(t *testing.T) {
	env := framework.Shared(t)
	p := startServeProcess(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cs, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "resilience"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cs.CoreV1().Namespaces().Delete(context.Background(), "resilience", metav1.DeleteOptions{})
	})
	p.registerValidating(t, ctx, env, cs, "resilience")

	probeClient := p.client(1)
	normal := normalReview(t, env, "normal")
	want := postLoadReview(probeClient, p.URL(), normal)
	if want.err != nil || want.status != http.StatusOK || want.review.Response == nil {
		t.Fatalf("the normal review before the flood: %d %v", want.status, want.err)
	}

	// The flood: 12 workers, 4 requests each (48 reviews, 230 MB).
	sizes := []int{1 << 20, 5_600_000, 5_600_000, 10 << 20}
	bodies := map[int][]byte{}
	for _, s := range sizes {
		bodies[s] = hostile.Review(s, "resilience", fmt.Sprintf("flood-%d", s))
	}
	const workers, perWorker = 12, 4
	var (
		mu       sync.Mutex
		outcomes = map[string]int{}
		flooding atomic.Bool
		wg       sync.WaitGroup
	)
	flooding.Store(true)
	floodClient := p.client(workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				size := sizes[(w+i)%len(sizes)]
				r := postLoadReview(floodClient, p.URL(), bodies[size])
				var o string
				switch {
				case r.err != nil:
					o = "transport error: " + r.err.Error()
				case r.status == http.StatusTooManyRequests && r.retryAfter != "":
					o = "429 with Retry-After"
				case r.status == http.StatusOK && r.review.Response != nil && r.review.Response.Allowed:
					o = "ALLOWED"
				case r.status == http.StatusOK && r.review.Response != nil && r.review.Response.Result != nil:
					o = fmt.Sprintf("%d MB: refused with %d", size>>20, r.review.Response.Result.Code)
				default:
					o = fmt.Sprintf("HTTP %d", r.status)
				}
				mu.Lock()
				outcomes[o]++
				mu.Unlock()
			}
		}()
	}
	go func() { wg.Wait(); flooding.Store(false) }()

	// While it runs: the normal review directly, and Deployments through the
	// API server (dry run), each at most 200 times.
	var latencies []time.Duration
	probes, duringFlood := 0, 0
	for ; probes < 200 && flooding.Load(); probes++ {
		began := time.Now()
		got := postLoadReview(probeClient, p.URL(), normal)
		latencies = append(latencies, time.Since(began))
		if got.err != nil || got.status != http.StatusOK || got.review.Response == nil {
			t.Fatalf("the normal review during the flood: HTTP %d, %v", got.status, got.err)
		}
		if g, w := got.review.Response, want.review.Response; g.Allowed != w.Allowed || g.Result.Code != w.Result.Code || g.Result.Message != w.Result.Message {
			t.Fatalf("the normal review was decided differently during the flood: allowed %v code %d %q, before: allowed %v code %d %q",
				g.Allowed, g.Result.Code, g.Result.Message, w.Allowed, w.Result.Code, w.Result.Message)
		}
		if probes%10 == 0 {
			checkAPIServerDecisions(t, ctx, cs, probes)
		}
		if flooding.Load() {
			duringFlood++
		}
	}
	wg.Wait()
	if duringFlood == 0 {
		t.Error("no normal review was decided while the flood ran")
	}
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	t.Logf("flood outcomes: %v", outcomes)
	t.Logf("normal reviews during the flood: %d, latency p50 %v, max %v", duringFlood, latencies[len(latencies)/2], latencies[len(latencies)-1])
	if !p.alive() {
		t.Fatalf("meshguard serve died: %v", p.err)
	}
	rss := p.peakRSS(t)
	t.Logf("peak RSS %d MiB", rss>>20)
	if rss >= chartMemoryLimit {
		t.Errorf("peak RSS %d MiB reached the chart's 512 MiB limit", rss>>20)
	}
	if outcomes["ALLOWED"] > 0 {
		t.Errorf("%d flood reviews were allowed", outcomes["ALLOWED"])
	}
	if outcomes["429 with Retry-After"] == 0 {
		t.Error("no flood review got 429 with Retry-After")
	}
	if outcomes["10 MB: refused with 413"] == 0 {
		t.Error("no 10 MB review got 413")
	}
	for o := range outcomes {
		if strings.HasPrefix(o, "transport error") || strings.HasPrefix(o, "HTTP ") {
			t.Errorf("flood requests failed without an answer: %s (%d)", o, outcomes[o])
		}
	}
	// Either budget may refuse first (the byte budget, or the count of large
	// reviews decided at once), depending on how the flood's requests
	// interleave on a loaded machine; both answer 429.
	inflight := p.metric(t, "meshguard_admission_rejected_total", map[string]string{"reason": "inflight_bytes"})
	large := p.metric(t, "meshguard_admission_rejected_total", map[string]string{"reason": "large_reviews"})
	if inflight+large < float64(outcomes["429 with Retry-After"]) || inflight+large == 0 {
		t.Errorf("meshguard_admission_rejected_total: inflight_bytes %v + large_reviews %v does not count the %d 429 answers", inflight, large, outcomes["429 with Retry-After"])
	}
}

// registerValidating registers the validating webhook configuration only
// (no enrollment, so no shared namespace is touched), waits (bounded) until
// the API server calls it, and deletes it when the test ends, waiting until
// the API server stops calling it.
func (p *serveProcess) registerValidating(t *testing.T, ctx context.Context, env *framework.Env, cs kubernetes.Interface, ns string) {
	t.Helper()
	cat, err := rules.DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	co := webhook.ConfigOptions{
		Name: "meshguard-e2e-resilience", URL: p.URL(), CABundle: p.Certs.CAPEM,
		ExcludeNamespaces: append(append([]string{}, rules.NewConfig().SystemNamespaces...), ownNamespace),
	}
	mustKubectl(t, ctx, env, mustYAML(webhook.ValidatingConfiguration(cat, co)), "apply", "-f", "-")
	denied := func() bool {
		_, err := cs.AppsV1().Deployments(ns).Create(ctx, resilienceDeployment(ns, "probe", []corev1.Capability{"NET_ADMIN"}),
			metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err != nil && strings.Contains(err.Error(), "MESH0150")
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		mustKubectl(t, ctx, env, "", "delete", "validatingwebhookconfiguration", co.Name, "--ignore-not-found")
		if !poll(30*time.Second, 100*time.Millisecond, func() bool { return !denied() }) {
			t.Errorf("the API server still calls the webhook 30s after its configuration was deleted")
		}
	})
	if !poll(30*time.Second, 100*time.Millisecond, denied) {
		t.Fatal("the validating webhook did not take effect within 30s")
	}
}

func resilienceDeployment(ns, name string, caps []corev1.Capability) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	c := corev1.Container{Name: "app", Image: "registry.example.com/app:1.0"}
	if caps != nil {
		c.SecurityContext = &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: caps}}
	}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{Containers: []corev1.Container{c}}},
		},
	}
}

// checkAPIServerDecisions creates two Deployments through the API server
// (dry run): one adding NET_ADMIN must be denied with MESH0150, a clean one
// admitted.
func checkAPIServerDecisions(t *testing.T, ctx context.Context, cs kubernetes.Interface, i int) {
	t.Helper()
	mk := func(name string, caps []corev1.Capability) *appsv1.Deployment {
		return resilienceDeployment("resilience", name, caps)
	}
	dry := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
	_, err := cs.AppsV1().Deployments("resilience").Create(ctx, mk(fmt.Sprintf("bad-%d", i), []corev1.Capability{"NET_ADMIN"}), dry)
	if err == nil || !strings.Contains(err.Error(), "MESH0150") {
		t.Fatalf("a Deployment adding NET_ADMIN through the API server during the flood: %v", err)
	}
	if _, err := cs.AppsV1().Deployments("resilience").Create(ctx, mk(fmt.Sprintf("good-%d", i), nil), dry); err != nil {
		t.Fatalf("a clean Deployment through the API server during the flood: %v", err)
	}
}

// TestResilienceSlowClients: connections that send their header or body
// slowly, or sit idle after a request, are closed by the server
// (--read-header-timeout 2s, --read-timeout 3s, --idle-timeout 3s here),
// while a normal review is still decided, and connections announcing 7 MB
// bodies cost only what they sent. 60 slow 7 KB bodies, 100 slow 7 MB bodies,
// 20 slow headers and 10 idle connections; each trickles a byte every 500 ms
// until the server closes it, at most 30 s.
func TestResilienceSlowClients(t *testing.T) {
	env := framework.Shared(t)
	p := startServeProcess(t, env, "--read-header-timeout", "2s", "--read-timeout", "3s", "--idle-timeout", "3s")
	tlsConfig := &tls.Config{RootCAs: p.Certs.Pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	addr := fmt.Sprintf("127.0.0.1:%d", p.Port)
	normal := normalReview(t, env, "normal")

	type result struct {
		kind   string
		closed bool // by the server (EOF or reset), not by our 30 s bound
		err    error
	}
	results := make(chan result, 200)
	slow := func(kind, header string, trickle bool) {
		conn, err := tls.Dial("tcp", addr, tlsConfig)
		if err != nil {
			results <- result{kind: kind, err: err}
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := io.WriteString(conn, header); err != nil {
			results <- result{kind: kind, err: err}
			return
		}
		stop := make(chan struct{})
		defer close(stop)
		if trickle {
			go func() {
				tick := time.NewTicker(500 * time.Millisecond)
				defer tick.Stop()
				for {
					select {
					case <-stop:
						return
					case <-tick.C:
						if _, err := conn.Write([]byte{' '}); err != nil {
							return
						}
					}
				}
			}()
		}
		// Read until the server closes the connection (a response to a
		// timed-out request may come first).
		_, err = io.Copy(io.Discard, conn)
		var ne net.Error
		timedOut := errors.As(err, &ne) && ne.Timeout()
		results <- result{kind: kind, closed: !timedOut}
	}
	body := fmt.Sprintf("POST /validate HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{", addr, len(normal))
	n := 0
	for range 60 {
		go slow("slow body", body, true)
		n++
	}
	// Announcing 7 MB and sending a byte at a time: before issue 10 the
	// buffer was allocated at the announced length (300 such connections
	// made a 2.1 GB heap).
	big := fmt.Sprintf("POST /validate HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{", addr, 7_000_000)
	for range 100 {
		go slow("slow 7 MB body", big, true)
		n++
	}
	for range 20 {
		go slow("slow header", "POST /validate HTTP/1.1\r\nHost: "+addr+"\r\nX-Slow: ", true)
		n++
	}
	// Idle: one complete request, then nothing.
	full := fmt.Sprintf("POST /validate HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", addr, len(normal), normal)
	for range 10 {
		go slow("idle", full, false)
		n++
	}

	// A normal review is decided while they hold their connections.
	c := p.client(1)
	if got := postLoadReview(c, p.URL(), normal); got.err != nil || got.status != http.StatusOK || got.review.Response == nil || got.review.Response.UID != "normal" {
		t.Errorf("a normal review while slow clients hold connections: HTTP %d %v", got.status, got.err)
	}
	counts := map[string]int{}
	for range n {
		r := <-results
		switch {
		case r.err != nil:
			t.Errorf("%s connection: %v", r.kind, r.err)
		case !r.closed:
			t.Errorf("a %s connection was still open after 30 s", r.kind)
		default:
			counts[r.kind]++
		}
	}
	t.Logf("closed by the server: %v", counts)
	if !p.alive() {
		t.Fatalf("meshguard serve died: %v", p.err)
	}
	// 100 connections announcing 7 MB cost what they sent, not 700 MB.
	if rss := p.peakRSS(t); rss >= chartMemoryLimit/2 {
		t.Errorf("peak RSS %d MiB with slow clients, want under %d MiB", rss>>20, chartMemoryLimit>>21)
	} else {
		t.Logf("peak RSS %d MiB", rss>>20)
	}
}

// TestResilienceOverloadNeverAllows: a review the webhook refuses for lack of
// budget is not admitted by the real API server (it retries the 429, then
// applies failurePolicy Fail), and is decided normally once the budget is
// free. A client holds 7 MB of the 10 MiB budget by sending a 7 MB body all
// but its last bytes; the API server then sends the review of a clean
// 900 KB Deployment (its environment), which does not fit.
func TestResilienceOverloadNeverAllows(t *testing.T) {
	env := framework.Shared(t)
	p := startServeProcess(t, env, "--max-inflight-bytes", "10Mi", "--read-timeout", "60s")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cs, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	const ns = "resilience-overload"
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	p.registerValidating(t, ctx, env, cs, ns)

	big := resilienceDeployment(ns, "big", nil)
	for i := range 9 {
		big.Spec.Template.Spec.Containers[0].Env = append(big.Spec.Template.Spec.Containers[0].Env,
			corev1.EnvVar{Name: fmt.Sprintf("BLOB_%d", i), Value: strings.Repeat("x", 100_000)})
	}
	create := func() error {
		_, err := cs.AppsV1().Deployments(ns).Create(ctx, big, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err
	}

	// The holder: 7 MB announced, all but 10 KB sent.
	conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p.Port), &tls.Config{RootCAs: p.Certs.Pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const announced = 7_000_000
	if _, err := fmt.Fprintf(conn, "POST /validate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", announced); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(bytes.Repeat([]byte(" "), announced-10_000)); err != nil {
		t.Fatal(err)
	}
	if !poll(30*time.Second, 50*time.Millisecond, func() bool {
		return p.metric(t, "meshguard_admission_inflight_bytes", nil) >= announced-(64<<10)
	}) {
		t.Fatalf("the holder's bytes are not in flight: %v", p.metric(t, "meshguard_admission_inflight_bytes", nil))
	}

	err = create()
	if err == nil {
		t.Fatal("the API server admitted a Deployment whose review the webhook refused for lack of budget")
	}
	if !strings.Contains(err.Error(), "failed calling webhook") || strings.Contains(err.Error(), "denied the request") {
		t.Errorf("want the failurePolicy's error for a webhook that could not answer, got: %v", err)
	}
	t.Logf("while the budget was held: %v", err)
	if n := p.metric(t, "meshguard_admission_rejected_total", map[string]string{"reason": "inflight_bytes"}); n == 0 {
		t.Error("meshguard_admission_rejected_total{reason=\"inflight_bytes\"} is 0")
	}

	// Once the holder is gone the same review is decided (admitted: it is
	// clean).
	_ = conn.Close()
	if !poll(30*time.Second, 50*time.Millisecond, func() bool {
		return p.metric(t, "meshguard_admission_inflight_bytes", nil) == 0
	}) {
		t.Fatal("the holder's bytes were not released after it closed")
	}
	if err := create(); err != nil {
		t.Errorf("the clean Deployment once the budget is free: %v", err)
	}
	if !p.alive() {
		t.Fatalf("meshguard serve died: %v", p.err)
	}
}
