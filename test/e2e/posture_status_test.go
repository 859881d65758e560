package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/cmd/meshguard/app"
	"github.com/meshguard/meshguard/reports"
	"github.com/meshguard/meshguard/rules"
	"github.com/meshguard/meshguard/test/e2e/framework"
)

// postureStatusApps: a namespace with STRICT mTLS, a namespace-wide ALLOW
// policy (default-deny), a meshed Deployment and a quarantined one with
// NET_ADMIN; and a namespace outside the mesh.
const postureStatusApps = `apiVersion: v1
kind: Namespace
metadata:
  name: %[1]s-shop
  labels: {istio-injection: enabled}
---
apiVersion: v1
kind: Namespace
metadata:
  name: %[1]s-plain
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: %[1]s-shop}
spec:
  mtls: {mode: STRICT}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: callers, namespace: %[1]s-shop}
spec:
  action: ALLOW
  rules:
  - from: [{source: {principals: ["cluster.local/ns/%[1]s-shop/sa/web"]}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: %[1]s-shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: app
        image: registry.example.com/web:1.0
        securityContext: {runAsUser: 1000, allowPrivilegeEscalation: false}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: cart
  namespace: %[1]s-shop
  labels: {meshguard.io/quarantined: cart}
spec:
  selector: {matchLabels: {app: cart}}
  template:
    metadata: {labels: {app: cart}}
    spec:
      containers:
      - name: app
        image: registry.example.com/cart:1.0
        securityContext: {runAsUser: 1000, allowPrivilegeEscalation: false, capabilities: {add: [NET_ADMIN]}}
`

// TestPostureStatus: the background audit keeps each namespace's compliance
// view on its report; `meshguard status`, run with credentials that can only
// read reports (the chart's status-reader role), shows it, and its numbers
// match `meshguard audit --cluster`'s. The report also carries MESH0217 (the
// background audit reads meshguard's managed NetworkPolicies itself), and
// the compliance gauges are published.
func TestPostureStatus(t *testing.T) {
	env := framework.Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const p = "e2e-pstatus"
	shop, plain := p+"-shop", p+"-plain"
	mustKubectl(t, ctx, env, fmt.Sprintf(postureStatusApps, p), "apply", "-f", "-")
	kubectl(t, ctx, env, "", "create", "namespace", postureRoot) // may exist from an earlier test
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		kubectl(t, ctx, env, "", "delete", "namespace", shop, plain, "--wait=false")
		kubectl(t, ctx, env, "", "delete", "clusterrolebinding", p+"-reader", "--ignore-not-found")
	})
	s := startPostureServer(t, env, reports.FormatOpenReports, "e2e-posture-status", time.Hour)
	s.waitResults(t, shop, "MESH0150 on cart and MESH0217 on the namespace", func(l []string) bool {
		return has(l, "Deployment/cart MESH0150 critical") && has(l, "Namespace/"+shop+" MESH0217")
	})

	// The chart's reader role, bound to a user who has nothing else.
	role := helmTemplate(t, "--show-only", "templates/status-reader.yaml")
	mustKubectl(t, ctx, env, role, "apply", "-f", "-")
	mustKubectl(t, ctx, env, "", "create", "clusterrolebinding", p+"-reader", "--clusterrole=meshguard-status-reader", "--user="+p+"-reader")
	if res := kubectl(t, ctx, env, "", "auth", "can-i", "list", "pods", "--as="+p+"-reader"); strings.TrimSpace(res.Stdout) != "no" {
		t.Fatalf("the reader may list pods: %q", res.Stdout)
	}
	readerConfig := impersonatingKubeconfig(t, env, p+"-reader")

	code, out, errOut := runCLI(t, "status", "--kubeconfig", readerConfig, "-o", "json")
	if code != app.ExitOK {
		t.Fatalf("status as the reader: exit %d\n%s%s", code, out, errOut)
	}
	var st audit.PostureStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if st.Kind != audit.StatusKind || st.Format != string(reports.FormatOpenReports) {
		t.Errorf("status kind %q format %q", st.Kind, st.Format)
	}
	got := map[string]audit.NamespaceStatus{}
	for _, n := range st.Namespaces {
		got[n.Name] = n
	}
	sh, ok := got[shop]
	if !ok || sh.Compliance == nil {
		t.Fatalf("no compliance view for %s: %+v", shop, got[shop])
	}
	c := sh.Compliance
	if c.MeshMode != rules.ModeSidecar || c.MTLS.Mode != "STRICT" || !c.Authz.DefaultDeny || c.Workloads != 2 || c.Meshed != 2 ||
		c.NetworkPolicies.Status != rules.NetpolMissing || strings.Join(c.Quarantined, ",") != "Deployment/cart" {
		t.Errorf("compliance of %s: %+v", shop, *c)
	}
	if sh.BySeverity["Critical"] < 1 || sh.Findings < 2 {
		t.Errorf("findings of %s: %+v", shop, sh.ScopeFindings)
	}
	if pl := got[plain]; pl.Compliance == nil || pl.Compliance.MeshMode != rules.ModeNone || pl.Compliance.Authz.DefaultDeny {
		t.Errorf("compliance of %s: %+v", plain, pl.Compliance)
	}

	// The same answers as a cluster audit by an admin (mTLS, authorization,
	// meshed share of the namespace).
	code, out, errOut = runCLI(t, "audit", "--cluster", "--kubeconfig", env.KubeconfigPath, "--root-namespace", postureRoot, "-o", "json", "--fail-on", "Critical")
	if code != app.ExitFindings {
		t.Fatalf("audit --cluster: exit %d\n%s", code, errOut)
	}
	var rep struct {
		Cluster audit.ClusterSummary `json:"cluster"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	ns := nsSummary(t, rep.Cluster.Namespaces, shop)
	if ns.MTLS != c.MTLS || ns.Authz != c.Authz || ns.Workloads != c.Workloads || ns.Meshed != c.Meshed || ns.MeshMode != c.MeshMode {
		t.Errorf("status and audit --cluster differ for %s:\n status %+v\n audit  mtls %+v authz %+v %d/%d %s", shop, *c, ns.MTLS, ns.Authz, ns.Meshed, ns.Workloads, ns.MeshMode)
	}

	// Text, one namespace, and --fail-on.
	code, out, _ = runCLI(t, "status", "--kubeconfig", readerConfig, "-n", shop, "--fail-on", "Critical")
	if code != app.ExitFindings || !strings.Contains(out, shop) || !strings.Contains(out, "STRICT (namespace: "+shop+"/default)") ||
		!strings.Contains(out, "Deployment/cart") || strings.Contains(out, plain) {
		t.Errorf("status -n %s --fail-on Critical: exit %d\n%s", shop, code, out)
	}
	// Without reports of the asked format, a clear error (exit 2).
	code, _, errOut = runCLI(t, "status", "--kubeconfig", readerConfig, "--report-format", "wgpolicyk8s", "-n", shop)
	if code != app.ExitUsage || !strings.Contains(errOut, "no meshguard wgpolicyk8s reports in namespace "+shop) {
		t.Errorf("status without wgpolicyk8s reports: exit %d, %q", code, errOut)
	}

	// The compliance gauges of the namespace.
	if v := gatherGauge(t, "meshguard_namespace_mtls_mode", map[string]string{"namespace": shop, "mode": "STRICT"}); v != 1 {
		t.Errorf("meshguard_namespace_mtls_mode{STRICT} = %v, want 1", v)
	}
	if v := gatherGauge(t, "meshguard_namespace_workloads_meshed", map[string]string{"namespace": shop}); v != 2 {
		t.Errorf("meshguard_namespace_workloads_meshed = %v, want 2", v)
	}
	if v := gatherGauge(t, "meshguard_namespace_quarantined_workloads", map[string]string{"namespace": shop}); v != 1 {
		t.Errorf("meshguard_namespace_quarantined_workloads = %v, want 1", v)
	}

	// Drift: the namespace's PeerAuthentication goes; the view follows.
	mustKubectl(t, ctx, env, "", "delete", "peerauthentication", "default", "-n", shop)
	if !poll(30*time.Second, 200*time.Millisecond, func() bool {
		u, ok := s.report(t, shop)
		if !ok {
			return false
		}
		r, err := reports.Parse(u)
		return err == nil && r.Compliance != nil && r.Compliance.MTLS.Mode == "PERMISSIVE"
	}) {
		t.Errorf("the compliance view did not follow the deleted PeerAuthentication")
	}
}

// helmTemplate renders the chart with args.
func helmTemplate(t *testing.T, args ...string) string {
	t.Helper()
	root := filepath.Join("..", "..")
	cmd := exec.Command(filepath.Join(root, "bin", "helm"), append([]string{"template", "meshguard", filepath.Join(root, "charts", "meshguard")}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helm template %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// impersonatingKubeconfig writes a copy of the test kubeconfig whose user
// impersonates user.
func impersonatingKubeconfig(t *testing.T, env *framework.Env, user string) string {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(env.KubeconfigPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, ai := range cfg.AuthInfos {
		ai.Impersonate = user
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	return path
}

// gatherGauge reads a gauge of the process-wide registry (the in-process
// servers register there) by its labels; -1 when absent.
func gatherGauge(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue metrics
				}
			}
			return m.GetGauge().GetValue()
		}
	}
	return -1
}
