package app

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/meshguard/meshguard/webhook"
)

func TestServeFlags(t *testing.T) {
	// The default certificate mode (self-signed) needs meshguard's namespace.
	t.Setenv("POD_NAMESPACE", "meshguard")
	run := func(args ...string) (*ServeOptions, error) {
		var got *ServeOptions
		var out, errb bytes.Buffer
		cmd := NewServeCommand(Streams{Out: &out, Err: &errb}, func(_ context.Context, _ Streams, o *ServeOptions) error {
			got = o
			return nil
		})
		cmd.SetArgs(args)
		cmd.SetOut(&out)
		cmd.SetErr(&errb)
		err := cmd.ExecuteContext(context.Background())
		return got, err
	}
	t.Run("the defaults serve TLS on 9443 with HTTP/2 off", func(t *testing.T) {
		o, err := run()
		if err != nil {
			t.Fatal(err)
		}
		w := o.Webhook
		if w.Port != 9443 || w.EnableHTTP2 || w.CertDir == "" || w.MetricsAddr != ":8080" || w.HealthAddr != ":8081" || w.GracefulShutdown != 15*time.Second {
			t.Fatalf("unexpected defaults: %+v", w)
		}
		if o.Webhook.Rules.RootNamespace != "istio-system" {
			t.Fatalf("the mesh flags must default like audit's: %+v", o.Webhook.Rules)
		}
		if w.IstioDiscoveryInterval != 30*time.Second {
			t.Fatalf("the Istio API is asked every 30s by default: %s", w.IstioDiscoveryInterval)
		}
		if o.GoRuntime.GCPercent != 400 || o.GoRuntime.MemoryLimitRatio != 0.9 {
			t.Fatalf("unexpected garbage collector defaults: %+v", o.GoRuntime)
		}
	})
	t.Run("the garbage collector flags reach the options", func(t *testing.T) {
		o, err := run("--gc-percent", "0", "--memory-limit-ratio", "0.75")
		if err != nil {
			t.Fatal(err)
		}
		if o.GoRuntime.GCPercent != 0 || o.GoRuntime.MemoryLimitRatio != 0.75 {
			t.Fatalf("flags not applied: %+v", o.GoRuntime)
		}
	})
	t.Run("flags reach the options", func(t *testing.T) {
		o, err := run("--port", "10443", "--cert-dir", "/certs", "--enroll-namespaces", "istio.io/rev=1-24", "--root-namespace", "mesh-root",
			"--proxy-image-registry", "registry.example.com/istio", "--policy", "/etc/p.yaml", "--enable-http2")
		if err != nil {
			t.Fatal(err)
		}
		w := o.Webhook
		if w.Port != 10443 || w.CertDir != "/certs" || w.EnrollLabel != "istio.io/rev=1-24" || w.Rules.RootNamespace != "mesh-root" ||
			w.PolicyFile != "/etc/p.yaml" || !w.EnableHTTP2 || w.Rules.ProxyImageRegistries[0] != "registry.example.com/istio" {
			t.Fatalf("flags not applied: %+v", w)
		}
	})
	t.Run("the webhook server's limits default and reach the options", func(t *testing.T) {
		o, err := run()
		if err != nil {
			t.Fatal(err)
		}
		if o.Webhook.Timeouts != webhook.DefaultTimeouts() || o.Webhook.MaxInflightBytes != 0 {
			t.Fatalf("unexpected defaults: %+v, %d", o.Webhook.Timeouts, o.Webhook.MaxInflightBytes)
		}
		o, err = run("--read-header-timeout", "2s", "--read-timeout", "4s", "--write-timeout", "20s", "--idle-timeout", "1m", "--max-inflight-bytes", "48Mi")
		if err != nil {
			t.Fatal(err)
		}
		want := webhook.Timeouts{ReadHeader: 2 * time.Second, Read: 4 * time.Second, Write: 20 * time.Second, Idle: time.Minute}
		if o.Webhook.Timeouts != want || o.Webhook.MaxInflightBytes != 48<<20 {
			t.Fatalf("flags not applied: %+v, %d", o.Webhook.Timeouts, o.Webhook.MaxInflightBytes)
		}
	})
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"a zero read timeout is refused: slow clients would hold connections", []string{"--read-timeout", "0s"}, "--read-timeout"},
		{"a header timeout longer than the read timeout is refused", []string{"--read-header-timeout", "20s"}, "--read-header-timeout"},
		{"an in-flight budget below one largest review is refused", []string{"--max-inflight-bytes", "1Mi"}, "--max-inflight-bytes"},
		{"an in-flight budget that is not a quantity is refused", []string{"--max-inflight-bytes", "lots"}, "max-inflight-bytes"},
		{"an empty cert dir is refused: there is no plaintext mode", []string{"--cert-dir", ""}, "--cert-dir"},
		{"a port out of range is refused", []string{"--port", "70000"}, "--port"},
		{"an enrollment label that is not an Istio one is refused", []string{"--enroll-namespaces", "team=a"}, "--enroll-namespaces"},
		{"an enrollment label without a value is refused", []string{"--enroll-namespaces", "istio-injection"}, "--enroll-namespaces"},
		{"an unknown log level is refused", []string{"--log-level", "loud"}, "--log-level"},
		{"a bad interception mode is refused", []string{"--interception-mode", "NONE"}, "--interception-mode"},
		{"a negative GOGC is refused", []string{"--gc-percent", "-5"}, "--gc-percent"},
		{"a memory limit ratio above 1 is refused", []string{"--memory-limit-ratio", "1.5"}, "--memory-limit-ratio"},
		{"a negative Istio discovery interval is refused", []string{"--istio-discovery-interval", "-1s"}, "--istio-discovery-interval"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := run(tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want an error naming %s, got %v", tc.want, err)
			}
		})
	}
}

func TestWebhookConfigCommand(t *testing.T) {
	var out, errb bytes.Buffer
	code := Main(context.Background(), []string{"webhook-config", "--url", "https://127.0.0.1:9443", "--enroll"}, Streams{Out: &out, Err: &errb})
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, want := range []string{"kind: ValidatingWebhookConfiguration", "kind: MutatingWebhookConfiguration", "pods/ephemeralcontainers",
		"peerauthentications", "v1beta1", "sideEffects: NoneOnDryRun", "matchPolicy: Equivalent", "url: https://127.0.0.1:9443/validate", "- meshguard"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if code := Main(context.Background(), []string{"webhook-config"}, Streams{Out: &out, Err: &errb}); code != ExitUsage {
		t.Fatalf("without --url or --service-name the command must fail, exit %d", code)
	}
}
