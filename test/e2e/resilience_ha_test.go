package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/meshguard/meshguard/rules"
	"github.com/meshguard/meshguard/test/e2e/framework"
)

// haNamespace holds the replicas' leader election Lease; it is excluded from
// the webhook (as meshguard's own namespace is in the chart).
const haNamespace = "e2e-ha-system"

// replica is one `meshguard serve` process built from this tree (or an older
// one) with the production wiring, on its own loopback ports.
type replica struct {
	name                  string
	cmd                   *exec.Cmd
	port, metrics, health int
	log                   string
	exited                chan struct{}
	exitErr               error
}

// startReplica runs bin as `meshguard serve` with the shared certificate
// directory, leader election and the NetworkPolicy controller.
func startReplica(t *testing.T, env *framework.Env, bin, name, certDir, policy string) *replica {
	t.Helper()
	r := &replica{name: name, log: filepath.Join(t.TempDir(), name+".log"), exited: make(chan struct{})}
	for _, p := range []*int{&r.port, &r.metrics, &r.health} {
		var err error
		if *p, err = framework.FreeLoopbackPort(); err != nil {
			t.Fatal(err)
		}
	}
	logf, err := os.Create(r.log)
	if err != nil {
		t.Fatal(err)
	}
	r.cmd = exec.Command(bin, "serve",
		"--kubeconfig", env.KubeconfigPath,
		"--host", "127.0.0.1", "--port", fmt.Sprint(r.port),
		"--metrics-bind-address", fmt.Sprintf("127.0.0.1:%d", r.metrics),
		"--health-probe-bind-address", fmt.Sprintf("127.0.0.1:%d", r.health),
		"--cert-mode", "files", "--cert-dir", certDir,
		"--namespace", haNamespace, "--policy", policy,
		"--leader-elect", "--leader-election-namespace", haNamespace, "--leader-election-id", "e2e-ha",
		"--netpol", "--netpol-mode", "enforce", "--netpol-exclude-namespaces", strings.Join(append(rules.DefaultSystemNamespaces(), "istio-system", haNamespace), ","),
		"--graceful-shutdown-timeout", "10s")
	r.cmd.Stdout, r.cmd.Stderr = logf, logf
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		r.exitErr = r.cmd.Wait()
		_ = logf.Close()
		close(r.exited)
	}()
	t.Cleanup(func() {
		r.stop(syscall.SIGKILL)
		if t.Failed() {
			t.Logf("%s log (last lines):\n%s", name, tail(r.log, 30))
		}
	})
	hc := &http.Client{Timeout: 2 * time.Second}
	if !poll(90*time.Second, 100*time.Millisecond, func() bool {
		select {
		case <-r.exited:
			t.Fatalf("%s exited before it was ready: %v\n%s", name, r.exitErr, tail(r.log, 30))
		default:
		}
		resp, err := hc.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", r.health))
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}) {
		t.Fatalf("%s did not become ready within 90s:\n%s", name, tail(r.log, 30))
	}
	return r
}

// stop signals the process and waits (bounded) until it exits.
func (r *replica) stop(sig syscall.Signal) {
	select {
	case <-r.exited:
		return
	default:
	}
	_ = r.cmd.Process.Signal(sig)
	select {
	case <-r.exited:
	case <-time.After(30 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.exited
	}
}

// leader reports whether the replica holds the controllers' lease, from
// controller-runtime's leader_election_master_status metric.
func (r *replica) leader(t *testing.T) bool {
	return scrapeMetric(t, r.metrics, "leader_election_master_status", map[string]string{"name": "e2e-ha"}) == 1
}

// lbProxy stands in for the Service in front of the replicas: a TCP proxy on
// 127.0.0.1 that sends each connection to the next backend in turn and skips a
// backend it cannot reach, as kube-proxy does once a dead pod's endpoint is
// gone. TLS passes through; every replica serves the same certificate.
type lbProxy struct {
	ln       net.Listener
	mu       sync.Mutex
	backends []int
	next     int
	conns    sync.WaitGroup
}

func startProxy(t *testing.T) *lbProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &lbProxy{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.conns.Add(1)
			go p.serve(c)
		}
	}()
	t.Cleanup(func() { _ = ln.Close() })
	return p
}

func (p *lbProxy) port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// setBackends replaces the ports connections go to.
func (p *lbProxy) setBackends(ports ...int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.backends = append([]int(nil), ports...)
}

func (p *lbProxy) serve(c net.Conn) {
	defer p.conns.Done()
	defer c.Close()
	p.mu.Lock()
	order := make([]int, 0, len(p.backends))
	for i := range p.backends {
		order = append(order, p.backends[(p.next+i)%len(p.backends)])
	}
	p.next++
	p.mu.Unlock()
	var b net.Conn
	for _, port := range order {
		var err error
		if b, err = net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
			break
		}
	}
	if b == nil {
		return
	}
	defer b.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(b, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, b); done <- struct{}{} }()
	<-done
}

// admissionLoad creates Deployments meshguard admits, from workers goroutines,
// until stop is closed or max creates were made; every failure is recorded.
type admissionLoad struct {
	ok       atomic.Int64
	mu       sync.Mutex
	failures []string
	wg       sync.WaitGroup
}

func startLoad(ctx context.Context, cs kubernetes.Interface, ns string, workers, max int, stop <-chan struct{}) *admissionLoad {
	l := &admissionLoad{}
	var seq atomic.Int64
	for w := 0; w < workers; w++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-stop:
					return
				case <-ctx.Done():
					return
				default:
				}
				n := seq.Add(1)
				if n > int64(max) {
					return
				}
				d := &appsv1.Deployment{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("load-%d", n), Namespace: ns},
					Spec: appsv1.DeploymentSpec{
						Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "load"}},
						Template: corev1.PodTemplateSpec{
							ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "load"}},
							Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example.com/load:1.0"}}},
						},
					},
				}
				_, err := cs.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
				if err != nil {
					l.mu.Lock()
					l.failures = append(l.failures, fmt.Sprintf("%s: %v", time.Now().Format("15:04:05.000"), err))
					l.mu.Unlock()
					continue
				}
				l.ok.Add(1)
			}
		}()
	}
	return l
}

func (l *admissionLoad) Failures() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.failures...)
}

// managedSet returns the managed NetworkPolicy names of a namespace, sorted.
func managedSet(t *testing.T, ctx context.Context, cs kubernetes.Interface, ns string) []string {
	t.Helper()
	l, err := cs.NetworkingV1().NetworkPolicies(ns).List(ctx, metav1.ListOptions{LabelSelector: "meshguard.io/managed=true"})
	if err != nil {
		t.Fatal(err)
	}
	return policyNames(l.Items)
}

func policyNames(items []networkingv1.NetworkPolicy) []string {
	out := make([]string, 0, len(items))
	for _, np := range items {
		out = append(out, np.Name)
	}
	sort.Strings(out)
	return out
}

// haSetup starts the control-plane side of an HA test: meshguard's namespace,
// certificates, a policy file, the proxy and a client.
func haSetup(t *testing.T, env *framework.Env) (certDir, policy string, proxy *lbProxy, cs kubernetes.Interface) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	mustKubectl(t, ctx, env, namespaceYAML(haNamespace, nil), "apply", "-f", "-")
	dir := t.TempDir()
	certs, err := framework.WriteServingCerts(filepath.Join(dir, "certs"))
	if err != nil {
		t.Fatal(err)
	}
	policy = filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(policy, []byte("mode: enforce\nadmins:\n  groups: [\"system:masters\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if cs, err = kubernetes.NewForConfig(env.Config); err != nil {
		t.Fatal(err)
	}
	return certs.Dir, policy, startProxy(t), cs
}

// registerVia applies the webhook configuration that bin prints for url and
// waits until the API server calls it; it is removed when the test ends.
func registerVia(t *testing.T, env *framework.Env, bin, name, url, caFile string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "webhook-config", "--name", name, "--url", url, "--ca-bundle", caFile,
		"--namespace", haNamespace).Output()
	if err != nil {
		t.Fatalf("%s webhook-config: %v", bin, err)
	}
	mustKubectl(t, ctx, env, string(out), "apply", "-f", "-")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		mustKubectl(t, ctx, env, "", "delete", "validatingwebhookconfiguration", name, "--ignore-not-found")
	})
	mustKubectl(t, ctx, env, namespaceYAML("e2e-ha-probe", map[string]string{"istio-injection": "enabled"}), "apply", "-f", "-")
	probe := deploymentYAML("e2e-ha-probe", "probe", deploymentOpts{Caps: []string{"NET_ADMIN"}})
	var last framework.KubectlResult
	if !poll(30*time.Second, 100*time.Millisecond, func() bool {
		last = kubectl(t, ctx, env, probe, "apply", "--dry-run=server", "-f", "-")
		return last.ExitCode != 0 && strings.Contains(last.Stderr, "MESH0150")
	}) {
		t.Fatalf("the webhook did not take effect within 30s; last apply:\n%s", last)
	}
}

// buildMeshguard builds cmd/meshguard from dir into out.
func buildMeshguard(t *testing.T, ctx context.Context, dir, out string) {
	t.Helper()
	build := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/meshguard")
	build.Dir = dir
	build.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build in %s: %v\n%s", dir, err, b)
	}
}

// TestResilienceHALeaderKilled runs two replicas of `meshguard serve` behind a
// proxy, kills the leader (SIGKILL) under admission load, and checks that the
// survivor keeps answering (no failed admission beyond the requests in
// flight on the killed replica), takes over the NetworkPolicy controller
// within the lease time, and that no managed NetworkPolicy went missing.
func TestResilienceHALeaderKilled(t *testing.T) {
	env := framework.Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin := filepath.Join(t.TempDir(), "meshguard")
	buildMeshguard(t, ctx, env.Root, bin)
	certDir, policy, proxy, cs := haSetup(t, env)

	a := startReplica(t, env, bin, "replica-a", certDir, policy)
	b := startReplica(t, env, bin, "replica-b", certDir, policy)
	proxy.setBackends(a.port, b.port)
	registerVia(t, env, bin, "meshguard-e2e-ha", fmt.Sprintf("https://127.0.0.1:%d", proxy.port()), filepath.Join(certDir, "ca.crt"))

	// Namespaces the leader prepares before it dies.
	want := rules.NetpolPolicyNames("sidecar")
	sort.Strings(want)
	guarded := []string{"e2e-ha-1", "e2e-ha-2", "e2e-ha-3"}
	for _, ns := range guarded {
		mustKubectl(t, ctx, env, namespaceYAML(ns, map[string]string{"istio-injection": "enabled"}), "apply", "-f", "-")
	}
	for _, ns := range guarded {
		if !poll(60*time.Second, 100*time.Millisecond, func() bool { return fmt.Sprint(managedSet(t, ctx, cs, ns)) == fmt.Sprint(want) }) {
			t.Fatalf("%s did not get its managed NetworkPolicies %v: %v", ns, want, managedSet(t, ctx, cs, ns))
		}
	}
	var leader, survivor *replica
	if !poll(30*time.Second, 100*time.Millisecond, func() bool {
		switch {
		case a.leader(t):
			leader, survivor = a, b
		case b.leader(t):
			leader, survivor = b, a
		}
		return leader != nil
	}) {
		t.Fatal("no replica became leader within 30s")
	}
	if survivor.leader(t) {
		t.Fatal("both replicas say they are the leader")
	}

	load := "e2e-ha-load"
	mustKubectl(t, ctx, env, namespaceYAML(load, map[string]string{"istio-injection": "enabled"}), "apply", "-f", "-")
	const workers = 4
	stop := make(chan struct{})
	l := startLoad(ctx, cs, load, workers, 20000, stop)
	// Decisions flow through both replicas before the kill.
	if !poll(30*time.Second, 50*time.Millisecond, func() bool { return l.ok.Load() >= 200 }) {
		t.Fatalf("the load did not reach 200 admissions within 30s (failures: %v)", l.Failures())
	}
	before := l.ok.Load()
	leader.stop(syscall.SIGKILL)
	killed := time.Now()
	// The survivor takes over the controllers within the lease time
	// (controller-runtime's default lease is 15 s), and admissions go on.
	if !poll(60*time.Second, 200*time.Millisecond, func() bool { return survivor.leader(t) }) {
		t.Fatalf("the survivor did not take the lease within 60s of the leader's death")
	}
	t.Logf("the survivor took over %s after the leader was killed", time.Since(killed).Round(100*time.Millisecond))
	mustKubectl(t, ctx, env, namespaceYAML("e2e-ha-after", map[string]string{"istio-injection": "enabled"}), "apply", "-f", "-")
	if !poll(60*time.Second, 100*time.Millisecond, func() bool {
		return fmt.Sprint(managedSet(t, ctx, cs, "e2e-ha-after")) == fmt.Sprint(want)
	}) {
		t.Errorf("the survivor's controller did not prepare a namespace created after the takeover: %v", managedSet(t, ctx, cs, "e2e-ha-after"))
	}
	if !poll(30*time.Second, 50*time.Millisecond, func() bool { return l.ok.Load() >= before+200 }) {
		t.Errorf("admissions did not go on after the kill: %d before, %d now", before, l.ok.Load())
	}
	close(stop)
	l.wg.Wait()

	for _, ns := range guarded {
		if got := managedSet(t, ctx, cs, ns); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s lost managed NetworkPolicies across the failover: have %v, want %v", ns, got, want)
		}
	}
	fails := l.Failures()
	t.Logf("%d admissions, %d failed: %v", l.ok.Load(), len(fails), fails)
	if len(fails) > workers {
		t.Errorf("%d admissions failed; at most the %d in flight on the killed replica may", len(fails), workers)
	}
}

// previousChartRevision finds the last commit of the previous chart version:
// the parent of the commit that set charts/meshguard/Chart.yaml's current
// version.
func previousChartRevision(ctx context.Context, root string) (string, error) {
	git := func(args ...string) (string, error) {
		out, err := exec.CommandContext(ctx, "git", append([]string{"-C", root}, args...)...).Output()
		return strings.TrimSpace(string(out)), err
	}
	version := func(rev string) string {
		out, err := git("show", rev+":charts/meshguard/Chart.yaml")
		if err != nil {
			return ""
		}
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, "version:") {
				return strings.TrimSpace(strings.TrimPrefix(line, "version:"))
			}
		}
		return ""
	}
	cur := version("HEAD")
	revs, err := git("log", "--format=%H", "--", "charts/meshguard/Chart.yaml")
	if err != nil {
		return "", fmt.Errorf("git log: %w", err)
	}
	for _, rev := range strings.Fields(revs) {
		if version(rev) == cur && version(rev+"^") != "" && version(rev+"^") != cur {
			return rev + "^", nil
		}
	}
	return "", errors.New("no earlier chart version in the history")
}

// TestResilienceHARollingUpgrade rolls a running replica of the previous
// chart version's meshguard to this one under admission load, as a
// Deployment's rolling update does (the new pod becomes ready and joins the
// Service, helm applies the new webhook configuration, the old pod leaves the
// endpoints and gets SIGTERM), then rolls this version once more.
//
// The previous version (0.1.0) closes its keep-alive connections at once on
// SIGTERM, so the API server can meet a connection closed under a request:
// those few admissions (at most one per connection in use) may fail, and the
// test says how many did. This version drains first (--shutdown-delay: every
// response closes its connection, /readyz fails), so rolling it fails none.
func TestResilienceHARollingUpgrade(t *testing.T) {
	env := framework.Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "git", "-C", env.Root, "rev-parse", "--is-shallow-repository").Output(); err != nil || strings.TrimSpace(string(out)) != "false" {
		t.Skipf("the previous chart version's source needs the repository's full history (git rev-parse --is-shallow-repository: %q, %v); clone without --depth to run this test", strings.TrimSpace(string(out)), err)
	}
	prev, err := previousChartRevision(ctx, env.Root)
	if err != nil {
		t.Fatalf("the previous chart version's source: %v", err)
	}
	src := t.TempDir()
	archive := exec.CommandContext(ctx, "sh", "-c", fmt.Sprintf("git -C %q archive %s | tar -x -C %q", env.Root, prev, src))
	if out, err := archive.CombinedOutput(); err != nil {
		t.Fatalf("git archive %s: %v\n%s", prev, err, out)
	}
	oldBin, newBin := filepath.Join(t.TempDir(), "meshguard-old"), filepath.Join(t.TempDir(), "meshguard")
	buildMeshguard(t, ctx, src, oldBin)
	buildMeshguard(t, ctx, env.Root, newBin)
	certDir, policy, proxy, cs := haSetup(t, env)

	old := startReplica(t, env, oldBin, "replica-old", certDir, policy)
	proxy.setBackends(old.port)
	url := fmt.Sprintf("https://127.0.0.1:%d", proxy.port())
	registerVia(t, env, oldBin, "meshguard-e2e-upgrade", url, filepath.Join(certDir, "ca.crt"))

	load := "e2e-upgrade-load"
	mustKubectl(t, ctx, env, namespaceYAML(load, map[string]string{"istio-injection": "enabled"}), "apply", "-f", "-")
	const workers = 4
	stop := make(chan struct{})
	l := startLoad(ctx, cs, load, workers, 40000, stop)
	progress := func(what string, n int64) {
		t.Helper()
		mark := l.ok.Load()
		if !poll(30*time.Second, 50*time.Millisecond, func() bool { return l.ok.Load() >= mark+n }) {
			t.Fatalf("admissions stalled %s (failures: %v)", what, l.Failures())
		}
	}
	// roll replaces from with a new replica of bin, the way a rolling
	// update does, and returns the new replica.
	roll := func(from *replica, name string) *replica {
		t.Helper()
		to := startReplica(t, env, newBin, name, certDir, policy)
		proxy.setBackends(from.port, to.port)
		registerVia(t, env, newBin, "meshguard-e2e-upgrade", url, filepath.Join(certDir, "ca.crt"))
		progress("after the new replica joined", 100)
		proxy.setBackends(to.port)
		from.stop(syscall.SIGTERM)
		progress("after the old replica stopped", 200)
		return to
	}
	progress("on the previous version", 100)
	cur := roll(old, "replica-new")
	fromPrevious := len(l.Failures())
	roll(cur, "replica-new-2")
	close(stop)
	l.wg.Wait()
	fails := l.Failures()
	t.Logf("%d admissions; %d failed rolling from the previous version (%s), %d rolling this version", l.ok.Load(), fromPrevious, prev, len(fails)-fromPrevious)
	if fromPrevious > workers {
		t.Errorf("%d admissions failed rolling from the previous version; at most one per connection in use (%d) may: %v", fromPrevious, workers, fails[:fromPrevious])
	}
	if len(fails) > fromPrevious {
		t.Errorf("rolling this version (which drains before it stops) failed %d admissions: %v", len(fails)-fromPrevious, fails[fromPrevious:])
	}
}
