package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/meshguard/meshguard/cmd/meshguard/app"
	"github.com/meshguard/meshguard/quarantine"
	"github.com/meshguard/meshguard/test/e2e/framework"
	"github.com/meshguard/meshguard/webhook/netpol"
)

const quarantineTenant = "e2e-q-tenant"

// quarantineTenantRBAC lets the tenant edit the workloads and policies of
// the namespace, as a namespace owner can.
const quarantineTenantRBAC = `apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: owner, namespace: %[1]s}
rules:
- apiGroups: ["", apps, networking.k8s.io, security.istio.io]
  resources: [pods, deployments, replicasets, networkpolicies, authorizationpolicies]
  verbs: [get, list, watch, create, update, patch, delete, deletecollection]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: owner, namespace: %[1]s}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: owner}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: %[2]s}
`

// TestQuarantine: `meshguard quarantine` isolates a Deployment and its
// running pod at both layers, says which other NetworkPolicy still admits
// traffic, changes nothing in a dry run, resists a tenant (MESH0025,
// MESH0215, MESH0108 through the real kubectl), survives the default-deny
// controller's reconciles, and `meshguard release` restores the Deployment
// and the pod exactly.
func TestQuarantine(t *testing.T) {
	env := framework.Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	s := startNetpolServer(t, env, netpol.ModeEnforce, "e2e-quarantine")
	const ns = "e2e-q-shop"
	mustKubectl(t, ctx, env, namespaceYAML(ns, map[string]string{"istio-injection": "enabled"}), "apply", "-f", "-")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		kubectl(t, ctx, env, "", "delete", "namespace", ns, "--wait=false")
	})
	s.waitForSet(t, ns, netpol.ProfileSidecar)

	// The workload, a ReplicaSet and a running pod of it (envtest runs no
	// controllers: they are written as the controllers would), and a
	// tenant's NetworkPolicy that admits traffic to it. Written before the
	// webhook is registered: the pod has no sidecar in envtest.
	mustKubectl(t, ctx, env, fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: cart, namespace: %[1]s, labels: {app: cart}}
spec:
  selector: {matchLabels: {app: cart}}
  template:
    metadata: {labels: {app: cart}}
    spec:
      containers:
      - name: app
        image: registry.example.com/cart:1.0
        securityContext: {runAsUser: 1000, allowPrivilegeEscalation: false}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-web, namespace: %[1]s}
spec:
  podSelector: {matchLabels: {app: cart}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: web}}}]
`, ns), "apply", "-f", "-")
	depUID := mustKubectl(t, ctx, env, "", "get", "deployment", "cart", "-n", ns, "-o", "jsonpath={.metadata.uid}").Stdout
	mustKubectl(t, ctx, env, fmt.Sprintf(`apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: cart-7d9f
  namespace: %[1]s
  labels: {app: cart}
  ownerReferences: [{apiVersion: apps/v1, kind: Deployment, name: cart, uid: %[2]s, controller: true}]
spec:
  selector: {matchLabels: {app: cart}}
  template:
    metadata: {labels: {app: cart}}
    spec:
      containers: [{name: app, image: registry.example.com/cart:1.0}]
`, ns, depUID), "apply", "-f", "-")
	rsUID := mustKubectl(t, ctx, env, "", "get", "replicaset", "cart-7d9f", "-n", ns, "-o", "jsonpath={.metadata.uid}").Stdout
	mustKubectl(t, ctx, env, fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: cart-7d9f-x2k4p
  namespace: %[1]s
  labels: {app: cart}
  ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: cart-7d9f, uid: %[2]s, controller: true}]
spec:
  containers: [{name: app, image: registry.example.com/cart:1.0}]
`, ns, rsUID), "apply", "-f", "-")
	mustKubectl(t, ctx, env, fmt.Sprintf(quarantineTenantRBAC, ns, quarantineTenant), "apply", "-f", "-")
	s.register(t, env, ns)

	before := map[string]string{
		"deployment": objectJSON(t, ctx, env, ns, "deployment", "cart"),
		"pod":        objectJSON(t, ctx, env, ns, "pod", "cart-7d9f-x2k4p"),
	}
	cli := func(args ...string) (int, string, string) {
		return runCLI(t, append(args, "--kubeconfig", env.KubeconfigPath, "-n", ns)...)
	}

	t.Run("a dry run says what would change and changes nothing", func(t *testing.T) {
		code, out, errOut := cli("quarantine", "deployment/cart", "--reason", "beaconing to 203.0.113.9", "--dry-run")
		if code != app.ExitOK {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		for _, want := range []string{"Dry run: deployment/cart in namespace " + ns + " would be quarantined (ID deployment-cart)",
			"label its running pods meshguard.io/quarantined=deployment-cart: cart-7d9f-x2k4p",
			"create AuthorizationPolicy " + ns + "/meshguard-quarantine-deployment-cart",
			"NetworkPolicy " + ns + "/allow-web still allows ingress",
			"Guaranteed: the sidecar refuses every request"} {
			if !strings.Contains(out, want) {
				t.Errorf("dry run output lacks %q:\n%s", want, out)
			}
		}
		if got := objectJSON(t, ctx, env, ns, "deployment", "cart"); got != before["deployment"] {
			t.Errorf("the dry run changed the Deployment:\n%s", got)
		}
		if res := kubectl(t, ctx, env, "", "get", "authorizationpolicy", "meshguard-quarantine-deployment-cart", "-n", ns); res.ExitCode == 0 {
			t.Error("the dry run created the AuthorizationPolicy")
		}
	})

	t.Run("quarantine isolates the workload and its running pod at both layers", func(t *testing.T) {
		code, out, errOut := cli("quarantine", "deployment/cart", "--reason", "beaconing to 203.0.113.9")
		if code != app.ExitOK {
			t.Fatalf("exit %d: %s%s", code, out, errOut)
		}
		ap := mustKubectl(t, ctx, env, "", "get", "authorizationpolicy", "meshguard-quarantine-deployment-cart", "-n", ns,
			"-o", "jsonpath={.spec.action} {.spec.selector.matchLabels} {.metadata.labels.meshguard\\.io/managed}").Stdout
		if ap != `DENY {"meshguard.io/quarantined":"deployment-cart"} true` {
			t.Errorf("AuthorizationPolicy: %q", ap)
		}
		np := mustKubectl(t, ctx, env, "", "get", "networkpolicy", "meshguard-quarantine-deployment-cart", "-n", ns,
			"-o", "jsonpath={.spec.policyTypes} {.spec.ingress} {.spec.egress}").Stdout
		if strings.TrimSpace(np) != `["Ingress","Egress"]` {
			t.Errorf("NetworkPolicy: %q", np)
		}
		for _, o := range [][2]string{{"pod", "cart-7d9f-x2k4p"}, {"deployment", "cart"}} {
			if v := mustKubectl(t, ctx, env, "", "get", o[0], o[1], "-n", ns, "-o", "jsonpath={.metadata.labels.meshguard\\.io/quarantined}").Stdout; v != "deployment-cart" {
				t.Errorf("%s/%s quarantine label %q", o[0], o[1], v)
			}
		}
		if v := mustKubectl(t, ctx, env, "", "get", "deployment", "cart", "-n", ns, "-o", "jsonpath={.spec.template.metadata.labels.meshguard\\.io/quarantined}").Stdout; v != "deployment-cart" {
			t.Errorf("pod template label %q", v)
		}
		rec := mustKubectl(t, ctx, env, "", "get", "deployment", "cart", "-n", ns, "-o", "jsonpath={.metadata.annotations}").Stdout
		if !strings.Contains(rec, `"meshguard.io/quarantine-reason":"beaconing to 203.0.113.9"`) || strings.Contains(rec, `"meshguard.io/quarantine-by":"unknown"`) {
			t.Errorf("record: %s", rec)
		}
		ev := mustKubectl(t, ctx, env, "", "get", "events", "-n", ns, "--field-selector", "reason="+quarantine.ReasonQuarantined, "-o", "jsonpath={.items[*].message}").Stdout
		if !strings.Contains(ev, "beaconing to 203.0.113.9") {
			t.Errorf("no %s Event: %q", quarantine.ReasonQuarantined, ev)
		}
		// meshguard's managed allows exclude the quarantined pods.
		dns := mustKubectl(t, ctx, env, "", "get", "networkpolicy", netpol.NameAllowDNS, "-n", ns, "-o", "jsonpath={.spec.podSelector.matchExpressions}").Stdout
		if !strings.Contains(dns, `"key":"meshguard.io/quarantined","operator":"DoesNotExist"`) {
			t.Errorf("%s does not exclude quarantined pods: %s", netpol.NameAllowDNS, dns)
		}
		if code, _, errOut := cli("quarantine", "deployment/cart", "--reason", "again"); code == app.ExitOK || !strings.Contains(errOut, "already quarantined") {
			t.Errorf("a second quarantine: exit %d %q", code, errOut)
		}
	})

	t.Run("a tenant cannot lift it", func(t *testing.T) {
		as := "--as=" + quarantineTenant
		for _, c := range []struct {
			args []string
			code string
		}{
			{[]string{"delete", "authorizationpolicy", "meshguard-quarantine-deployment-cart", "-n", ns, as}, "MESH0025"},
			{[]string{"delete", "networkpolicy", "meshguard-quarantine-deployment-cart", "-n", ns, as}, "MESH0215"},
			{[]string{"label", "pod", "cart-7d9f-x2k4p", "-n", ns, "meshguard.io/quarantined-", as}, "MESH0108"},
			{[]string{"patch", "deployment", "cart", "-n", ns, "--type=json", as,
				"-p", `[{"op":"remove","path":"/spec/template/metadata/labels/meshguard.io~1quarantined"}]`}, "MESH0108"},
			{[]string{"annotate", "deployment", "cart", "-n", ns, "meshguard.io/quarantine-reason=false alarm", "--overwrite", as}, "MESH0108"},
		} {
			assertDenied(t, kubectl(t, ctx, env, "", c.args...), c.code)
		}
	})

	t.Run("the default-deny controller's reconciles keep the quarantine's NetworkPolicy", func(t *testing.T) {
		// Switch the namespace's profile and back: the controller removes and
		// creates managed policies both times.
		mustKubectl(t, ctx, env, "", "label", "namespace", ns, netpol.LabelProfile+"=gateway")
		s.waitForSet(t, ns, netpol.ProfileGateway)
		mustKubectl(t, ctx, env, "", "label", "namespace", ns, netpol.LabelProfile+"-")
		s.waitForSet(t, ns, netpol.ProfileSidecar)
		if _, ok := s.policies(t, ns)["meshguard-quarantine-deployment-cart"]; !ok {
			t.Error("the controller removed the quarantine's NetworkPolicy")
		}
	})

	t.Run("release restores every object exactly", func(t *testing.T) {
		code, out, errOut := cli("release", "deployment/cart")
		if code != app.ExitOK {
			t.Fatalf("exit %d: %s%s", code, out, errOut)
		}
		for kind, want := range before {
			name := "cart"
			if kind == "pod" {
				name = "cart-7d9f-x2k4p"
			}
			if got := objectJSON(t, ctx, env, ns, kind, name); got != want {
				t.Errorf("%s/%s after release differs from before the quarantine:\nbefore %s\nafter  %s", kind, name, want, got)
			}
		}
		for _, kind := range []string{"authorizationpolicy", "networkpolicy"} {
			if res := kubectl(t, ctx, env, "", "get", kind, "meshguard-quarantine-deployment-cart", "-n", ns); res.ExitCode == 0 {
				t.Errorf("the quarantine's %s is still there", kind)
			}
		}
		if code, _, errOut := cli("release", "deployment/cart"); code == app.ExitOK || !strings.Contains(errOut, "is not quarantined") {
			t.Errorf("a second release: exit %d %q", code, errOut)
		}
	})
}

// objectJSON is an object as the API server returns it, without the fields
// the server changes on every write (resourceVersion, generation, managed
// fields) and without status.
func objectJSON(t *testing.T, ctx context.Context, env *framework.Env, ns, kind, name string) string {
	t.Helper()
	out := mustKubectl(t, ctx, env, "", "get", kind, name, "-n", ns, "-o", "json").Stdout
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatal(err)
	}
	md, _ := m["metadata"].(map[string]any)
	for _, k := range []string{"resourceVersion", "generation", "managedFields"} {
		delete(md, k)
	}
	delete(m, "status")
	b, _ := json.Marshal(m)
	return string(b)
}
