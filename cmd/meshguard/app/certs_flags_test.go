package app

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/meshguard/meshguard/certs"
)

func runServeFlags(t *testing.T, args ...string) (*ServeOptions, error) {
	t.Helper()
	var got *ServeOptions
	var out, errb bytes.Buffer
	cmd := NewServeCommand(Streams{Out: &out, Err: &errb}, func(_ context.Context, _ Streams, o *ServeOptions) error {
		got = o
		return nil
	})
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	return got, cmd.ExecuteContext(context.Background())
}

func TestServeCertificateFlags(t *testing.T) {
	t.Run("the default is self-signed with the chart's names, in $POD_NAMESPACE", func(t *testing.T) {
		t.Setenv("POD_NAMESPACE", "guard")
		o, err := runServeFlags(t)
		if err != nil {
			t.Fatal(err)
		}
		c := o.Webhook.Certificates
		if c == nil || c != o.Certs {
			t.Fatalf("the certificate options do not reach the webhook options: %+v", o.Webhook)
		}
		if c.Mode != certs.ModeSelfSigned || c.Namespace != "guard" || c.SecretName != "meshguard-tls" || c.ServiceName != "meshguard" ||
			c.ValidatingWebhookConfiguration != "meshguard" || c.MutatingWebhookConfiguration != "meshguard" || c.CertificateName != "meshguard" {
			t.Fatalf("unexpected defaults: %+v", c)
		}
		if c.DNSName() != "meshguard.guard.svc" {
			t.Fatalf("DNS name: %s", c.DNSName())
		}
		if c.RenewBefore >= c.CertValidity || c.CheckInterval >= c.RenewBefore || c.CertValidity > c.CAValidity {
			t.Fatalf("the default durations do not renew well before expiry: %+v", c)
		}
		if o.Webhook.CertDir != "/var/run/meshguard/certs" {
			t.Fatalf("the default cert dir is the chart's mount: %s", o.Webhook.CertDir)
		}
	})
	t.Run("--namespace wins over $POD_NAMESPACE and the flags reach the options", func(t *testing.T) {
		t.Setenv("POD_NAMESPACE", "from-env")
		o, err := runServeFlags(t, "--namespace", "guard", "--cert-secret", "tls", "--cert-service", "hook", "--cert-dns-names", "localhost,hook.example.com",
			"--validating-webhook-configuration", "v", "--mutating-webhook-configuration", "", "--cert-validity", "2h", "--cert-renew-before", "1h",
			"--cert-check-interval", "1m", "--cert-ca-validity", "24h")
		if err != nil {
			t.Fatal(err)
		}
		c := o.Certs
		if c.Namespace != "guard" || c.SecretName != "tls" || c.ServiceName != "hook" || strings.Join(c.ExtraDNSNames, ",") != "localhost,hook.example.com" ||
			c.ValidatingWebhookConfiguration != "v" || c.MutatingWebhookConfiguration != "" || c.CertValidity != 2*time.Hour ||
			c.RenewBefore != time.Hour || c.CheckInterval != time.Minute || c.CAValidity != 24*time.Hour {
			t.Fatalf("flags not applied: %+v", c)
		}
	})
	t.Run("cert-manager mode needs the namespace and a Certificate name", func(t *testing.T) {
		t.Setenv("POD_NAMESPACE", "")
		o, err := runServeFlags(t, "--cert-mode", "cert-manager", "--namespace", "guard", "--cert-manager-certificate", "serving", "--cert-manager-poll-interval", "3s")
		if err != nil {
			t.Fatal(err)
		}
		if o.Certs.Mode != certs.ModeCertManager || o.Certs.CertificateName != "serving" || o.Certs.PollInterval != 3*time.Second {
			t.Fatalf("flags not applied: %+v", o.Certs)
		}
	})
	t.Run("files mode needs nothing but the directory", func(t *testing.T) {
		t.Setenv("POD_NAMESPACE", "")
		o, err := runServeFlags(t, "--cert-mode", "files", "--cert-dir", "./certs")
		if err != nil {
			t.Fatal(err)
		}
		if o.Certs.Mode != certs.ModeFiles {
			t.Fatalf("mode: %s", o.Certs.Mode)
		}
	})
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"an unknown mode is refused", []string{"--cert-mode", "insecure"}, `invalid argument "insecure" for "--cert-mode"`},
		{"self-signed without a namespace is refused", []string{"--namespace", ""}, "--namespace: required with --cert-mode self-signed"},
		{"cert-manager without a namespace is refused", []string{"--cert-mode", "cert-manager"}, "--namespace: required with --cert-mode cert-manager"},
		{"a namespace that is not a DNS label is refused", []string{"--namespace", "Guard_NS"}, "--namespace"},
		{"files mode without a directory is refused", []string{"--cert-mode", "files", "--cert-dir", ""}, "--cert-dir"},
		{"an empty Secret name is refused", []string{"--namespace", "guard", "--cert-secret", ""}, "--cert-secret: required"},
		{"an empty Service name is refused", []string{"--namespace", "guard", "--cert-service", ""}, "--cert-service: required"},
		{"an empty Certificate name is refused in cert-manager mode", []string{"--cert-mode", "cert-manager", "--namespace", "guard", "--cert-manager-certificate", ""}, "--cert-manager-certificate: required"},
		{"a bad extra DNS name is refused", []string{"--namespace", "guard", "--cert-dns-names", "not a name"}, "--cert-dns-names"},
		{"a validity not longer than the renewal window is refused", []string{"--namespace", "guard", "--cert-validity", "1h", "--cert-renew-before", "1h", "--cert-check-interval", "1m"}, "--cert-validity"},
		{"a CA shorter-lived than its certificate is refused", []string{"--namespace", "guard", "--cert-ca-validity", "1h"}, "--cert-ca-validity"},
		{"a check interval that can miss the renewal window is refused", []string{"--namespace", "guard", "--cert-check-interval", "2400h"}, "--cert-check-interval"},
		{"a non-positive renewal window is refused", []string{"--namespace", "guard", "--cert-renew-before", "0s"}, "--cert-renew-before"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("POD_NAMESPACE", "")
			if _, err := runServeFlags(t, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want an error containing %q, got %v", tc.want, err)
			}
		})
	}
}

func TestUninstallFlags(t *testing.T) {
	run := func(args ...string) (*UninstallOptions, error) {
		var got *UninstallOptions
		var out, errb bytes.Buffer
		cmd := NewUninstallCommand(Streams{Out: &out, Err: &errb}, func(_ context.Context, _ Streams, o *UninstallOptions) error {
			got = o
			return nil
		})
		cmd.SetArgs(args)
		cmd.SetOut(&out)
		cmd.SetErr(&errb)
		return got, cmd.ExecuteContext(context.Background())
	}
	t.Run("the defaults delete the chart's configurations", func(t *testing.T) {
		o, err := run()
		if err != nil {
			t.Fatal(err)
		}
		if o.ValidatingWebhookConfiguration != "meshguard" || o.MutatingWebhookConfiguration != "meshguard" || o.Timeout != 30*time.Second {
			t.Fatalf("unexpected defaults: %+v", o)
		}
	})
	t.Run("flags reach the options", func(t *testing.T) {
		o, err := run("--validating-webhook-configuration", "v", "--mutating-webhook-configuration", "", "--kubeconfig", "/k", "--context", "c", "--timeout", "5s")
		if err != nil {
			t.Fatal(err)
		}
		if o.ValidatingWebhookConfiguration != "v" || o.MutatingWebhookConfiguration != "" || o.Kube.Kubeconfig != "/k" || o.Kube.Context != "c" || o.Timeout != 5*time.Second {
			t.Fatalf("flags not applied: %+v", o)
		}
	})
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"nothing to delete is refused", []string{"--validating-webhook-configuration", "", "--mutating-webhook-configuration", ""}, "nothing to delete"},
		{"an invalid name is refused", []string{"--validating-webhook-configuration", "Not_A_Name"}, "--validating-webhook-configuration"},
		{"a non-positive timeout is refused", []string{"--timeout", "0s"}, "--timeout"},
		{"a positional argument is refused", []string{"meshguard"}, "unexpected argument"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := run(tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want an error containing %q, got %v", tc.want, err)
			}
		})
	}
	t.Run("the alias cleanup-webhooks runs the same command", func(t *testing.T) {
		cmd := NewRootCommand(Streams{Out: &bytes.Buffer{}, Err: &bytes.Buffer{}})
		c, _, err := cmd.Find([]string{"cleanup-webhooks"})
		if err != nil || c.Name() != "uninstall" {
			t.Fatalf("cleanup-webhooks resolves to %v, %v", c, err)
		}
	})
	t.Run("an unreachable API server exits 1 naming the configuration", func(t *testing.T) {
		kc := t.TempDir() + "/kubeconfig"
		writeKubeconfig(t, kc, "https://127.0.0.1:1")
		var out, errb bytes.Buffer
		code := Main(context.Background(), []string{"uninstall", "--kubeconfig", kc, "--timeout", "5s"}, Streams{Out: &out, Err: &errb})
		if code != 1 || !strings.Contains(errb.String(), `delete validatingwebhookconfiguration "meshguard"`) {
			t.Fatalf("want exit 1 naming the configuration, got %d: %s", code, errb.String())
		}
	})
	t.Run("a missing kubeconfig is a usage error", func(t *testing.T) {
		var out, errb bytes.Buffer
		code := Main(context.Background(), []string{"uninstall", "--kubeconfig", t.TempDir() + "/missing"}, Streams{Out: &out, Err: &errb})
		if code != ExitUsage || !strings.Contains(errb.String(), "--kubeconfig") {
			t.Fatalf("want exit 2 naming --kubeconfig, got %d: %s", code, errb.String())
		}
	})
}

// writeKubeconfig writes a kubeconfig for a server without credentials.
func writeKubeconfig(t *testing.T, path, server string) {
	t.Helper()
	data := "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: " + server +
		"\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user: {}\n"
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}
