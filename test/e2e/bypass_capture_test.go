package e2e_test

import "strings"

// bypassCaptureCases switch capture off inside Istio's own containers or
// through the injection template (issue 9, item 4). No injector runs in the
// test's API server, so a Pod is seen exactly as written: as if injected.
var bypassCaptureCases = func() []bypassCase {
	const fix157 = "Let the injector add Istio's containers"
	// withInitArgs is the injected pod of injectedPod with istio-init (no
	// CNI) running args instead of istio-validation.
	withInitArgs := func(name, args string) string {
		p := injectedPod("{{ns}}", name)
		start := strings.Index(p, "  - name: istio-validation")
		end := strings.Index(p, "  containers:")
		return p[:start] + `  - name: istio-init
    image: docker.io/istio/proxyv2:1.24.2
    args: ` + args + `
    securityContext:
      capabilities: {add: [NET_ADMIN, NET_RAW], drop: [ALL]}
      runAsUser: 0
      runAsGroup: 0
      runAsNonRoot: false
` + p[end:]
	}
	noInit := func(name string) string {
		p := injectedPod("{{ns}}", name)
		start := strings.Index(p, "  initContainers:")
		end := strings.Index(p, "  containers:")
		return p[:start] + p[end:]
	}
	return []bypassCase{
		{Name: "istio-init with -i '' and -b '' captures nothing",
			Manifest: withInitArgs("nocapture", `["istio-iptables", "-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT", "-i", "", "-b", ""]`),
			Code:     "MESH0157", Fix: fix157, Contains: []string{`argument -i "" captures no outbound traffic`, `argument -b "" captures no inbound traffic`}},
		{Name: "istio-init excluding every outbound address with -x 0.0.0.0/0",
			Manifest: withInitArgs("excludeall", `["istio-iptables", "-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT", "-i", "*", "-x", "0.0.0.0/0", "-b", "*"]`),
			Code:     "MESH0157", Fix: fix157, Contains: []string{`argument -x excludes "0.0.0.0/0"`}},
		{Name: "istio-init exempting the application's UID with -u",
			Manifest: strings.Replace(withInitArgs("uid", `["istio-iptables", "-p", "15001", "-z", "15006", "-u", "1000", "-m", "REDIRECT", "-i", "*", "-b", "*"]`),
				"  - name: app\n    image: registry.example.com/shop/app:1.0\n", "  - name: app\n    image: registry.example.com/shop/app:1.0\n    securityContext: {runAsUser: 1000}\n", 1),
			Code: "MESH0157", Fix: fix157, Contains: []string{`exempts UID 1000 from capture instead of the proxy's 1337 (container "app" runs as it)`}},
		{Name: "istio-init with interception mode NONE",
			Manifest: withInitArgs("modenone", `["istio-iptables", "-p", "15001", "-z", "15006", "-u", "1337", "-m", "NONE", "-i", "*", "-b", "*"]`),
			Code:     "MESH0157", Fix: fix157, Contains: []string{`argument -m "NONE" is not REDIRECT or TPROXY`}},
		{Name: "istio-init that applies no rules",
			Manifest: withInitArgs("skip", `["istio-iptables", "-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT", "-i", "*", "-b", "*", "--skip-rule-apply"]`),
			Code:     "MESH0157", Fix: fix157, Contains: []string{"applies no capture rules"}},
		{Name: "a sidecar pod with neither istio-init nor istio-validation", Manifest: noInit("noinit"),
			Code: "MESH0157", Fix: fix157, Contains: []string{"is a sidecar in a pod with neither istio-init nor istio-validation"}},
		{Name: "a Deployment that declares istio-init with capture switched off", Manifest: `apiVersion: apps/v1
kind: Deployment
metadata: {name: declared-init, namespace: "{{ns}}"}
spec:
  selector: {matchLabels: {app: declared-init}}
  template:
    metadata: {labels: {app: declared-init}}
    spec:
      initContainers:
      - name: istio-init
        image: docker.io/istio/proxyv2:1.24.2
        args: ["istio-iptables", "-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT", "-i", "", "-b", "*"]
        securityContext: {capabilities: {add: [NET_ADMIN, NET_RAW], drop: [ALL]}, runAsUser: 0, runAsGroup: 0, runAsNonRoot: false}
      containers:
      - {name: app, image: registry.example.com/shop/app:1.0}
`, Code: "MESH0157", Fix: fix157, Contains: []string{`argument -i "" captures no outbound traffic`}},
		{Name: "an application Deployment asking for the gateway injection template", Manifest: `apiVersion: apps/v1
kind: Deployment
metadata: {name: router-app, namespace: "{{ns}}"}
spec:
  selector: {matchLabels: {app: router-app}}
  template:
    metadata:
      labels: {app: router-app}
      annotations: {inject.istio.io/templates: gateway}
    spec:
      containers:
      - {name: app, image: registry.example.com/shop/app:1.0}
`, Code: "MESH0114", Fix: "Remove inject.istio.io/templates (or list sidecar in it) for application workloads",
			Contains: []string{`annotation inject.istio.io/templates is "gateway"`}},
	}
}()
