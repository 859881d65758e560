package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/cmd/meshguard/app"
	"github.com/meshguard/meshguard/rules"
	"github.com/meshguard/meshguard/test/e2e/framework"
)

const (
	nsSidecar = "audit-sidecar"
	nsAmbient = "audit-ambient"
	// extraServices is more than a few pages of Services at pageSize.
	extraServices = 7
	pageSize      = 2
)

// auditManifests is what the cluster audit tests find: a sidecar namespace
// with a NET_ADMIN Deployment, a Pod without a proxy and many Services; an
// ambient namespace with its own STRICT PeerAuthentication; and a mesh-wide
// PERMISSIVE PeerAuthentication in the root namespace.
func auditManifests() string {
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: v1
kind: Namespace
metadata:
  name: istio-system
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: istio-system
spec:
  mtls:
    mode: PERMISSIVE
---
apiVersion: v1
kind: Namespace
metadata:
  name: %[1]s
  labels:
    istio-injection: enabled
---
apiVersion: v1
kind: Namespace
metadata:
  name: %[2]s
  labels:
    %[3]s: ambient
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: strict
  namespace: %[2]s
spec:
  mtls:
    mode: STRICT
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: netadmin
  namespace: %[1]s
spec:
  selector:
    matchLabels: {app: netadmin}
  template:
    metadata:
      labels: {app: netadmin}
    spec:
      containers:
      - name: app
        image: registry.example.com/app:1.0
        securityContext:
          runAsUser: 1000
          allowPrivilegeEscalation: false
          capabilities:
            add: ["NET_ADMIN"]
---
apiVersion: v1
kind: Pod
metadata:
  name: bare
  namespace: %[1]s
spec:
  containers:
  - name: app
    image: registry.example.com/app:1.0
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: capital-false
  namespace: %[1]s
spec:
  selector:
    matchLabels: {app: capital-false}
  template:
    metadata:
      labels: {app: capital-false, sidecar.istio.io/inject: "False"}
    spec:
      containers:
      - name: app
        image: registry.example.com/app:1.0
        securityContext:
          runAsUser: 1000
          allowPrivilegeEscalation: false
`, nsSidecar, nsAmbient, framework.LabelDataplaneMode)
	// istiod 1.26 (its image tag; no injector webhook configuration labels
	// the revision): "False" is an injection opt-out there.
	fmt.Fprintf(&b, "---\n"+istiod126, "istio-system")
	for i := range extraServices {
		fmt.Fprintf(&b, `---
apiVersion: v1
kind: Service
metadata:
  name: svc-%d
  namespace: %s
spec:
  selector: {app: netadmin}
  ports:
  - name: http
    port: 80
    targetPort: 8080
`, i, nsSidecar)
	}
	return b.String()
}

// setupAuditCluster applies the manifests with the real kubectl once per test.
func setupAuditCluster(t *testing.T) *framework.Env {
	t.Helper()
	env := framework.Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if res, err := env.Apply(ctx, auditManifests()); err != nil {
		t.Fatalf("apply the audit fixtures: %v", err)
	} else if !strings.Contains(res.Stdout, "deployment.apps/netadmin") {
		t.Fatalf("kubectl apply did not report the Deployment:\n%s", res)
	}
	t.Cleanup(func() {
		// The istiod 1.26 would make every later serve judge the default
		// revision as Istio 1.26 (serve reads istiod's Deployments too).
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		kubectl(t, ctx, env, "", "delete", "deployment", "istiod", "-n", "istio-system", "--ignore-not-found")
	})
	return env
}

func findingsFor(rep *audit.Report, location string) map[string]audit.Located {
	out := map[string]audit.Located{}
	for _, f := range rep.Findings {
		if f.File == location {
			out[f.Code] = f
		}
	}
	return out
}

func nsSummary(t *testing.T, sums []audit.NamespaceSummary, name string) audit.NamespaceSummary {
	t.Helper()
	for _, s := range sums {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no summary for namespace %s in %+v", name, sums)
	return audit.NamespaceSummary{}
}

// runAuditCluster audits the cluster with the whole catalog, pageSize
// objects per list call, and fails the test on any error.
func runAuditCluster(t *testing.T, env *framework.Env) *audit.Report {
	t.Helper()
	cat, err := rules.DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	ev, err := rules.New(cat, rules.NewConfig())
	if err != nil {
		t.Fatal(err)
	}
	cl, err := audit.NewClusterClients(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := audit.RunCluster(ctx, ev, cl, audit.ClusterOptions{Kinds: cat.Kinds(), PageSize: pageSize})
	if err != nil {
		t.Fatalf("RunCluster: %v", err)
	}
	if len(rep.Errors) > 0 {
		t.Fatalf("input errors: %+v", rep.Errors)
	}
	return rep
}

// TestAuditClusterRun drives audit.RunCluster against the real API server
// with a small page size, so every kind with more objects than a page is read
// through Continue tokens.
func TestAuditClusterRun(t *testing.T) {
	env := setupAuditCluster(t)
	rep := runAuditCluster(t, env)

	t.Run("findings", func(t *testing.T) {
		dep := findingsFor(rep, "cluster://Deployment/"+nsSidecar+"/netadmin")
		if f, ok := dep["MESH0150"]; !ok || f.Severity != rules.SeverityCritical || !strings.Contains(f.Message, "NET_ADMIN") {
			t.Errorf("Deployment netadmin: want MESH0150 Critical quoting NET_ADMIN, got %+v", dep)
		}
		if f := dep["MESH0150"]; f.Object.Namespace != nsSidecar || f.Object.Name != "netadmin" || f.Line != 0 {
			t.Errorf("Deployment finding object/location: %+v", f)
		}
		// Live Pods are judged after injection: a Pod without a proxy in a
		// sidecar namespace is a finding.
		if _, ok := findingsFor(rep, "cluster://Pod/"+nsSidecar+"/bare")["MESH0112"]; !ok {
			t.Errorf("Pod bare: want MESH0112 (no proxy, post-injection), got %+v", findingsFor(rep, "cluster://Pod/"+nsSidecar+"/bare"))
		}
		if _, ok := findingsFor(rep, "cluster://PeerAuthentication/istio-system/default")["MESH0001"]; !ok {
			t.Errorf("mesh-wide PERMISSIVE PeerAuthentication: want MESH0001, got %+v", findingsFor(rep, "cluster://PeerAuthentication/istio-system/default"))
		}
		// The audit-only whole-mesh rule, anchored on the root namespace.
		if f, ok := findingsFor(rep, "cluster://Namespace/istio-system")["MESH0008"]; !ok || !strings.Contains(f.Message, `"default"`) || f.Severity != rules.SeverityHigh {
			t.Errorf("root namespace under a PERMISSIVE mesh-wide policy: want MESH0008 naming it, got %+v", findingsFor(rep, "cluster://Namespace/istio-system"))
		}
		if fs := findingsFor(rep, "cluster://PeerAuthentication/"+nsAmbient+"/strict"); len(fs) != 0 {
			t.Errorf("a STRICT namespace PeerAuthentication is clean, got %+v", fs)
		}
		for i := range extraServices {
			if fs := findingsFor(rep, fmt.Sprintf("cluster://Service/%s/svc-%d", nsSidecar, i)); len(fs) != 0 {
				t.Errorf("svc-%d is clean, got %+v", i, fs)
			}
		}
		if rep.ExitCode(rules.SeverityHigh) != audit.ExitFindings {
			t.Errorf("exit code %d, want %d", rep.ExitCode(rules.SeverityHigh), audit.ExitFindings)
		}
	})

	t.Run("the Istio release is read from istiod", func(t *testing.T) {
		if rep.Cluster.IstioVersions != "default=1.26" {
			t.Errorf("IstioVersions = %q, want default=1.26", rep.Cluster.IstioVersions)
		}
		fs := findingsFor(rep, "cluster://Deployment/"+nsSidecar+"/capital-false")
		if f, ok := fs["MESH0110"]; !ok || !strings.Contains(f.Message, `label sidecar.istio.io/inject is "False"`) {
			t.Errorf("Deployment capital-false: want MESH0110 (an opt-out under Istio 1.26), got %+v", fs)
		}
		if f, ok := fs["MESH0118"]; !ok || !strings.Contains(f.Message, "which Istio 1.26 reads as an opt-out") {
			t.Errorf("Deployment capital-false: want MESH0118 naming Istio 1.26, got %+v", fs)
		}
		var istiod *audit.KindListing
		for i, k := range rep.Cluster.Listed {
			if k.Kind == "Deployment" && k.ContextOnly {
				istiod = &rep.Cluster.Listed[i]
			}
		}
		if istiod == nil || istiod.Selector != "app=istiod" || istiod.Objects != 1 {
			t.Errorf("istiod's Deployments were not listed as context: %+v", rep.Cluster.Listed)
		}
	})

	t.Run("every object is read across pages", func(t *testing.T) {
		seen := map[string]bool{}
		for _, r := range rep.Results {
			if r.Status != audit.StatusEvaluated {
				t.Errorf("%s: status %s", r.Object, r.Status)
			}
			seen[r.File] = true
		}
		for i := range extraServices {
			if loc := fmt.Sprintf("cluster://Service/%s/svc-%d", nsSidecar, i); !seen[loc] {
				t.Errorf("%s was not audited", loc)
			}
		}
		for _, loc := range []string{"cluster://Namespace/" + nsSidecar, "cluster://Namespace/" + nsAmbient, "cluster://Deployment/" + nsSidecar + "/netadmin", "cluster://Pod/" + nsSidecar + "/bare"} {
			if !seen[loc] {
				t.Errorf("%s was not audited", loc)
			}
		}
		var svc *audit.KindListing
		for i, k := range rep.Cluster.Listed {
			if k.Kind == "Service" {
				svc = &rep.Cluster.Listed[i]
			}
		}
		if svc == nil {
			t.Fatalf("Services were not listed: %+v", rep.Cluster.Listed)
		}
		// extraServices + the kubernetes Service, pageSize at a time.
		if wantPages := (svc.Objects + pageSize - 1) / pageSize; svc.Objects < extraServices+1 || svc.Pages < wantPages || svc.Pages < 4 {
			t.Errorf("Services: %d objects in %d pages, want at least %d objects in %d pages", svc.Objects, svc.Pages, extraServices+1, wantPages)
		}
		// The webhook configurations are read as context (as the webhook's
		// informers hold them) and not audited.
		ctxOnly := map[string]bool{}
		for _, k := range rep.Cluster.Listed {
			if k.ContextOnly {
				ctxOnly[k.Kind] = true
			}
		}
		if !ctxOnly["MutatingWebhookConfiguration"] || !ctxOnly["ValidatingWebhookConfiguration"] {
			t.Errorf("webhook configurations were not listed as context: %+v", rep.Cluster.Listed)
		}
		for _, r := range rep.Results {
			if strings.HasSuffix(r.Object.Kind, "WebhookConfiguration") {
				t.Errorf("%s: context-only kinds are not audited", r.Object)
			}
		}
		if rep.Objects != len(rep.Results) {
			t.Errorf("Objects=%d but %d results", rep.Objects, len(rep.Results))
		}
	})

	t.Run("uninstalled CRD kinds are reported, not failed", func(t *testing.T) {
		missing := map[string]string{}
		for _, u := range rep.Cluster.Unavailable {
			missing[u.String()] = u.Reason
		}
		// The legacy authentication.istio.io API is not in Istio's current CRDs.
		for _, k := range []string{"authentication.istio.io/Policy", "authentication.istio.io/MeshPolicy"} {
			if !strings.Contains(missing[k], "not served") {
				t.Errorf("%s: want reported as not served, got %q (all: %+v)", k, missing[k], rep.Cluster.Unavailable)
			}
		}
		for _, k := range rep.Cluster.Listed {
			if k.Group == "authentication.istio.io" {
				t.Errorf("listed a kind the cluster does not serve: %+v", k)
			}
			if k.Group == "security.istio.io" && k.Version != "v1" {
				t.Errorf("%s: want the preferred served version v1, got %s", k.Kind, k.Version)
			}
		}
	})

	t.Run("per-namespace summary", func(t *testing.T) {
		sc := nsSummary(t, rep.Cluster.Namespaces, nsSidecar)
		if sc.MeshMode != rules.ModeSidecar {
			t.Errorf("%s mesh mode %q, want sidecar", nsSidecar, sc.MeshMode)
		}
		if sc.MTLS != (rules.MTLSResolution{Mode: "PERMISSIVE", Source: "istio-system/default", Level: "mesh"}) {
			t.Errorf("%s mTLS %+v, want PERMISSIVE from the mesh-wide policy", nsSidecar, sc.MTLS)
		}
		// Namespace + Deployment + Pod + Services.
		// Namespace + Deployments + Pod + Services.
		if want := 4 + extraServices; sc.Objects != want {
			t.Errorf("%s: %d objects, want %d", nsSidecar, sc.Objects, want)
		}
		// The compliance view: the Deployment's pods would be injected; the
		// bare Pod runs without its proxy, so it is not meshed; no
		// AuthorizationPolicy makes the namespace default-deny.
		// capital-false opts out under the detected Istio 1.26.
		if sc.Workloads != 3 || sc.Meshed != 1 || sc.Authz.DefaultDeny || sc.Authz.Level != "default" {
			t.Errorf("%s: workloads %d meshed %d authz %+v, want 3, 1 and open by default", nsSidecar, sc.Workloads, sc.Meshed, sc.Authz)
		}
		if sc.BySeverity["Critical"] < 2 || sc.Findings < 2 {
			t.Errorf("%s: want at least the NET_ADMIN and missing-proxy Criticals, got %d findings %v", nsSidecar, sc.Findings, sc.BySeverity)
		}
		am := nsSummary(t, rep.Cluster.Namespaces, nsAmbient)
		if am.MeshMode != rules.ModeAmbient {
			t.Errorf("%s mesh mode %q, want ambient", nsAmbient, am.MeshMode)
		}
		if am.MTLS != (rules.MTLSResolution{Mode: "STRICT", Source: nsAmbient + "/strict", Level: "namespace"}) {
			t.Errorf("%s mTLS %+v, want STRICT from its namespace policy", nsAmbient, am.MTLS)
		}
		// Its only finding is MESH0217: no managed default-deny (no controller runs here).
		if am.Findings != 1 || am.BySeverity["Medium"] != 1 || am.Objects != 2 {
			t.Errorf("%s: want 2 objects and only the MESH0217 Medium, got %+v", nsAmbient, am)
		}
		if _, ok := findingsFor(rep, "cluster://Namespace/"+nsAmbient)["MESH0217"]; !ok {
			t.Errorf("%s: want MESH0217, got %+v", nsAmbient, findingsFor(rep, "cluster://Namespace/"+nsAmbient))
		}
		if ks := nsSummary(t, rep.Cluster.Namespaces, "kube-system"); ks.MeshMode != rules.ModeNone {
			t.Errorf("kube-system mesh mode %q, want none", ks.MeshMode)
		}
	})
}

// runCLI runs `meshguard audit --cluster` in-process.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code := app.Main(ctx, args, app.Streams{Out: &out, Err: &errb})
	return code, out.String(), errb.String()
}

// TestAuditClusterCLI runs the command as a user would, in every output format.
func TestAuditClusterCLI(t *testing.T) {
	env := setupAuditCluster(t)
	base := []string{"audit", "--cluster", "--kubeconfig", env.KubeconfigPath, "--page-size", fmt.Sprint(pageSize)}
	depLoc := "cluster://Deployment/" + nsSidecar + "/netadmin"

	t.Run("text", func(t *testing.T) {
		code, out, errOut := runCLI(t, base...)
		if code != app.ExitFindings {
			t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, app.ExitFindings, out, errOut)
		}
		for _, want := range []string{
			depLoc + "\n  Critical  MESH0150 priv-net-admin:",
			"cluster://PeerAuthentication/istio-system/default\n",
			"Namespaces:",
			"Not served by the cluster (not audited):\n",
			"authentication.istio.io/MeshPolicy: ",
			"Istio releases detected (per injector revision): default=1.26\n",
			"FAIL: ",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("text report lacks %q:\n%s", want, out)
			}
		}
		var sidecarRow, ambientRow string
		for _, l := range strings.Split(out, "\n") {
			f := strings.Fields(l)
			if len(f) > 0 && f[0] == nsSidecar {
				sidecarRow = l
			}
			if len(f) > 0 && f[0] == nsAmbient {
				ambientRow = l
			}
		}
		if !strings.Contains(sidecarRow, "sidecar") || !strings.Contains(sidecarRow, "PERMISSIVE (mesh: istio-system/default)") || !strings.Contains(sidecarRow, "Critical") {
			t.Errorf("namespace row of %s: %q", nsSidecar, sidecarRow)
		}
		if !strings.Contains(ambientRow, "ambient") || !strings.Contains(ambientRow, "STRICT (namespace: "+nsAmbient+"/strict)") || !strings.HasSuffix(strings.TrimSpace(ambientRow), " 1 (1 Medium)") {
			t.Errorf("namespace row of %s: %q", nsAmbient, ambientRow)
		}
	})

	t.Run("json, kubeconfig from KUBECONFIG", func(t *testing.T) {
		t.Setenv("KUBECONFIG", env.KubeconfigPath)
		code, out, errOut := runCLI(t, "audit", "--cluster", "--page-size", "3", "-o", "json", "--fail-on", "Critical")
		if code != app.ExitFindings {
			t.Fatalf("exit %d, want %d (Critical findings)\nstderr:\n%s", code, app.ExitFindings, errOut)
		}
		if !strings.Contains(errOut, "meshguard audit: ") {
			t.Errorf("the summary goes to stderr for -o json: %q", errOut)
		}
		var doc audit.JSONReport
		if err := json.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatalf("json: %v\n%s", err, out)
		}
		var found bool
		for _, f := range doc.Findings {
			if f.Code == "MESH0150" && f.File == depLoc {
				found = true
			}
		}
		if !found {
			t.Errorf("no MESH0150 at %s in %+v", depLoc, doc.Findings)
		}
		if doc.Cluster == nil || len(doc.Cluster.Namespaces) == 0 || len(doc.Cluster.Unavailable) == 0 {
			t.Fatalf("json report lacks the cluster summary: %+v", doc.Cluster)
		}
		if s := nsSummary(t, doc.Cluster.Namespaces, nsAmbient); s.MTLS.Mode != "STRICT" || s.MeshMode != "ambient" {
			t.Errorf("json namespace summary of %s: %+v", nsAmbient, s)
		}
		if doc.Summary.ExitCode != app.ExitFindings || doc.Summary.FailOn != rules.SeverityCritical {
			t.Errorf("json summary: %+v", doc.Summary)
		}
	})

	t.Run("sarif", func(t *testing.T) {
		code, out, errOut := runCLI(t, append(base, "-o", "sarif")...)
		if code != app.ExitFindings {
			t.Fatalf("exit %d\nstderr:\n%s", code, errOut)
		}
		var log struct {
			Runs []struct {
				Results []struct {
					RuleID    string `json:"ruleId"`
					Locations []struct {
						PhysicalLocation struct {
							ArtifactLocation struct {
								URI string `json:"uri"`
							} `json:"artifactLocation"`
							Region *struct{} `json:"region"`
						} `json:"physicalLocation"`
					} `json:"locations"`
				} `json:"results"`
				Invocations []struct {
					Notifications []struct {
						Message struct{ Text string } `json:"message"`
					} `json:"toolExecutionNotifications"`
				} `json:"invocations"`
			} `json:"runs"`
		}
		if err := json.Unmarshal([]byte(out), &log); err != nil || len(log.Runs) != 1 {
			t.Fatalf("sarif: %v\n%s", err, out)
		}
		var found bool
		for _, r := range log.Runs[0].Results {
			for _, l := range r.Locations {
				if l.PhysicalLocation.Region != nil {
					t.Errorf("%s: a cluster object has no region: %+v", r.RuleID, l)
				}
				if r.RuleID == "MESH0150" && l.PhysicalLocation.ArtifactLocation.URI == depLoc {
					found = true
				}
			}
		}
		if !found {
			t.Errorf("no MESH0150 result located at %s", depLoc)
		}
		if n := log.Runs[0].Invocations; len(n) != 1 || !strings.Contains(fmt.Sprint(n[0].Notifications), "authentication.istio.io/Policy not audited") {
			t.Errorf("sarif notifications lack the unserved kinds: %+v", n)
		}
	})

	t.Run("junit", func(t *testing.T) {
		code, out, errOut := runCLI(t, append(base, "-o", "junit")...)
		if code != app.ExitFindings {
			t.Fatalf("exit %d\nstderr:\n%s", code, errOut)
		}
		var doc struct {
			Failures int `xml:"failures,attr"`
			Suites   []struct {
				Name  string `xml:"name,attr"`
				Cases []struct {
					Name    string    `xml:"name,attr"`
					File    string    `xml:"file,attr"`
					Failure *struct{} `xml:"failure"`
				} `xml:"testcase"`
				SystemOut string `xml:"system-out"`
			} `xml:"testsuite"`
		}
		if err := xml.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatalf("junit: %v\n%s", err, out)
		}
		var failed, summary bool
		for _, s := range doc.Suites {
			for _, c := range s.Cases {
				if c.File == depLoc && c.Failure != nil {
					failed = true
				}
			}
			if s.Name == "cluster summary" && strings.Contains(s.SystemOut, nsAmbient) {
				summary = true
			}
		}
		if !failed || doc.Failures == 0 {
			t.Errorf("junit: want a failing test case at %s", depLoc)
		}
		if !summary {
			t.Errorf("junit: no cluster summary suite naming %s", nsAmbient)
		}
	})

	t.Run("an unreachable cluster is an error, exit 2", func(t *testing.T) {
		code, _, errOut := runCLI(t, "audit", "--cluster", "--kubeconfig", env.KubeconfigPath, "--context", "no-such-context")
		if code != app.ExitUsage || !strings.Contains(errOut, "no-such-context") {
			t.Errorf("exit %d, stderr %q; want 2 naming the context", code, errOut)
		}
	})
}
