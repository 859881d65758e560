package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/meshguard/meshguard/rules"
	"github.com/meshguard/meshguard/test/e2e/framework"
	"github.com/meshguard/meshguard/webhook"
)

// apiResult is the create latency through a real kube-apiserver with and
// without meshguard's ValidatingWebhookConfiguration.
type apiResult struct {
	Etcd       string // etcdNoFsync or etcdFsync
	Skipped    bool
	SkipReason string
	Startup    time.Duration
	Rounds     int
	Without    []time.Duration // sorted
	With       []time.Duration // sorted
	Errors     int
	ErrorText  string
	// WebhookCalls is how many decisions the webhook server made during the
	// measured creates with the webhook registered (should equal len(With)).
	WebhookCalls int64
	// Handshakes is how many TLS connections the API server opened to the
	// webhook during those creates (keep-alive: a handful, not one per create).
	Handshakes int64
}

func (a *apiResult) Ratio() float64    { return ratio(Pct(a.With, 0.5), Pct(a.Without, 0.5)) }
func (a *apiResult) RatioP99() float64 { return ratio(Pct(a.With, 0.99), Pct(a.Without, 0.99)) }

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// runAPI starts kube-apiserver and etcd (the e2e framework, from bin/) and
// creates Deployments that pass every rule, sequentially with client-go,
// alternating rounds without and with meshguard registered at
// https://<srv.Addr>/validate, creates/rounds per round and condition, so that
// drift (etcd growing, caches warming) affects both conditions alike.
//
// etcd runs as envtest starts it (etcdNoFsync: --unsafe-no-fsync, commits
// never wait for the disk) or with fsync on, as every production etcd runs
// (etcdFsync); the second makes a create cost what it costs in a cluster.
func runAPI(ctx context.Context, root string, srv *child, creates, rounds int, etcd string, logf func(string, ...any)) (*apiResult, error) {
	res := &apiResult{Rounds: rounds, Etcd: etcd}
	bin := filepath.Join(root, "bin")
	if missing := framework.MissingBinaries(bin); len(missing) > 0 {
		res.Skipped = true
		res.SkipReason = fmt.Sprintf("%s missing in %s: run `make tools` to build the control plane; create latency through the API server was not measured", strings.Join(missing, ", "), bin)
		return res, nil
	}
	opts := framework.Options{BinDir: bin, NoIstioCRDs: true}
	if etcd == etcdFsync {
		opts.EtcdArgs = map[string][]string{"unsafe-no-fsync": {"false"}}
	}
	env, err := framework.Start(opts)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := env.Stop(); err != nil {
			logf("stop control plane: %v", err)
		}
	}()
	res.Startup = env.StartupTime
	logf("control plane (etcd %s) started in %s", etcd, env.StartupTime.Round(time.Millisecond))

	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = 10000, 10000 // no client-side throttling of sequential creates
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	call := func(f func(context.Context) error) error {
		c, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		return f(c)
	}
	if err := call(func(c context.Context) error {
		_, err := cs.CoreV1().Namespaces().Create(c, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
			Name: benchNamespace, Labels: map[string]string{"istio-injection": "enabled"}}}, metav1.CreateOptions{})
		return err
	}); err != nil {
		return nil, fmt.Errorf("create namespace: %w", err)
	}

	cat, err := rules.DefaultCatalog()
	if err != nil {
		return nil, err
	}
	vwc := webhook.ValidatingConfiguration(cat, webhook.ConfigOptions{
		URL: "https://" + srv.Addr, CABundle: srv.CAPEM,
		ExcludeNamespaces: rules.DefaultSystemNamespaces(),
	})
	deployments := cs.AppsV1().Deployments(benchNamespace)

	// A dry-run create that meshguard denies (NET_ADMIN) tells whether the
	// API server is calling the webhook yet; registration reaches the
	// admission chain through an informer, so wait for it (at most 60 s).
	probe := cleanDeployment("probe")
	probe.Spec.Template.Spec.Containers[0].SecurityContext.Capabilities.Add = []corev1.Capability{"NET_ADMIN"}
	waitWebhook := func(active bool) error {
		deadline := time.Now().Add(60 * time.Second)
		for i := 0; ; i++ {
			err := call(func(c context.Context) error {
				_, err := deployments.Create(c, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
				return err
			})
			denied := err != nil && strings.Contains(err.Error(), "meshguard")
			if err != nil && !denied {
				return fmt.Errorf("probe create: %w", err)
			}
			if denied == active {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("the API server did not %s calling the webhook within 60s", map[bool]string{true: "start", false: "stop"}[active])
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	register := func(on bool) error {
		err := call(func(c context.Context) error {
			if on {
				_, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(c, vwc, metav1.CreateOptions{})
				return err
			}
			err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(c, vwc.Name, metav1.DeleteOptions{})
			if apierrors.IsNotFound(err) {
				return nil
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("register webhook (%v): %w", on, err)
		}
		return waitWebhook(on)
	}

	seq := 0
	create := func() (time.Duration, error) {
		seq++
		d := cleanDeployment(fmt.Sprintf("load-%05d", seq))
		var took time.Duration
		err := call(func(c context.Context) error {
			t0 := time.Now()
			_, err := deployments.Create(c, d, metav1.CreateOptions{})
			took = time.Since(t0)
			return err
		})
		return took, err
	}
	const warm = 10
	perRound := creates / rounds
	if perRound < 1 {
		perRound = 1
	}
	for round := 0; round < rounds; round++ {
		for _, on := range []bool{false, true} {
			if err := register(on); err != nil {
				return nil, err
			}
			for i := 0; i < warm; i++ {
				if _, err := create(); err != nil {
					return nil, fmt.Errorf("warm-up create (webhook %v): %w", on, err)
				}
			}
			before, err := srv.Stats()
			if err != nil {
				return nil, err
			}
			for i := 0; i < perRound && ctx.Err() == nil; i++ {
				took, err := create()
				if err != nil {
					res.Errors++
					if res.ErrorText == "" {
						res.ErrorText = err.Error()
					}
					continue
				}
				if on {
					res.With = append(res.With, took)
				} else {
					res.Without = append(res.Without, took)
				}
			}
			after, err := srv.Stats()
			if err != nil {
				return nil, err
			}
			if on {
				res.WebhookCalls += after.Decisions - before.Decisions
				res.Handshakes += after.Handshakes - before.Handshakes
			} else if n := after.Decisions - before.Decisions; n != 0 {
				return nil, fmt.Errorf("the webhook decided %d requests while it was not registered", n)
			}
			logf("round %d, webhook %v: %d creates", round+1, on, perRound)
		}
	}
	if err := register(false); err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if len(res.With) == 0 || len(res.Without) == 0 {
		return nil, errors.New("no successful creates")
	}
	sort.Slice(res.With, func(i, j int) bool { return res.With[i] < res.With[j] })
	sort.Slice(res.Without, func(i, j int) bool { return res.Without[i] < res.Without[j] })
	return res, nil
}

// cleanDeployment is a Deployment in the sidecar-injected namespace that
// passes every rule of the catalog.
func cleanDeployment(name string) *appsv1.Deployment {
	replicas := int32(2)
	no, yes := false, true
	uid := int64(1000)
	labels := map[string]string{"app": "web", "version": "v1"}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: benchNamespace, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					ServiceAccountName: "web",
					SecurityContext:    &corev1.PodSecurityContext{RunAsNonRoot: &yes, RunAsUser: &uid},
					Containers: []corev1.Container{{
						Name:  "web",
						Image: "registry.example.com/web:1.0.0",
						Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
						SecurityContext: &corev1.SecurityContext{
							AllowPrivilegeEscalation: &no,
							ReadOnlyRootFilesystem:   &yes,
							Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
						},
					}},
				},
			},
		},
	}
}
