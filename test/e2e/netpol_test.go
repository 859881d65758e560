package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/meshguard/meshguard/rules"
	"github.com/meshguard/meshguard/test/e2e/framework"
	"github.com/meshguard/meshguard/webhook"
	"github.com/meshguard/meshguard/webhook/netpol"
)

// npIdentity is the service account the netpol tests run meshguard as (by
// impersonation), so that the API server, the webhook and MESH0215 see
// meshguard's own identity distinct from the admin who runs kubectl.
const (
	npServiceAccountNS = "e2e-np-system"
	npServiceAccount   = "meshguard-e2e"
	npIdentity         = "system:serviceaccount:" + npServiceAccountNS + ":" + npServiceAccount
	npNamespaceCtrl    = "system:serviceaccount:kube-system:namespace-controller"
)

// npServer is a `meshguard serve` with the NetworkPolicy controller.
type npServer struct {
	srv         *webhook.Server
	certs       *framework.Certs
	port        int
	metricsPort int
	logPath     string
	client      client.Client
}

// startNetpolServer starts meshguard as npIdentity with the NetworkPolicy
// controller in the given mode, leader-elected, and waits for /readyz.
func startNetpolServer(t *testing.T, env *framework.Env, mode netpol.Mode, leaseID string) *npServer {
	t.Helper()
	return startNetpolServerWithPolicy(t, env, mode, leaseID, "mode: enforce\nadmins:\n  groups: [\"system:masters\"]\n")
}

// startNetpolServerWithPolicy is startNetpolServer with the given admin
// policy file.
func startNetpolServerWithPolicy(t *testing.T, env *framework.Env, mode netpol.Mode, leaseID, policy string, configure ...func(*netpol.Config)) *npServer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// meshguard's identity: cluster-admin for the test, bound to its service account.
	mustKubectl(t, ctx, env, fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata: {name: %s}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: e2e-netpol-meshguard}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects:
- {kind: ServiceAccount, namespace: %s, name: %s}
`, npServiceAccountNS, npServiceAccountNS, npServiceAccount), "apply", "-f", "-")

	dir := t.TempDir()
	certs, err := framework.WriteServingCerts(filepath.Join(dir, "certs"))
	if err != nil {
		t.Fatal(err)
	}
	s := &npServer{certs: certs, logPath: filepath.Join(dir, "meshguard.log")}
	var health int
	for _, p := range []*int{&s.port, &s.metricsPort, &health} {
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
	o.Port = s.port
	o.CertDir = certs.Dir
	o.MetricsAddr = fmt.Sprintf("127.0.0.1:%d", s.metricsPort)
	o.HealthAddr = fmt.Sprintf("127.0.0.1:%d", health)
	o.PolicyFile = policyFile
	o.GracefulShutdown = 5 * time.Second
	o.Rules.ControllerUsername = npIdentity
	o.LeaderElection = true
	o.LeaderElectionNamespace = npServiceAccountNS
	o.LeaderElectionID = leaseID
	nc := netpol.NewConfig()
	nc.Mode = mode
	nc.PodGate = true
	nc.ExcludeNamespaces = append(nc.ExcludeNamespaces, npServiceAccountNS, ownNamespace)
	nc.IntentMinInterval = time.Second
	for _, f := range configure {
		f(nc)
	}
	o.NetworkPolicies = nc

	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: npIdentity}
	var done <-chan error
	s.srv, done = runInProcess(t, cfg, o, s.logPath)
	if s.client, err = client.New(env.Config, client.Options{}); err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Timeout: 2 * time.Second}
	var last string
	if !poll(60*time.Second, 100*time.Millisecond, func() bool {
		select {
		case err := <-done:
			t.Fatalf("meshguard serve exited before it was ready: %v\n%s", err, tail(s.logPath, 40))
		default:
		}
		resp, err := hc.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", health))
		if err != nil {
			last = err.Error()
			return false
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		last = fmt.Sprintf("%d %s", resp.StatusCode, body)
		return resp.StatusCode == http.StatusOK
	}) {
		t.Fatalf("meshguard /readyz did not turn OK within 60s; last answer: %s\n%s", last, tail(s.logPath, 40))
	}
	return s
}

// register applies the webhook configurations, with the netpol-guard webhook,
// and waits until the API server calls them; probeNS must hold a managed
// mesh-default-deny. They are removed (and the removal awaited) at cleanup.
func (s *npServer) register(t *testing.T, env *framework.Env, probeNS string) {
	t.Helper()
	cat, err := rules.DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	co := webhook.ConfigOptions{
		Name:                   "meshguard-e2e-netpol",
		URL:                    fmt.Sprintf("https://127.0.0.1:%d", s.port),
		CABundle:               s.certs.CAPEM,
		ExcludeNamespaces:      append(append([]string{}, rules.NewConfig().SystemNamespaces...), ownNamespace, npServiceAccountNS),
		ProtectNetworkPolicies: true,
	}
	b, err := yaml.Marshal(webhook.ValidatingConfiguration(cat, co))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	mustKubectl(t, ctx, env, string(b), "apply", "-f", "-")
	probe := func() framework.KubectlResult {
		return kubectl(t, ctx, env, "", "delete", "networkpolicy", netpol.NameDefaultDeny, "-n", probeNS, "--dry-run=server")
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		mustKubectl(t, ctx, env, "", "delete", "validatingwebhookconfiguration", co.Name, "--ignore-not-found")
		var last framework.KubectlResult
		if !poll(30*time.Second, 100*time.Millisecond, func() bool {
			last = kubectl(t, ctx, env, "", "delete", "networkpolicy", netpol.NameDefaultDeny, "-n", probeNS, "--dry-run=server")
			return last.ExitCode == 0
		}) {
			t.Errorf("the API server still calls the netpol webhook 30s after its removal:\n%s", last)
		}
	})
	var last framework.KubectlResult
	if !poll(30*time.Second, 100*time.Millisecond, func() bool {
		last = probe()
		return last.ExitCode != 0 && strings.Contains(last.Stderr, "MESH0215")
	}) {
		t.Fatalf("the netpol-guard webhook did not take effect within 30s; last delete:\n%s", last)
	}
}

// policies returns the managed NetworkPolicies of a namespace, by name.
func (s *npServer) policies(t *testing.T, ns string) map[string]networkingv1.NetworkPolicy {
	t.Helper()
	var l networkingv1.NetworkPolicyList
	if err := s.client.List(context.Background(), &l, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	out := map[string]networkingv1.NetworkPolicy{}
	for _, np := range l.Items {
		out[np.Name] = np
	}
	return out
}

// waitForSet waits (bounded) until a namespace holds exactly the rendered
// set of a profile, spec, labels and annotations included, and returns it.
func (s *npServer) waitForSet(t *testing.T, ns string, p netpol.Profile) map[string]networkingv1.NetworkPolicy {
	t.Helper()
	want := netpol.NewConfig().Render(ns, p)
	var got map[string]networkingv1.NetworkPolicy
	var why string
	// 60s: a namespace that could not be prepared is retried with backoff up to 30s.
	if !poll(60*time.Second, 100*time.Millisecond, func() bool {
		got = s.policies(t, ns)
		why = setDiff(got, want)
		return why == ""
	}) {
		t.Fatalf("namespace %s did not receive exactly the %s set within 60s: %s", ns, p, why)
	}
	return got
}

// setDiff says how the policies differ from the rendered set ("" when equal).
func setDiff(all map[string]networkingv1.NetworkPolicy, want []*networkingv1.NetworkPolicy) string {
	// The managed set: not the namespace's own policies, nor a quarantine's
	// (managed, but of no profile).
	got := map[string]networkingv1.NetworkPolicy{}
	var names []string
	for n, np := range all {
		if np.Labels[netpol.LabelManaged] != "true" || np.Labels[netpol.LabelQuarantine] != "" {
			continue
		}
		got[n] = np
		names = append(names, n)
	}
	sort.Strings(names)
	if len(got) != len(want) {
		return fmt.Sprintf("has %v, want %d policies", names, len(want))
	}
	for _, w := range want {
		g, ok := got[w.Name]
		if !ok {
			return fmt.Sprintf("has %v, misses %s", names, w.Name)
		}
		gs, _ := json.Marshal(g.Spec)
		ws, _ := json.Marshal(w.Spec)
		if string(gs) != string(ws) {
			return fmt.Sprintf("%s spec %s, want %s", w.Name, gs, ws)
		}
		for k, v := range w.Labels {
			if g.Labels[k] != v {
				return fmt.Sprintf("%s labels %v", w.Name, g.Labels)
			}
		}
		for k, v := range w.Annotations {
			if g.Annotations[k] != v {
				return fmt.Sprintf("%s annotations %v", w.Name, g.Annotations)
			}
		}
	}
	return ""
}

// namespaceEvents returns "reason: message" of the Events about a namespace.
func (s *npServer) namespaceEvents(t *testing.T, ns string) []string {
	t.Helper()
	var l corev1.EventList
	if err := s.client.List(context.Background(), &l); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range l.Items {
		if e.InvolvedObject.Kind == "Namespace" && e.InvolvedObject.Name == ns {
			out = append(out, e.Reason+": "+e.Message)
		}
	}
	return out
}

func (s *npServer) waitForEvent(t *testing.T, ns, reason string, contains ...string) string {
	t.Helper()
	var events []string
	var found string
	if !poll(30*time.Second, 100*time.Millisecond, func() bool {
		events = s.namespaceEvents(t, ns)
		for _, e := range events {
			if !strings.HasPrefix(e, reason+": ") {
				continue
			}
			ok := true
			for _, c := range contains {
				ok = ok && strings.Contains(e, c)
			}
			if ok {
				found = e
				return true
			}
		}
		return false
	}) {
		t.Fatalf("no %s Event containing %q on namespace %s within 30s; events: %v", reason, contains, ns, events)
	}
	return found
}

// metric reads one sample from the real metrics endpoint (0 when absent).
func (s *npServer) metric(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	return scrapeMetric(t, s.metricsPort, name, labels)
}

// TestNetworkPolicies runs meshguard with the default-deny NetworkPolicy
// controller (enforce mode, pod gate on, leader-elected) against the real API
// server, as its own service account, and drives it with the real kubectl.
func TestNetworkPolicies(t *testing.T) {
	env := framework.Shared(t)
	s := startNetpolServer(t, env, netpol.ModeEnforce, "e2e-netpol-enforce")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// Before the webhook is registered (as while it is down), hand edits go
	// through; the controller repairs them in place.
	t.Run("a hand edit is repaired by patch, the object keeps its UID", func(t *testing.T) {
		ns := "e2e-np-repair"
		mustKubectl(t, ctx, env, namespaceYAML(ns, map[string]string{"istio-injection": "enabled"}), "apply", "-f", "-")
		before := s.waitForSet(t, ns, netpol.ProfileSidecar)
		repairs := s.metric(t, "meshguard_netpol_changes_total", map[string]string{"action": "repair"})
		// Open DNS egress to everything, and drop the managed label from the default deny.
		mustKubectl(t, ctx, env, "", "patch", "networkpolicy", netpol.NameAllowDNS, "-n", ns, "--type=json",
			"-p", `[{"op":"add","path":"/spec/egress/-","value":{}}]`)
		mustKubectl(t, ctx, env, "", "label", "networkpolicy", netpol.NameDefaultDeny, "-n", ns, netpol.LabelManaged+"-")
		after := s.waitForSet(t, ns, netpol.ProfileSidecar)
		for _, name := range []string{netpol.NameAllowDNS, netpol.NameDefaultDeny} {
			if before[name].UID != after[name].UID {
				t.Errorf("%s was re-created (UID %s -> %s); it must be patched in place", name, before[name].UID, after[name].UID)
			}
		}
		s.waitForEvent(t, ns, netpol.ReasonRepaired, netpol.NameAllowDNS)
		if got := s.metric(t, "meshguard_netpol_changes_total", map[string]string{"action": "repair"}); got < repairs+2 {
			t.Errorf("meshguard_netpol_changes_total{action=repair}: want at least %v, got %v", repairs+2, got)
		}
	})

	// The webhook protects the policies from here on.
	probe := "e2e-np-probe"
	mustKubectl(t, ctx, env, namespaceYAML(probe, map[string]string{"istio-injection": "enabled"}), "apply", "-f", "-")
	s.waitForSet(t, probe, netpol.ProfileSidecar)
	s.register(t, env, probe)

	t.Run("netpol", func(t *testing.T) {
		t.Run("each profile receives exactly its policies", func(t *testing.T) {
			t.Parallel()
			cases := []struct {
				ns      string
				labels  map[string]string
				profile netpol.Profile
			}{
				{"e2e-np-sidecar", map[string]string{"istio-injection": "enabled"}, netpol.ProfileSidecar},
				{"e2e-np-revision", map[string]string{"istio.io/rev": "1-24"}, netpol.ProfileSidecar},
				{"e2e-np-ambient", map[string]string{"istio.io/dataplane-mode": "ambient"}, netpol.ProfileAmbient},
				{"e2e-np-gateway", map[string]string{netpol.LabelProfile: "gateway"}, netpol.ProfileGateway},
			}
			var docs []string
			for _, c := range cases {
				docs = append(docs, namespaceYAML(c.ns, c.labels))
			}
			docs = append(docs, namespaceYAML("e2e-np-outside", nil), namespaceYAML("e2e-np-optout", map[string]string{"istio-injection": "enabled", netpol.LabelProfile: "none"}))
			mustKubectl(t, ctx, env, strings.Join(docs, "---\n"), "apply", "-f", "-")
			for _, c := range cases {
				s.waitForSet(t, c.ns, c.profile)
				s.waitForEvent(t, c.ns, netpol.ReasonCreated, "profile "+string(c.profile))
			}
			// The controller has handled later namespaces of the same apply;
			// those without a profile hold nothing.
			for _, ns := range []string{"e2e-np-outside", "e2e-np-optout"} {
				if got := s.policies(t, ns); len(got) != 0 {
					t.Errorf("namespace %s must get no policies, has %d", ns, len(got))
				}
			}
			if got := s.metric(t, "meshguard_netpol_namespaces", map[string]string{"profile": "gateway", "mode": "enforce"}); got < 1 {
				t.Errorf("meshguard_netpol_namespaces{profile=gateway}: want >= 1, got %v", got)
			}
		})
		t.Run("deleting a managed policy is denied with MESH0215, deleting the namespace succeeds", func(t *testing.T) {
			t.Parallel()
			ns := "e2e-np-tamper"
			mustKubectl(t, ctx, env, namespaceYAML(ns, map[string]string{"istio-injection": "enabled"}), "apply", "-f", "-")
			s.waitForSet(t, ns, netpol.ProfileSidecar)
			res := kubectl(t, ctx, env, "", "delete", "networkpolicy", netpol.NameDefaultDeny, "-n", ns)
			assertDenied(t, res, "MESH0215", fmt.Sprintf(`tampers with managed NetworkPolicy "%s/%s": deletes it`, ns, netpol.NameDefaultDeny))
			t.Logf("kubectl printed:\n%s", strings.TrimSpace(res.Stderr))
			// Weakening by edit or relabel is denied too.
			assertDenied(t, kubectl(t, ctx, env, "", "label", "networkpolicy", netpol.NameAllowDNS, "-n", ns, netpol.LabelManaged+"-"), "MESH0215", "removes label meshguard.io/managed")
			assertDenied(t, kubectl(t, ctx, env, "", "patch", "networkpolicy", netpol.NameAllowDNS, "-n", ns, "--type=json",
				"-p", `[{"op":"add","path":"/spec/egress/-","value":{}}]`), "MESH0215", "changes its spec")
			// The namespace controller's name alone is not trusted.
			assertDenied(t, kubectl(t, ctx, env, "", "delete", "networkpolicy", netpol.NameAllowDNS, "-n", ns, "--as="+npNamespaceCtrl),
				"MESH0215", "is not terminating")
			if got := s.policies(t, ns); len(got) != len(netpol.Names(netpol.ProfileSidecar)) {
				t.Fatalf("denied deletes must leave every policy, have %d", len(got))
			}

			// Deleting the namespace is admitted. envtest runs no namespace
			// controller, so the namespace stays Terminating.
			mustKubectl(t, ctx, env, "", "delete", "namespace", ns, "--wait=false")
			phase := mustKubectl(t, ctx, env, "", "get", "namespace", ns, "-o", "jsonpath={.status.phase}")
			if phase.Stdout != "Terminating" {
				t.Errorf("namespace %s: phase %q, want Terminating", ns, phase.Stdout)
			}
			// Once meshguard sees it terminating, the namespace controller may
			// empty it (what the real controller then does).
			var last framework.KubectlResult
			if !poll(30*time.Second, 100*time.Millisecond, func() bool {
				last = kubectl(t, ctx, env, "", "delete", "networkpolicy", netpol.NameAllowDNS, "-n", ns, "--as="+npNamespaceCtrl)
				return last.ExitCode == 0
			}) {
				t.Fatalf("the namespace controller could not delete a managed policy of a terminating namespace:\n%s", last)
			}
			// Anybody else still may not.
			assertDenied(t, kubectl(t, ctx, env, "", "delete", "networkpolicy", netpol.NameAllowIstiod, "-n", ns), "MESH0215")
		})
		t.Run("a profile change is applied in place", func(t *testing.T) {
			t.Parallel()
			ns := "e2e-np-profile"
			mustKubectl(t, ctx, env, namespaceYAML(ns, map[string]string{"istio-injection": "enabled"}), "apply", "-f", "-")
			before := s.waitForSet(t, ns, netpol.ProfileSidecar)
			// Namespace labels that change the profile are meshguard's: a
			// tenant may not set them.
			grantNamespaceEditor(t, ctx, env, "np-tenant")
			assertDenied(t, kubectl(t, ctx, env, "", "label", "namespace", ns, netpol.LabelProfile+"=none", "--as=np-tenant"), "MESH0105", "MESH0106")
			// An admin migrates the namespace to ambient.
			mustKubectl(t, ctx, env, "", "label", "namespace", ns, "istio-injection-", "istio.io/dataplane-mode=ambient")
			after := s.waitForSet(t, ns, netpol.ProfileAmbient)
			if before[netpol.NameDefaultDeny].UID != after[netpol.NameDefaultDeny].UID {
				t.Errorf("the default deny was re-created on a profile change; it must be patched")
			}
			s.waitForEvent(t, ns, netpol.ReasonRemoved, netpol.NameAllowIstiod)
			// An admin opts it out: everything is removed by meshguard itself
			// (which MESH0215 lets through).
			mustKubectl(t, ctx, env, "", "label", "namespace", ns, netpol.LabelProfile+"=none")
			if !poll(30*time.Second, 100*time.Millisecond, func() bool { return len(s.policies(t, ns)) == 0 }) {
				t.Fatalf("an opted-out namespace must lose its policies, has %d", len(s.policies(t, ns)))
			}
		})
		t.Run("the pod gate holds pods back until the policies exist", func(t *testing.T) {
			t.Parallel()
			ns := "e2e-np-gate"
			// Created opted out, with an admission policy that refuses
			// NetworkPolicies there, so the controller cannot prepare it once
			// it is enrolled.
			mustKubectl(t, ctx, env, namespaceYAML(ns, map[string]string{netpol.LabelProfile: "none"}), "apply", "-f", "-")
			mustKubectl(t, ctx, env, fmt.Sprintf(`apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: e2e-np-block}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - {apiGroups: [networking.k8s.io], apiVersions: [v1], operations: [CREATE], resources: [networkpolicies]}
  validations:
  - expression: "false"
    message: e2e holds this namespace unprepared
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: e2e-np-block}
spec:
  policyName: e2e-np-block
  validationActions: [Deny]
  matchResources:
    namespaceSelector:
      matchLabels: {kubernetes.io/metadata.name: %s}
`, ns), "apply", "-f", "-")
			probe := fmt.Sprintf("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: probe, namespace: %s}\nspec: {podSelector: {}}\n", ns)
			var last framework.KubectlResult
			if !poll(30*time.Second, 100*time.Millisecond, func() bool {
				last = kubectl(t, ctx, env, probe, "create", "--dry-run=server", "-f", "-")
				return last.ExitCode != 0 && strings.Contains(last.Stderr, "e2e holds this namespace unprepared")
			}) {
				t.Fatalf("the blocking admission policy did not take effect within 30s:\n%s", last)
			}
			pod := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: app, namespace: %s}
spec:
  containers: [{name: app, image: registry.example.com/shop/app:1.0}]
`, ns)
			mustKubectl(t, ctx, env, "", "label", "namespace", ns, netpol.LabelProfile+"-", "istio.io/dataplane-mode=ambient")
			s.waitForEvent(t, ns, netpol.ReasonFailed)
			res := kubectl(t, ctx, env, pod, "create", "-f", "-")
			if res.ExitCode == 0 || !strings.Contains(res.Stderr, fmt.Sprintf(`namespace %q is being prepared`, ns)) || !strings.Contains(res.Stderr, netpol.NameDefaultDeny) {
				t.Fatalf("a pod in an unprepared namespace must be refused as being prepared:\n%s", res)
			}
			t.Logf("kubectl printed:\n%s", strings.TrimSpace(res.Stderr))
			if got := s.policies(t, ns); len(got) != 0 {
				t.Fatalf("the admission policy must keep the namespace unprepared, it has %d policies", len(got))
			}
			// The block goes; the controller retries and the pod is admitted.
			mustKubectl(t, ctx, env, "", "delete", "validatingadmissionpolicybinding,validatingadmissionpolicy", "e2e-np-block")
			s.waitForSet(t, ns, netpol.ProfileAmbient)
			if !poll(30*time.Second, 100*time.Millisecond, func() bool {
				last = kubectl(t, ctx, env, pod, "create", "-f", "-")
				return last.ExitCode == 0
			}) {
				t.Fatalf("the pod must be admitted once the policies exist:\n%s", last)
			}
		})
	})
}

// TestNetworkPolicyPreview runs the controller in preview mode: it creates
// nothing and reports per namespace what it would create.
func TestNetworkPolicyPreview(t *testing.T) {
	env := framework.Shared(t)
	s := startNetpolServer(t, env, netpol.ModePreview, "e2e-netpol-preview")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ns := "e2e-np-preview"
	mustKubectl(t, ctx, env, namespaceYAML(ns, map[string]string{"istio-injection": "enabled"}), "apply", "-f", "-")
	ev := s.waitForEvent(t, ns, netpol.ReasonPreview, "would create "+strings.Join(netpol.Names(netpol.ProfileSidecar), ", "))
	t.Logf("event: %s", ev)
	if got := s.metric(t, "meshguard_netpol_preview_pending", map[string]string{"namespace": ns, "action": "create"}); got != float64(len(netpol.Names(netpol.ProfileSidecar))) {
		t.Errorf("meshguard_netpol_preview_pending{namespace=%s,action=create}: want %d, got %v", ns, len(netpol.Names(netpol.ProfileSidecar)), got)
	}
	if got := s.policies(t, ns); len(got) != 0 {
		t.Errorf("preview mode must create nothing, namespace %s has %d policies", ns, len(got))
	}
	// The pod gate is off in preview: nothing would ever prepare the namespace.
	pod := fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata: {name: app, namespace: %s}\nspec:\n  containers: [{name: app, image: registry.example.com/shop/app:1.0}]\n", ns)
	if res := kubectl(t, ctx, env, pod, "create", "--dry-run=server", "-f", "-"); strings.Contains(res.Stderr, "being prepared") {
		t.Errorf("preview mode must not gate pods:\n%s", res)
	}
	if sum, ok := s.srv.NetworkPolicies.Preview(ns); !ok || !strings.Contains(sum, "would create") {
		t.Errorf("Preview(%s) = %q, %v", ns, sum, ok)
	}
}
