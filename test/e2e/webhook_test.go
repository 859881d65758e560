package e2e_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/meshguard/meshguard/test/e2e/framework"
)

// testPolicy is the admin policy of the e2e server. Namespaces whose names
// start with e2e-relaxed- may weaken their mode by label; the envtest admin
// (system:masters) is a meshguard admin; one exemption applies, one expired.
func testPolicy(now time.Time) string {
	return fmt.Sprintf(`mode: enforce
namespaceModes: ["e2e-relaxed-*"]
admins:
  groups: ["system:masters"]
exemptions:
- name: legacy-packet-capture
  codes: [MESH0151]
  namespaces: [e2e-exempt]
  names: ["legacy-*"]
  reason: the legacy packet capture tool needs NET_RAW until it is replaced (OPS-1234)
  expires: %s
- name: old-packet-capture
  codes: [MESH0151]
  namespaces: [e2e-exempt]
  names: ["old-*"]
  reason: replaced last quarter
  expires: %s
`, now.Add(24*time.Hour).UTC().Format(time.RFC3339), now.Add(-24*time.Hour).UTC().Format(time.RFC3339))
}

// TestWebhook runs `meshguard serve` with the production wiring against the
// real API server, registers the webhook configurations generated from the
// catalog, and drives the API server with the real kubectl. The subtests run
// in parallel, each in its own namespaces.
func TestWebhook(t *testing.T) {
	env := framework.Shared(t)
	mg := startMeshguard(t, env, testPolicy(time.Now()))
	mg.register(t, env)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// The namespaces the subtests use, created by the admin up front so the
	// mutating webhook enrolls them and meshguard's cache holds them.
	namespaces := map[string]map[string]string{
		"e2e-deny":                 nil,
		"e2e-events":               nil,
		"e2e-relaxed-events":       {"meshguard.io/mode": "warn"},
		"e2e-dryrun":               nil,
		"e2e-exempt":               nil,
		"e2e-debug":                nil,
		"e2e-tenant":               nil,
		"e2e-relaxed-warn":         {"meshguard.io/mode": "warn"},
		"e2e-relaxed-audit":        {"meshguard.io/mode": "audit"},
		"e2e-relaxed-grandfather":  {"meshguard.io/mode": "audit"},
		"e2e-ambient":              {"istio.io/dataplane-mode": "ambient"},
		ownNamespace:               nil,
		"istio-system":             nil,
		"e2e-not-relaxed-disabled": {"meshguard.io/mode": "audit"},
	}
	var docs []string
	for name, labels := range namespaces {
		docs = append(docs, namespaceYAML(name, labels))
	}
	mustKubectl(t, ctx, env, strings.Join(docs, "---\n"), "apply", "-f", "-")
	// Leave the shared control plane without the objects the tests admitted
	// (namespaces stay: envtest runs no namespace controller to empty them).
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for name := range namespaces {
			if name == "istio-system" {
				continue
			}
			kubectl(t, ctx, env, "", "delete", "deployments,pods,services,peerauthentications.security.istio.io,authorizationpolicies.security.istio.io", "--all", "-n", name, "--wait=false")
		}
	})
	for name, labels := range namespaces {
		want := map[string]string{}
		for k, v := range labels {
			want[k] = v
		}
		if name != ownNamespace && name != "istio-system" && labels["istio.io/dataplane-mode"] == "" {
			want["istio-injection"] = "enabled"
		}
		mg.waitForNamespace(t, name, want)
	}

	t.Run("kubectl", func(t *testing.T) {
		t.Run("a denied apply prints the finding for each rule family", func(t *testing.T) {
			t.Parallel()
			testRuleFamilies(t, ctx, env)
		})
		t.Run("warn mode prints a would-deny warning and admits", func(t *testing.T) {
			t.Parallel()
			testWarnMode(t, ctx, env)
		})
		t.Run("a server-side dry run is denied the same way and persists nothing", func(t *testing.T) {
			t.Parallel()
			testDryRun(t, ctx, env)
		})
		t.Run("audit mode admits and records the finding in an audit annotation", func(t *testing.T) {
			t.Parallel()
			testAuditMode(t, ctx, env, mg)
		})
		t.Run("an admin exemption admits, an expired one does not", func(t *testing.T) {
			t.Parallel()
			testExemption(t, ctx, env)
		})
		t.Run("an ephemeral container with NET_ADMIN is denied", func(t *testing.T) {
			t.Parallel()
			testEphemeralContainer(t, ctx, env)
		})
		t.Run("an unrelated update of a grandfathered Deployment is admitted", func(t *testing.T) {
			t.Parallel()
			testGrandfathered(t, ctx, env, mg)
		})
		t.Run("meshguard's own namespace is never blocked or enrolled", func(t *testing.T) {
			t.Parallel()
			testOwnNamespace(t, ctx, env)
		})
		t.Run("denials and warnings are recorded as Events", func(t *testing.T) {
			t.Parallel()
			testAdmissionEvents(t, ctx, env)
		})
		t.Run("new namespaces are enrolled and only admins change meshguard's labels", func(t *testing.T) {
			t.Parallel()
			testNamespaces(t, ctx, env)
		})
	})
}

// assertDenied checks that kubectl failed with meshguard's Forbidden denial
// naming every code, with a fix.
func assertDenied(t *testing.T, res framework.KubectlResult, codes ...string) {
	t.Helper()
	if res.ExitCode == 0 {
		t.Errorf("want a denial, kubectl succeeded:\n%s", res)
		return
	}
	for _, want := range append([]string{"Error from server (Forbidden)", "denied the request: meshguard: ", "Fix: "}, codes...) {
		if !strings.Contains(res.Stderr, want) {
			t.Errorf("kubectl's error does not contain %q:\n%s", want, res)
		}
	}
}

func testRuleFamilies(t *testing.T, ctx context.Context, env *framework.Env) {
	ns := "e2e-deny"
	cases := []struct {
		name, manifest string
		code, want     string
	}{
		{"a Deployment adding NET_ADMIN", deploymentYAML(ns, "net-admin", deploymentOpts{Caps: []string{"NET_ADMIN"}}),
			"MESH0150", `Deployment/e2e-deny/net-admin violates 1 rule: (1) MESH0150 priv-net-admin: container "app" adds capability "NET_ADMIN". Fix: Remove NET_ADMIN`},
		{"a mesh-wide PERMISSIVE PeerAuthentication", `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: e2e-mesh-wide, namespace: istio-system}
spec: {mtls: {mode: PERMISSIVE}}
`, "MESH0001", "PeerAuthentication/istio-system/e2e-mesh-wide"},
		{"a DestinationRule disabling TLS towards an in-mesh host", fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: %s}
spec:
  host: reviews.%s.svc.cluster.local
  trafficPolicy: {tls: {mode: DISABLE}}
`, ns, ns), "MESH0010", "sets mode DISABLE towards in-mesh host"},
		{"an allow-all AuthorizationPolicy", fmt.Sprintf(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-all, namespace: %s}
spec:
  action: ALLOW
  rules: [{}]
`, ns), "MESH0020", "AuthorizationPolicy/e2e-deny/allow-all"},
		{"a Service exposing the Envoy admin port", fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: envoy-admin, namespace: %s}
spec:
  selector: {app: web}
  ports: [{name: admin, port: 15000, targetPort: 15000}]
`, ns), "MESH0200", "Service/e2e-deny/envoy-admin"},
		{"a workload opting out of sidecar injection", deploymentYAML(ns, "opt-out", deploymentOpts{PodLabels: map[string]string{"sidecar.istio.io/inject": "false"}}),
			"MESH0110", "Deployment/e2e-deny/opt-out"},
		{"a Pod without istio-proxy in a sidecar namespace", fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: no-proxy, namespace: %s, labels: {app: no-proxy}}
spec:
  containers: [{name: app, image: registry.example.com/shop/app:1.0}]
`, ns), "MESH0112", `pod has no istio-proxy container although namespace "e2e-deny" is sidecar-injected`},
		// Istio's ConfigMaps pass the workloads webhook's istio-configmaps-only
		// matchCondition: a revision's mesh configuration (istio-<rev> with a
		// mesh key) and an injector's values.
		{"a revision's mesh configuration turning off traffic capture", `apiVersion: v1
kind: ConfigMap
metadata: {name: istio-e2e, namespace: istio-system}
data:
  mesh: |-
    defaultConfig:
      interceptionMode: NONE
    rootNamespace: istio-system
`, "MESH0303", `ConfigMap/istio-system/istio-e2e violates 1 rule: (1) MESH0303 meshcfg-interception-none: data.mesh sets defaultConfig.interceptionMode "NONE"`},
		{"injector values making every proxy privileged", `apiVersion: v1
kind: ConfigMap
metadata: {name: istio-sidecar-injector-e2e, namespace: istio-system}
data:
  values: '{"global": {"proxy": {"privileged": true}}, "revision": "e2e"}'
`, "MESH0305", "ConfigMap/istio-system/istio-sidecar-injector-e2e"},
	}
	// The group returns when its parallel subtests are done.
	t.Run("family", func(t *testing.T) {
		for _, tc := range cases {
			t.Run(tc.name+" is denied with "+tc.code, func(t *testing.T) {
				t.Parallel()
				res := kubectl(t, ctx, env, tc.manifest, "apply", "-f", "-")
				assertDenied(t, res, tc.code, tc.want)
				t.Logf("kubectl printed:\n%s", strings.TrimSpace(res.Stderr))
			})
		}
	})
	// Nothing was persisted.
	res := kubectl(t, ctx, env, "", "get", "deployments,pods,services,destinationrules.networking.istio.io,authorizationpolicies.security.istio.io", "-n", ns, "-o", "name")
	if res.ExitCode != 0 || strings.TrimSpace(res.Stdout) != "" {
		t.Errorf("denied objects must not exist:\n%s", res)
	}
	if res := kubectl(t, ctx, env, "", "get", "peerauthentication.security.istio.io", "e2e-mesh-wide", "-n", "istio-system"); res.ExitCode == 0 {
		t.Errorf("the denied PeerAuthentication must not exist:\n%s", res)
	}
	if res := kubectl(t, ctx, env, "", "get", "configmaps", "istio-e2e", "istio-sidecar-injector-e2e", "-n", "istio-system", "-o", "name"); strings.TrimSpace(res.Stdout) != "" {
		t.Errorf("the denied ConfigMaps must not exist:\n%s", res)
	}
}

func testWarnMode(t *testing.T, ctx context.Context, env *framework.Env) {
	ns := "e2e-relaxed-warn"
	res := kubectl(t, ctx, env, deploymentYAML(ns, "net-raw", deploymentOpts{Caps: []string{"NET_RAW"}}), "apply", "-f", "-")
	if res.ExitCode != 0 {
		t.Fatalf("warn mode must admit a High finding:\n%s", res)
	}
	if !strings.Contains(res.Stderr, "Warning: meshguard would deny: MESH0151 priv-net-raw (High): ") {
		t.Errorf("kubectl must print the would-deny warning:\n%s", res)
	}
	if !strings.Contains(res.Stdout, "deployment.apps/net-raw created") {
		t.Errorf("kubectl must report the Deployment created:\n%s", res)
	}
	t.Logf("kubectl printed:\n%s%s", res.Stderr, res.Stdout)
	// Critical findings stay denied in a namespace that weakened its mode.
	assertDenied(t, kubectl(t, ctx, env, deploymentYAML(ns, "net-admin", deploymentOpts{Caps: []string{"NET_ADMIN"}}), "apply", "-f", "-"), "MESH0150")
	// The mode label counts only where the admin policy allows it.
	assertDenied(t, kubectl(t, ctx, env, deploymentYAML("e2e-not-relaxed-disabled", "net-raw", deploymentOpts{Caps: []string{"NET_RAW"}}), "apply", "-f", "-"), "MESH0151")
}

func testDryRun(t *testing.T, ctx context.Context, env *framework.Env) {
	ns := "e2e-dryrun"
	manifest := deploymentYAML(ns, "net-admin", deploymentOpts{Caps: []string{"NET_ADMIN"}})
	dry := kubectl(t, ctx, env, manifest, "apply", "--dry-run=server", "-f", "-")
	assertDenied(t, dry, "MESH0150")
	real := kubectl(t, ctx, env, manifest, "apply", "-f", "-")
	assertDenied(t, real, "MESH0150")
	if d, r := denial(dry.Stderr), denial(real.Stderr); d == "" || d != r {
		t.Errorf("a dry run must be denied exactly like the real request:\ndry run: %s\nreal:    %s", d, r)
	}
	get := kubectl(t, ctx, env, "", "get", "deployment", "net-admin", "-n", ns)
	if get.ExitCode == 0 || !strings.Contains(get.Stderr, `"net-admin" not found`) {
		t.Errorf("nothing may be persisted:\n%s", get)
	}
	// A clean dry run is admitted and persists nothing either.
	ok := mustKubectl(t, ctx, env, deploymentYAML(ns, "clean", deploymentOpts{}), "apply", "--dry-run=server", "-f", "-")
	if !strings.Contains(ok.Stdout, "created (server dry run)") {
		t.Errorf("kubectl must report a server dry run:\n%s", ok)
	}
	if get := kubectl(t, ctx, env, "", "get", "deployment", "clean", "-n", ns); get.ExitCode == 0 {
		t.Errorf("a dry run must not persist:\n%s", get)
	}
}

// denial is the denial message without kubectl's "when creating" preamble.
func denial(stderr string) string {
	_, after, ok := strings.Cut(stderr, "denied the request: ")
	if !ok {
		return ""
	}
	return strings.TrimSpace(after)
}

func testAuditMode(t *testing.T, ctx context.Context, env *framework.Env, mg *meshguard) {
	ns := "e2e-relaxed-audit"
	before := mg.metric(t, "meshguard_findings_total", map[string]string{"code": "MESH0200", "action": "audit"})
	svc := fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: envoy-admin, namespace: %s}
spec:
  selector: {app: web}
  ports: [{name: admin, port: 15000, targetPort: 15000}]
`, ns)
	res := mustKubectl(t, ctx, env, svc, "apply", "-f", "-")
	if strings.Contains(res.Stderr, "Warning") {
		t.Errorf("audit mode must not warn:\n%s", res)
	}
	if after := mg.metric(t, "meshguard_findings_total", map[string]string{"code": "MESH0200", "action": "audit"}); after != before+1 {
		t.Errorf("meshguard_findings_total{code=MESH0200,action=audit}: want %v, got %v", before+1, after)
	}
	if auditLog == nil {
		t.Fatal("the control plane runs without an audit log (see the TestMain output)")
	}
	// The API server writes the event when the response completes.
	var ann map[string]string
	if !poll(10*time.Second, 50*time.Millisecond, func() bool {
		events, err := auditLog.Events()
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range events {
			if ev.Verb == "create" && ev.ObjectRef != nil && ev.ObjectRef.Resource == "services" && ev.ObjectRef.Namespace == ns &&
				ev.ObjectRef.Name == "envoy-admin" && ev.ResponseStatus != nil && ev.ResponseStatus.Code == 201 {
				ann = ev.Annotations
				return true
			}
		}
		return false
	}) {
		t.Fatalf("no audit event for the Service's create in %s", auditLog.Path)
	}
	key := "workloads.meshguard.io/MESH0200"
	if v := ann[key]; !strings.HasPrefix(v, "audit: ") || !strings.Contains(v, "15000") {
		t.Errorf("audit annotation %s: want the audited finding, got %q (all: %v)", key, v, ann)
	} else {
		t.Logf("audit log annotation %s: %s", key, v)
	}
}

func testExemption(t *testing.T, ctx context.Context, env *framework.Env) {
	ns := "e2e-exempt"
	res := mustKubectl(t, ctx, env, deploymentYAML(ns, "legacy-capture", deploymentOpts{Caps: []string{"NET_RAW"}}), "apply", "-f", "-")
	if strings.Contains(res.Stderr, "MESH0151") {
		t.Errorf("an exempted finding must not be reported to the user:\n%s", res)
	}
	// The exemption is exact: another code on the same object is not exempt.
	assertDenied(t, kubectl(t, ctx, env, deploymentYAML(ns, "legacy-capture", deploymentOpts{Caps: []string{"NET_RAW"}, HostNetwork: true}), "apply", "-f", "-"), "MESH0160")
	// An expired exemption no longer applies, and the user is told.
	expired := kubectl(t, ctx, env, deploymentYAML(ns, "old-capture", deploymentOpts{Caps: []string{"NET_RAW"}}), "apply", "-f", "-")
	assertDenied(t, expired, "MESH0151")
	if !strings.Contains(expired.Stderr, `exemption "old-packet-capture" has expired`) {
		t.Errorf("kubectl must print that the exemption expired:\n%s", expired)
	}
	t.Logf("expired exemption, kubectl printed:\n%s", expired.Stderr)
}

// injectedPod looks like a Pod after Istio's injector ran (istio-cni flavour),
// which the API server here does not run.
func injectedPod(ns, name string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
  namespace: %s
  labels: {app: %s, security.istio.io/tlsMode: istio, service.istio.io/canonical-name: %s}
  annotations:
    sidecar.istio.io/status: '{"initContainers":["istio-validation"],"containers":["istio-proxy"],"volumes":[],"imagePullSecrets":null,"revision":"default"}'
spec:
  initContainers:
  - name: istio-validation
    image: docker.io/istio/proxyv2:1.24.2
    args: ["istio-iptables", "-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT", "-i", "*", "-x", "", "-b", "*", "-d", "15090,15021,15020", "--log_output_level=default:info", "--run-validation", "--skip-rule-apply"]
    securityContext:
      allowPrivilegeEscalation: false
      capabilities: {drop: ["ALL"]}
      privileged: false
      readOnlyRootFilesystem: true
      runAsGroup: 1337
      runAsNonRoot: true
      runAsUser: 1337
  containers:
  - name: app
    image: registry.example.com/shop/app:1.0
  - name: istio-proxy
    image: docker.io/istio/proxyv2:1.24.2
    args: ["proxy", "sidecar", "--domain", "$(POD_NAMESPACE).svc.cluster.local"]
    ports: [{containerPort: 15090, name: http-envoy-prom, protocol: TCP}]
    securityContext:
      allowPrivilegeEscalation: false
      capabilities: {drop: ["ALL"]}
      privileged: false
      readOnlyRootFilesystem: true
      runAsGroup: 1337
      runAsNonRoot: true
      runAsUser: 1337
`, name, ns, name, name)
}

func testEphemeralContainer(t *testing.T, ctx context.Context, env *framework.Env) {
	ns := "e2e-debug"
	mustKubectl(t, ctx, env, injectedPod(ns, "reviews"), "apply", "-f", "-")
	// What `kubectl debug --profile=netadmin` sends: an ephemeral container
	// with NET_ADMIN through the pods/ephemeralcontainers subresource.
	patch := `{"spec":{"ephemeralContainers":[{"name":"debugger","image":"busybox:1.36","command":["sh"],"stdin":true,"tty":true,"targetContainerName":"app","securityContext":{"capabilities":{"add":["NET_ADMIN","NET_RAW"]}}}]}}`
	res := kubectl(t, ctx, env, "", "patch", "pod", "reviews", "-n", ns, "--subresource=ephemeralcontainers", "--type=strategic", "-p", patch)
	assertDenied(t, res, "MESH0150", `Pod/e2e-debug/reviews`, `ephemeral container "debugger"`)
	t.Logf("kubectl printed:\n%s", strings.TrimSpace(res.Stderr))
	get := mustKubectl(t, ctx, env, "", "get", "pod", "reviews", "-n", ns, "-o", "jsonpath={.spec.ephemeralContainers[*].name}")
	if strings.TrimSpace(get.Stdout) != "" {
		t.Errorf("the denied ephemeral container must not be added, the pod has %q", get.Stdout)
	}
	// An unprivileged debug container is admitted: the subresource is judged, not blocked.
	plain := `{"spec":{"ephemeralContainers":[{"name":"shell","image":"busybox:1.36","command":["sh"],"stdin":true,"tty":true,"targetContainerName":"app"}]}}`
	mustKubectl(t, ctx, env, "", "patch", "pod", "reviews", "-n", ns, "--subresource=ephemeralcontainers", "--type=strategic", "-p", plain)
}

func testGrandfathered(t *testing.T, ctx context.Context, env *framework.Env, mg *meshguard) {
	ns := "e2e-relaxed-grandfather"
	// Created while the namespace was in audit mode: NET_RAW is High, so it is admitted.
	old := deploymentYAML(ns, "capture", deploymentOpts{Caps: []string{"NET_RAW"}, Image: "registry.example.com/capture:1.0"})
	mustKubectl(t, ctx, env, old, "apply", "-f", "-")
	// The admin returns the namespace to enforce.
	mustKubectl(t, ctx, env, "", "label", "namespace", ns, "meshguard.io/mode-")
	mg.waitForNamespace(t, ns, map[string]string{"meshguard.io/mode": ""})
	assertDenied(t, kubectl(t, ctx, env, deploymentYAML(ns, "new-capture", deploymentOpts{Caps: []string{"NET_RAW"}}), "apply", "-f", "-"), "MESH0151")

	// Unrelated edits of the grandfathered Deployment go through: scale (the
	// scale subresource) and a replicas and image change of the object itself
	// (an UPDATE the webhook judges).
	mustKubectl(t, ctx, env, "", "scale", "deployment", "capture", "-n", ns, "--replicas=3")
	bumped := deploymentYAML(ns, "capture", deploymentOpts{Caps: []string{"NET_RAW"}, Image: "registry.example.com/capture:1.1", Replicas: 2})
	res := mustKubectl(t, ctx, env, bumped, "apply", "-f", "-")
	if !strings.Contains(res.Stdout, "deployment.apps/capture configured") {
		t.Errorf("the update must be applied:\n%s", res)
	}
	// A new violation on the same object is judged in full.
	worse := deploymentYAML(ns, "capture", deploymentOpts{Caps: []string{"NET_RAW"}, Image: "registry.example.com/capture:1.1", Replicas: 2, HostNetwork: true})
	assertDenied(t, kubectl(t, ctx, env, worse, "apply", "-f", "-"), "MESH0160")
}

func testOwnNamespace(t *testing.T, ctx context.Context, env *framework.Env) {
	res := mustKubectl(t, ctx, env, deploymentYAML(ownNamespace, "net-admin", deploymentOpts{Caps: []string{"NET_ADMIN"}}), "apply", "-f", "-")
	if strings.Contains(res.Stderr, "meshguard") {
		t.Errorf("meshguard must not even warn in its own namespace:\n%s", res)
	}
	pod := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: no-proxy, namespace: %s}
spec:
  containers: [{name: app, image: registry.example.com/meshguard:1.0}]
`, ownNamespace)
	mustKubectl(t, ctx, env, pod, "apply", "-f", "-")
	labels := mustKubectl(t, ctx, env, "", "get", "namespace", ownNamespace, "-o", "jsonpath={.metadata.labels}")
	if strings.Contains(labels.Stdout, "istio-injection") {
		t.Errorf("meshguard's own namespace must not be enrolled, labels %s", labels.Stdout)
	}
}

func testNamespaces(t *testing.T, ctx context.Context, env *framework.Env) {
	mustKubectl(t, ctx, env, "", "create", "namespace", "e2e-enrolled")
	got := mustKubectl(t, ctx, env, "", "get", "namespace", "e2e-enrolled", "-o", `jsonpath={.metadata.labels.istio-injection}`)
	if got.Stdout != "enabled" {
		t.Errorf("a new namespace must get istio-injection=enabled, got %q", got.Stdout)
	}
	amb := mustKubectl(t, ctx, env, "", "get", "namespace", "e2e-ambient", "-o", "jsonpath={.metadata.labels}")
	if strings.Contains(amb.Stdout, "istio-injection") {
		t.Errorf("a namespace that states its enrollment must keep it, labels %s", amb.Stdout)
	}

	// A tenant may edit its namespace's labels (RBAC) but not meshguard's.
	grantNamespaceEditor(t, ctx, env, "alice")
	mustKubectl(t, ctx, env, "", "label", "namespace", "e2e-tenant", "team=payments", "--as=alice")
	res := kubectl(t, ctx, env, "", "label", "namespace", "e2e-tenant", "meshguard.io/mode=audit", "--as=alice")
	assertDenied(t, res, "MESH0106", "alice", "not a meshguard admin")
	t.Logf("kubectl printed:\n%s", strings.TrimSpace(res.Stderr))
	// An admin may.
	mustKubectl(t, ctx, env, "", "label", "namespace", "e2e-tenant", "meshguard.io/mode=audit")
}
