// Command matchbench measures what the webhook configuration's
// matchConditions save through a real kube-apiserver: the writes a Deployment
// rollout makes (the Deployment, the ReplicaSet its controller creates, and
// the metadata-only UPDATEs controllers and garbage collection make) timed
// with no webhook, with meshguard judging every request, and with meshguard's
// default matchConditions (owned ReplicaSets and UPDATEs that change nothing
// the rules read are never sent). It prints p50/p99 per write and per
// rollout, the ratios to no webhook, and the webhook calls per rollout.
//
//	go run ./test/matchbench            (make bench runs it; needs make tools)
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/meshguard/meshguard/rules"
	"github.com/meshguard/meshguard/test/e2e/framework"
	"github.com/meshguard/meshguard/webhook"
)

const ns = "bench"

func main() {
	rollouts := flag.Int("rollouts", 150, "measured rollouts per condition")
	rounds := flag.Int("rounds", 3, "alternating rounds the rollouts are split into")
	flag.Parse()
	if *rollouts < 1 || *rollouts > 5000 || *rounds < 1 || *rounds > *rollouts {
		fmt.Fprintln(os.Stderr, "matchbench: -rollouts must be in [1, 5000] and -rounds in [1, rollouts]")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	if err := run(ctx, *rollouts, *rounds); err != nil {
		fmt.Fprintln(os.Stderr, "matchbench:", err)
		os.Exit(1)
	}
}

// condition is one webhook registration to measure.
type condition struct {
	name string
	cfg  *webhook.ConfigOptions // nil: no webhook
	// per write kind, then per rollout
	lat   map[string][]time.Duration
	calls float64
}

func run(ctx context.Context, rollouts, rounds int) error {
	root, err := framework.RepoRoot()
	if err != nil {
		return err
	}
	bin := filepath.Join(root, "bin")
	if missing := framework.MissingBinaries(bin); len(missing) > 0 {
		return fmt.Errorf("%s missing in %s: run `make tools`", strings.Join(missing, ", "), bin)
	}
	env, err := framework.Start(framework.Options{BinDir: bin, NoIstioCRDs: true})
	if err != nil {
		return err
	}
	defer env.Stop() //nolint:errcheck // best effort at exit

	dir, err := os.MkdirTemp("", "matchbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	certs, err := framework.WriteServingCerts(filepath.Join(dir, "certs"))
	if err != nil {
		return err
	}
	mg := filepath.Join(dir, "meshguard")
	build := exec.CommandContext(ctx, "go", "build", "-o", mg, "./cmd/meshguard")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}
	port, _ := framework.FreeLoopbackPort()
	metrics, _ := framework.FreeLoopbackPort()
	health, _ := framework.FreeLoopbackPort()
	logf, err := os.Create(filepath.Join(dir, "meshguard.log"))
	if err != nil {
		return err
	}
	srv := exec.CommandContext(ctx, mg, "serve", "--kubeconfig", env.KubeconfigPath, "--host", "127.0.0.1", "--port", fmt.Sprint(port),
		"--cert-mode", "files", "--cert-dir", certs.Dir, "--metrics-bind-address", fmt.Sprintf("127.0.0.1:%d", metrics),
		"--health-probe-bind-address", fmt.Sprintf("127.0.0.1:%d", health), "--shutdown-delay", "0s", "--log-level", "error")
	srv.Stdout, srv.Stderr = logf, logf
	if err := srv.Start(); err != nil {
		return err
	}
	defer func() { _ = srv.Process.Kill(); _ = srv.Wait() }()
	if err := waitReady(ctx, health); err != nil {
		return err
	}

	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = 10000, 10000
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{"istio-injection": "enabled"}}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	cat, err := rules.DefaultCatalog()
	if err != nil {
		return err
	}
	base := webhook.ConfigOptions{URL: fmt.Sprintf("https://127.0.0.1:%d", port), CABundle: certs.CAPEM,
		ExcludeNamespaces: rules.DefaultSystemNamespaces()}
	all, skip := base, base
	all.JudgeUnchangedUpdates, all.JudgeOwnedWorkloads = true, true
	conds := []*condition{{name: "no webhook"}, {name: "meshguard, every request", cfg: &all}, {name: "meshguard, matchConditions (default)", cfg: &skip}}
	for _, c := range conds {
		c.lat = map[string][]time.Duration{}
	}
	seq := 0
	per := rollouts / rounds
	for r := 0; r < rounds; r++ {
		for _, c := range conds {
			if err := register(ctx, cs, cat, c.cfg); err != nil {
				return err
			}
			before, err := scrape(metrics)
			if err != nil {
				return err
			}
			for i := 0; i < per; i++ {
				seq++
				if err := rollout(ctx, cs, seq, c.lat); err != nil {
					return fmt.Errorf("%s: %w", c.name, err)
				}
			}
			after, err := scrape(metrics)
			if err != nil {
				return err
			}
			c.calls += after - before
			fmt.Fprintf(os.Stderr, "matchbench: round %d, %s: %d rollouts\n", r+1, c.name, per)
		}
	}
	if err := register(ctx, cs, cat, nil); err != nil {
		return err
	}
	n := float64(per * rounds)
	fmt.Printf("Deployment rollouts through kube-apiserver %s (etcd without fsync), %d per condition in %d alternating rounds\n\n", "(envtest)", per*rounds, rounds)
	fmt.Printf("| write | condition | p50 | p99 | p50 ratio | p99 ratio |\n|---|---|---|---|---|---|\n")
	for _, w := range []string{"create Deployment", "create owned ReplicaSet", "finalizer UPDATE", "whole rollout"} {
		for _, c := range conds {
			l := c.lat[w]
			sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
			b := conds[0].lat[w]
			fmt.Printf("| %s | %s | %s | %s | %.2fx | %.2fx |\n", w, c.name, pct(l, 0.5), pct(l, 0.99),
				float64(pct(l, 0.5))/float64(pct(b, 0.5)), float64(pct(l, 0.99))/float64(pct(b, 0.99)))
		}
	}
	fmt.Printf("\n| condition | webhook calls per rollout |\n|---|---|\n")
	for _, c := range conds {
		fmt.Printf("| %s | %.2f |\n", c.name, c.calls/n)
	}
	return nil
}

// rollout makes the writes of one Deployment rollout: the Deployment, the
// ReplicaSet its controller creates, and a finalizer added and removed (the
// metadata-only UPDATEs controllers and garbage collection make).
func rollout(ctx context.Context, cs kubernetes.Interface, seq int, lat map[string][]time.Duration) error {
	start := time.Now()
	timed := func(what string, f func() error) error {
		t0 := time.Now()
		if err := f(); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		lat[what] = append(lat[what], time.Since(t0))
		return nil
	}
	name := fmt.Sprintf("web-%05d", seq)
	labels := map[string]string{"app": name}
	tmpl := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "registry.example.com/web:1.0"}}}}
	var d *appsv1.Deployment
	if err := timed("create Deployment", func() (err error) {
		d, err = cs.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: tmpl}}, metav1.CreateOptions{})
		return err
	}); err != nil {
		return err
	}
	yes := true
	if err := timed("create owned ReplicaSet", func() error {
		_, err := cs.AppsV1().ReplicaSets(ns).Create(ctx, &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: name + "-1", Namespace: ns,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: name, UID: d.UID, Controller: &yes}}},
			Spec: appsv1.ReplicaSetSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: tmpl}}, metav1.CreateOptions{})
		return err
	}); err != nil {
		return err
	}
	for _, patch := range []string{`{"metadata":{"finalizers":["example.com/hold"]}}`, `{"metadata":{"finalizers":null}}`} {
		if err := timed("finalizer UPDATE", func() error {
			_, err := cs.AppsV1().ReplicaSets(ns).Patch(ctx, name+"-1", types.MergePatchType, []byte(patch), metav1.PatchOptions{})
			return err
		}); err != nil {
			return err
		}
	}
	lat["whole rollout"] = append(lat["whole rollout"], time.Since(start))
	return nil
}

// register replaces the validating webhook configuration (nil removes it)
// and waits until the API server acts on the change.
func register(ctx context.Context, cs kubernetes.Interface, cat *rules.Catalog, o *webhook.ConfigOptions) error {
	api := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations()
	_ = api.Delete(ctx, "meshguard", metav1.DeleteOptions{})
	if o != nil {
		if _, err := api.Create(ctx, webhook.ValidatingConfiguration(cat, *o), metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	probe := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: ns},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "p"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "p"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "p", Image: "p", SecurityContext: &corev1.SecurityContext{
					Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN"}}}}}}}}}
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, err := cs.AppsV1().Deployments(ns).Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		denied := err != nil && strings.Contains(err.Error(), "meshguard")
		if err != nil && !denied {
			return fmt.Errorf("probe: %w", err)
		}
		if denied == (o != nil) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the API server did not pick up the webhook configuration change within 60s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func waitReady(ctx context.Context, port int) error {
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", port))
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("meshguard serve did not become ready within 90s")
}

// scrape sums meshguard_admission_requests_total.
func scrape(port int) (float64, error) {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "meshguard_admission_requests_total{") {
			var v float64
			if _, err := fmt.Sscanf(line[strings.LastIndex(line, " ")+1:], "%g", &v); err == nil {
				sum += v
			}
		}
	}
	return sum, sc.Err()
}

func pct(s []time.Duration, p float64) time.Duration {
	if len(s) == 0 {
		return 0
	}
	i := int(p * float64(len(s)-1))
	return s[i].Round(10 * time.Microsecond)
}
