package chart

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/meshguard/meshguard/cmd/meshguard/app"
	"github.com/meshguard/meshguard/test/e2e/framework"
)

// TestApply applies the rendered chart to a real API server in both
// certificate modes, first as a server-side dry run and then for real, shows
// that the installed webhooks (with no meshguard answering) refuse what they
// match, runs the pre-delete hook's command with the hook's own identity and
// RBAC, and checks that no webhook configuration is left behind. The modes run
// one after the other: an installed webhook with failurePolicy Fail refuses
// the next install's namespace until it is uninstalled, which is the point.
func TestApply(t *testing.T) {
	env := framework.Shared(t)
	for _, tc := range []struct {
		mode, release, namespace, fullname string
		args                               []string
	}{
		{"self-signed", "meshguard", "meshguard", "meshguard", []string{"--set", "webhook.enrollNamespaces=istio-injection=enabled"}},
		{"cert-manager", "guard", "guard-system", "guard-meshguard", []string{"--set", "certificates.mode=cert-manager", "--set", "metrics.serviceMonitor.enabled=false"}},
	} {
		t.Run("the chart installs and uninstalls cleanly in "+tc.mode+" mode", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			if tc.mode == "cert-manager" {
				if err := env.InstallCertManagerCRDs(); err != nil {
					t.Fatal(err)
				}
			}
			c := render(t, tc.release, tc.namespace, tc.args...)
			kubectl(t, ctx, env, "", "create", "namespace", tc.namespace)
			all := c.withoutHooks() + c.hooks()

			out := kubectl(t, ctx, env, all, "apply", "--dry-run=server", "-f", "-")
			if !strings.Contains(out, "(server dry run)") {
				t.Errorf("no server dry run happened:\n%s", out)
			}
			if res := run(t, ctx, env, "", "get", "validatingwebhookconfiguration", tc.fullname); res.ExitCode == 0 {
				t.Fatalf("the server-side dry run created the webhook configuration")
			}

			kubectl(t, ctx, env, c.withoutHooks(), "apply", "-f", "-")
			kubectl(t, ctx, env, c.hooks(), "apply", "-f", "-")
			defer func() {
				// Namespaces stay (no namespace controller runs here); everything else goes.
				run(t, context.Background(), env, all, "delete", "--ignore-not-found", "--wait=false", "-f", "-")
			}()
			for _, kind := range []string{"validatingwebhookconfiguration", "deployment", "service", "poddisruptionbudget", "configmap", "role", "clusterrole"} {
				args := []string{"get", kind, tc.fullname}
				if kind == "configmap" {
					args[2] += "-policy"
				}
				if kind != "validatingwebhookconfiguration" && kind != "clusterrole" {
					args = append(args, "-n", tc.namespace)
				}
				kubectl(t, ctx, env, "", args...)
			}
			if tc.mode == "cert-manager" {
				kubectl(t, ctx, env, "", "get", "certificate,issuer", "-n", tc.namespace)
			}
			checkCanI(t, ctx, env, tc.namespace, tc.fullname, tc.mode)

			// The installed webhook answers nothing yet (no meshguard runs):
			// with failurePolicy Fail it refuses what it matches.
			probe := "probe-" + tc.release
			res := run(t, ctx, env, "", "create", "namespace", probe)
			if res.ExitCode == 0 || !strings.Contains(res.Stderr, "meshguard.io") {
				t.Fatalf("creating a namespace was not refused by the unanswered webhook:\n%s", res)
			}

			// What the pre-delete hook Job runs, with the Job's identity.
			hookArgs := append(uninstallArgs(t, c, tc.fullname), "--kubeconfig", impersonating(t, env, fmt.Sprintf("system:serviceaccount:%s:%s-uninstall", tc.namespace, tc.fullname)))
			var stdout, stderr bytes.Buffer
			if code := app.Main(ctx, hookArgs, app.Streams{Out: &stdout, Err: &stderr}); code != 0 {
				t.Fatalf("meshguard %s: exit %d\n%s%s", strings.Join(hookArgs, " "), code, stdout.String(), stderr.String())
			}
			for _, kind := range []string{"validatingwebhookconfiguration", "mutatingwebhookconfiguration"} {
				if res := run(t, ctx, env, "", "get", kind, tc.fullname); res.ExitCode == 0 || !strings.Contains(res.Stderr, "NotFound") {
					t.Errorf("%s %s is left behind after the uninstall hook:\n%s", kind, tc.fullname, res)
				}
			}
			kubectl(t, ctx, env, "", "create", "namespace", probe)
		})
	}
}

// TestHelmInstallUpgradeUninstall installs the chart with Helm itself,
// simulates what meshguard writes in the cluster (the CA bundle and the
// Secret's data), upgrades, and checks that the upgrade keeps them, then
// uninstalls the way Helm's pre-delete hook does.
func TestHelmInstallUpgradeUninstall(t *testing.T) {
	env := framework.Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const release, ns = "mg", "mg-helm"
	fullname := "mg-meshguard"
	helmKube := func(args ...string) string {
		t.Helper()
		out, stderr, err := helm(t, append(args, "--kubeconfig", env.KubeconfigPath)...)
		if err != nil {
			t.Fatalf("helm %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
		}
		return out
	}
	helmKube("install", release, chartDir, "--namespace", ns, "--create-namespace")

	ca := base64.StdEncoding.EncodeToString([]byte("-----BEGIN CERTIFICATE-----\ninjected\n-----END CERTIFICATE-----\n"))
	patch := `[` + strings.TrimSuffix(strings.Repeat(`{"op":"add","path":"/webhooks/%d/clientConfig/caBundle","value":"`+ca+`"},`, 3), ",") + `]`
	patch = fmt.Sprintf(patch, 0, 1, 2)
	kubectl(t, ctx, env, "", "patch", "validatingwebhookconfiguration", fullname, "--type=json", "-p", patch)
	kubectl(t, ctx, env, "", "patch", "secret", fullname+"-tls", "-n", ns, "--type=merge", "-p", `{"data":{"ca.crt":"`+ca+`"}}`)

	helmKube("upgrade", release, chartDir, "--namespace", ns, "--reuse-values", "--set", "policy.mode=warn")
	got := kubectl(t, ctx, env, "", "get", "validatingwebhookconfiguration", fullname, "-o", "jsonpath={.webhooks[*].clientConfig.caBundle}")
	if strings.Count(got, ca) != 3 {
		t.Errorf("helm upgrade removed the injected caBundle: %q", got)
	}
	if got := kubectl(t, ctx, env, "", "get", "secret", fullname+"-tls", "-n", ns, "-o", "jsonpath={.data.ca\\.crt}"); got != ca {
		t.Errorf("helm upgrade reset the Secret's data: %q", got)
	}
	if got := kubectl(t, ctx, env, "", "get", "configmap", fullname+"-policy", "-n", ns, "-o", "jsonpath={.data.policy\\.yaml}"); !strings.Contains(got, "mode: warn") {
		t.Errorf("helm upgrade did not update the policy:\n%s", got)
	}

	// helm uninstall creates the hook's service account and RBAC, runs the
	// Job, then deletes the release. No kubelet runs the Job here, so the
	// test runs its command with its identity, then lets Helm delete the rest.
	c := render(t, release, ns, "--set", "policy.mode=warn")
	var hookRBAC strings.Builder
	for _, o := range c.objs {
		if o.GetAnnotations()["helm.sh/hook"] == "pre-delete" && o.GetKind() != "Job" {
			b, _ := o.MarshalJSON()
			hookRBAC.Write(b)
			hookRBAC.WriteString("\n")
		}
	}
	kubectl(t, ctx, env, hookRBAC.String(), "apply", "-f", "-")
	args := append(uninstallArgs(t, c, fullname), "--kubeconfig", impersonating(t, env, fmt.Sprintf("system:serviceaccount:%s:%s-uninstall", ns, fullname)))
	var stdout, stderr bytes.Buffer
	if code := app.Main(ctx, args, app.Streams{Out: &stdout, Err: &stderr}); code != 0 {
		t.Fatalf("uninstall hook: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	kubectl(t, ctx, env, hookRBAC.String(), "delete", "-f", "-")
	helmKube("uninstall", release, "--namespace", ns, "--no-hooks")
	for _, kind := range []string{"validatingwebhookconfiguration", "mutatingwebhookconfiguration", "clusterrole", "clusterrolebinding"} {
		if res := run(t, ctx, env, "", "get", kind, fullname); res.ExitCode == 0 {
			t.Errorf("%s %s is left behind after helm uninstall", kind, fullname)
		}
	}
}

// checkCanI checks the installed RBAC with the API server's authorizer.
func checkCanI(t *testing.T, ctx context.Context, env *framework.Env, ns, fullname, mode string) {
	t.Helper()
	sa := fmt.Sprintf("system:serviceaccount:%s:%s", ns, fullname)
	hook := sa + "-uninstall"
	cases := []struct {
		as, verb, resource string
		namespaced, want   bool
	}{
		{sa, "list", "namespaces", false, true},
		{sa, "watch", "authorizationpolicies.security.istio.io", false, true},
		{sa, "update", "validatingwebhookconfigurations/" + fullname, false, mode == "self-signed"},
		{sa, "update", "validatingwebhookconfigurations/istio-validator-istio-system", false, false},
		{sa, "delete", "validatingwebhookconfigurations/" + fullname, false, false},
		{sa, "patch", "networkpolicies", false, true},
		{sa, "update", "networkpolicies", false, false},
		{sa, "get", "secrets/" + fullname + "-tls", true, mode == "self-signed"},
		{sa, "update", "secrets/other", true, false},
		{sa, "get", "secrets", false, false},
		{sa, "update", "leases/" + fullname + "-controller", true, true},
		{sa, "get", "certificates.cert-manager.io/" + fullname, true, mode == "cert-manager"},
		{hook, "delete", "validatingwebhookconfigurations/" + fullname, false, true},
		{hook, "delete", "mutatingwebhookconfigurations/" + fullname, false, true},
		{hook, "delete", "validatingwebhookconfigurations/other", false, false},
		{hook, "list", "pods", true, false},
	}
	for _, tc := range cases {
		args := []string{"auth", "can-i", tc.verb, tc.resource, "--as", tc.as}
		if tc.namespaced {
			args = append(args, "-n", ns)
		}
		res := run(t, ctx, env, "", args...)
		if got := strings.TrimSpace(res.Stdout) == "yes"; got != tc.want {
			t.Errorf("%s may %s %s: %v, want %v\n%s", tc.as, tc.verb, tc.resource, got, tc.want, res)
		}
	}
}

// impersonating writes a kubeconfig that acts as the given user.
func impersonating(t *testing.T, env *framework.Env, user string) string {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(env.KubeconfigPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, ai := range cfg.AuthInfos {
		ai.Impersonate = user
	}
	p := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, p); err != nil {
		t.Fatal(err)
	}
	return p
}

// run runs kubectl with the manifests on stdin.
func run(t *testing.T, ctx context.Context, env *framework.Env, stdin string, args ...string) framework.KubectlResult {
	t.Helper()
	res, err := env.Kubectl(ctx, strings.NewReader(stdin), args...)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// kubectl runs kubectl and fails the test unless it exits 0.
func kubectl(t *testing.T, ctx context.Context, env *framework.Env, stdin string, args ...string) string {
	t.Helper()
	res := run(t, ctx, env, stdin, args...)
	if res.ExitCode != 0 {
		t.Fatalf("%s", res)
	}
	return res.Stdout
}
