package e2e_test

import (
	"fmt"
	"strings"
)

// bypassCaptureCases switch traffic capture off inside the injected
// containers (issue 9, item 4): istio-init's own arguments and env, a proxy
// without any init container, and an injection template without capture.
// Only the forms meshguard denies (High or Critical) are here; the Medium and
// Low ones (-o, -c, -k, a link-local -x, proxyless gRPC and unknown
// templates) have catalog fixtures.
//
// The API server of the test runs no injector, so a Pod is admitted exactly
// as written: capturePod writes it as the injector would have left it
// (istio-init, istio-proxy with Istio's proxyv2 image, the status annotation).
// A Deployment is seen before injection, so capture arguments on it are those
// of a declared istio-init, which the injector merges over its own.
var bypassCaptureCases = []bypassCase{
	// MESH0120: no iptables rules at all, or rules that redirect away from Envoy.
	{
		Name:     "a Deployment declares istio-init with --skip-rule-apply, so the injector's merge applies no rules",
		Manifest: captureDeployment("skip-rules", captureArgs("--run-validation", "--skip-rule-apply"), ""),
		Code:     "MESH0120", Fix: "do not declare istio-init arguments or env",
		Contains: []string{"istio-init argument --skip-rule-apply applies no iptables rules"},
	},
	{
		Name:     "an injected Pod's istio-init has env DRY_RUN, which istio-iptables reads when -n is not given",
		Manifest: capturePod("dry-run", captureInit(captureArgs(), `env: [{name: DRY_RUN, value: "true"}]`), "", ""),
		Code:     "MESH0120", Fix: "do not declare istio-init arguments or env",
		Contains: []string{`istio-init env DRY_RUN="true" applies no iptables rules (dry run)`},
	},
	{
		Name: "a Deployment's proxy.istio.io/config proxyMetadata becomes SKIP_RULE_APPLY env of the injected istio-init",
		Manifest: captureDeployment("metadata-skip", "",
			`proxy.istio.io/config: '{"proxyMetadata": {"SKIP_RULE_APPLY": "true"}}'`),
		Code: "MESH0120", Fix: "do not declare istio-init arguments or env",
		Contains: []string{`proxyMetadata SKIP_RULE_APPLY="true"`},
	},
	{
		Name:     "an injected Pod's istio-init passes cobra's -h, so istio-iptables prints its usage and exits 0",
		Manifest: capturePod("help", captureInit(captureArgs("-h"), ""), "", ""),
		Code:     "MESH0120", Fix: "do not declare istio-init arguments or env",
		Contains: []string{"istio-init argument -h prints the usage"},
	},
	{
		Name:     "an injected Pod's istio-init has no args, so pilot-agent runs no subcommand",
		Manifest: capturePod("no-args", captureInit(nil, ""), "", ""),
		Code:     "MESH0120", Fix: "do not declare istio-init arguments or env",
		Contains: []string{"istio-init has no arguments"},
	},
	{
		Name:     "a Deployment's istio-init redirects outbound traffic to the application's port instead of Envoy's",
		Manifest: captureDeployment("redirect-elsewhere", captureArgs("-p", "8080"), ""),
		Code:     "MESH0120", Fix: "do not declare istio-init arguments or env",
		Contains: []string{`istio-init argument -p "8080" redirects outbound traffic to port "8080"`},
	},
	// MESH0121: inbound capture.
	{
		Name:     `a Deployment's istio-init passes -b "", capturing no inbound traffic`,
		Manifest: captureDeployment("no-inbound", captureArgs("-b", ""), ""),
		Code:     "MESH0121", Fix: "do not declare istio-init arguments",
		Contains: []string{`istio-init argument -b "" captures no inbound traffic`},
	},
	{
		Name:     "an injected Pod's istio-init narrows inbound capture with the shorthand word -b8080",
		Manifest: capturePod("narrow-inbound", captureInit(captureArgs("-b8080"), ""), "", ""),
		Code:     "MESH0121", Fix: "do not declare istio-init arguments",
		Contains: []string{`istio-init argument -b "8080" limits inbound capture to "8080"`},
	},
	// MESH0122: inbound ports returned uncaptured.
	{
		Name:     "a Deployment's istio-init excludes the application port with -d",
		Manifest: captureDeployment("exclude-inbound", captureArgs("-d", "15090,15021,15020,8080"), ""),
		Code:     "MESH0122", Fix: "do not declare istio-init arguments",
		Contains: []string{`excludes port "8080" from inbound capture`},
	},
	{
		Name:     "an injected Pod's istio-init moves the HBONE tunnel port onto the application port with -e",
		Manifest: capturePod("tunnel-port", captureInit(captureArgs("-e", "8080"), ""), "", ""),
		Code:     "MESH0122", Fix: "do not declare istio-init arguments",
		Contains: []string{`istio-init argument -e "8080" excludes port "8080" from inbound capture (as the HBONE tunnel port)`},
	},
	// MESH0123: outbound capture.
	{
		Name:     `an injected Pod's istio-init passes -i "", capturing no outbound traffic`,
		Manifest: capturePod("no-outbound", captureInit(captureArgs("-i", ""), ""), "", ""),
		Code:     "MESH0123", Fix: "do not declare istio-init arguments",
		Contains: []string{`istio-init argument -i "" captures no outbound traffic`},
	},
	{
		Name:     "a Deployment's istio-init narrows outbound capture with --istio-service-cidr=",
		Manifest: captureDeployment("narrow-outbound", captureArgs("--istio-service-cidr=10.96.0.0/12"), ""),
		Code:     "MESH0123", Fix: "do not declare istio-init arguments",
		Contains: []string{`istio-init argument --istio-service-cidr "10.96.0.0/12" limits outbound capture to "10.96.0.0/12"`},
	},
	{
		Name:     "a Deployment's istio-init only runs istio-iptables, whose default -i captures nothing",
		Manifest: captureDeployment("bare-iptables", `["istio-iptables"]`, ""),
		Code:     "MESH0123", Fix: "do not declare istio-init arguments",
		Contains: []string{`istio-init without -i (default "") captures no outbound traffic`},
	},
	// MESH0124: every destination excluded.
	{
		Name:     "a Deployment's istio-init excludes 0.0.0.0/0 from outbound capture",
		Manifest: captureDeployment("exclude-everything", captureArgs("-x", "0.0.0.0/0"), ""),
		Code:     "MESH0124", Fix: "do not declare istio-init arguments",
		Contains: []string{`istio-init argument -x "0.0.0.0/0" excludes "0.0.0.0/0" from outbound capture`},
	},
	// MESH0140/MESH0141: the application runs as an ID istio-init exempts.
	{
		Name:     "an injected Pod's istio-init exempts the application's UID with -u",
		Manifest: capturePod("exempt-uid", captureInit(captureArgs("-u", "1337,1000"), ""), "{runAsUser: 1000, runAsNonRoot: true}", ""),
		Code:     "MESH0140", Fix: "Run the container as any other UID",
		Contains: []string{`container "exempt-uid" runs as UID 1000, which istio-init argument -u "1337,1000" exempts from capture`},
	},
	{
		Name:     "a Deployment's istio-init exempts the application's GID with -g",
		Manifest: captureDeploymentApp("exempt-gid", captureArgs("-g", "1337,2000"), "", "{runAsUser: 1001, runAsGroup: 2000}"),
		Code:     "MESH0141", Fix: "Run the container with any other runAsGroup",
		Contains: []string{`container "exempt-gid" runs with GID 2000, which istio-init argument -g "1337,2000" exempts from capture`},
	},
	// MESH0157: deviations from the injected istio-init that are no capture setting.
	{
		Name:     "an injected Pod's istio-init passes -m NONE, which the injector never writes",
		Manifest: capturePod("mode-none", captureInit(captureArgs("-m", "NONE"), ""), "", ""),
		Code:     "MESH0157", Fix: "Let the injector add Istio's containers",
		Contains: []string{`istio-init argument -m "NONE" sets interception mode "NONE", not the pod's "REDIRECT"`},
	},
	{
		Name:     "a Deployment's istio-init passes a flag istio-iptables does not know",
		Manifest: captureDeployment("unknown-flag", captureArgs("--capture=false"), ""),
		Code:     "MESH0157", Fix: "Let the injector add Istio's containers",
		Contains: []string{"unknown flag: --capture"},
	},
	{
		Name: "a Deployment's istio-init takes a capture setting from a ConfigMap the webhook cannot read",
		Manifest: captureDeploymentWith("hidden-env", captureInit(captureArgs(),
			`env: [{name: ISTIO_LOCAL_OUTBOUND_PORTS_EXCLUDE, valueFrom: {configMapKeyRef: {name: capture, key: ports}}}]`), "", ""),
		Code: "MESH0157", Fix: "Let the injector add Istio's containers",
		Contains: []string{"istio-init env ISTIO_LOCAL_OUTBOUND_PORTS_EXCLUDE (from valueFrom)"},
	},
	{
		Name: "an injected istio-cni Pod's istio-validation does not validate the capture",
		Manifest: capturePod("lax-validation", `- name: istio-validation
  image: docker.io/istio/proxyv2:1.26.1
  args: ["istio-iptables", "-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT", "-i", "*", "-x", "", "-b", "*", "-d", "15090,15021,15020", "--skip-rule-apply"]
  securityContext: {capabilities: {drop: [ALL]}, readOnlyRootFilesystem: true, runAsGroup: 1337, runAsNonRoot: true, runAsUser: 1337}
`, "", ""),
		Code: "MESH0157", Fix: "Let the injector add Istio's containers",
		Contains: []string{"istio-validation does not pass --run-validation"},
	},
	// MESH0112: a sidecar without any capture.
	{
		Name:     "a Pod carries Istio's istio-proxy and status annotation but no istio-init or istio-validation",
		Manifest: capturePod("proxy-only", "", "", ""),
		Code:     "MESH0112", Fix: "Fix the injector or its webhook configuration",
		Contains: []string{`pod has container "istio-proxy" but neither init container "istio-init" nor "istio-validation"`},
	},
	{
		Name:     "a Pod carries a native-sidecar istio-proxy but no istio-init or istio-validation",
		Manifest: capturePod("native-proxy-only", "", "", "native"),
		Code:     "MESH0112", Fix: "Fix the injector or its webhook configuration",
		Contains: []string{`pod has init container "istio-proxy" but neither`},
	},
	// MESH0114: an application asks for the gateway template.
	{
		Name: "an application Deployment asks for the gateway injection template, which installs no capture",
		Manifest: `apiVersion: apps/v1
kind: Deployment
metadata: {name: gateway-template, namespace: {{ns}}}
spec:
  selector: {matchLabels: {app: gateway-template}}
  template:
    metadata:
      annotations: {inject.istio.io/templates: gateway}
      labels: {app: gateway-template, istio: ingressgateway, sidecar.istio.io/inject: "true"}
    spec:
      containers:
      - {name: app, image: registry.example.com/shop/app:1.0}
`,
		Code: "MESH0114", Fix: "Remove inject.istio.io/templates or include sidecar in it",
		Contains: []string{`annotation inject.istio.io/templates is "gateway"`},
	},
	{
		Name: "a Pod with an application and a gateway-template istio-proxy (as injected) is created",
		Manifest: `apiVersion: v1
kind: Pod
metadata:
  name: gateway-template-pod
  namespace: {{ns}}
  labels: {app: gateway-template-pod}
  annotations:
    inject.istio.io/templates: gateway
    sidecar.istio.io/status: '{"initContainers":null,"containers":["istio-proxy"],"volumes":[],"imagePullSecrets":null,"revision":"default"}'
spec:
  containers:
  - {name: app, image: registry.example.com/shop/app:1.0}
  - name: istio-proxy
    image: docker.io/istio/proxyv2:1.26.1
    args: ["proxy", "router", "--domain", "$(POD_NAMESPACE).svc.cluster.local"]
    securityContext: {capabilities: {drop: [ALL]}, runAsGroup: 1337, runAsNonRoot: true, runAsUser: 1337}
`,
		Code: "MESH0114", Fix: "Remove inject.istio.io/templates or include sidecar in it",
		Contains: []string{"template gateway injects a proxy that does not capture"},
	},
}

// captureArgs are the args Istio's injector writes into istio-init for a
// default install (injection-template.yaml), as a YAML flow list, with the
// given arguments appended (a later flag wins, as in istio-iptables).
func captureArgs(extra ...string) string {
	args := append([]string{"istio-iptables", "-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT",
		"-i", "*", "-x", "", "-b", "*", "-d", "15090,15021,15020", "--log_output_level=default:info"}, extra...)
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = fmt.Sprintf("%q", a)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// captureInit is an istio-init list item (at column 0) with the given args
// (nil: none) and an extra field line.
func captureInit(args any, extra string) string {
	s := "- name: istio-init\n  image: docker.io/istio/proxyv2:1.26.1\n"
	if a, ok := args.(string); ok {
		s += "  args: " + a + "\n"
	}
	if extra != "" {
		s += "  " + extra + "\n"
	}
	return s + "  securityContext: {capabilities: {add: [NET_ADMIN, NET_RAW], drop: [ALL]}, runAsGroup: 0, runAsNonRoot: false, runAsUser: 0}\n"
}

// indentYAML indents every line of s by n spaces.
func indentYAML(s string, n int) string {
	pad := strings.Repeat(" ", n)
	lines := strings.SplitAfter(s, "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = pad + l
		}
	}
	return strings.Join(lines, "")
}

// capturePod is a Pod as Istio's injector leaves it (without istio-cni),
// with the given init containers (YAML list items at column 0, "" for
// none), the application's securityContext, and "native" for an
// istio-proxy native sidecar.
func capturePod(name, inits, appSC, native string) string {
	proxy := `- name: istio-proxy
  image: docker.io/istio/proxyv2:1.26.1
  args: ["proxy", "sidecar", "--domain", "$(POD_NAMESPACE).svc.cluster.local"]
  securityContext: {capabilities: {drop: [ALL]}, runAsGroup: 1337, runAsNonRoot: true, runAsUser: 1337}
`
	if native != "" {
		inits += proxy + "  restartPolicy: Always\n"
	}
	s := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
  namespace: {{ns}}
  labels: {app: %s, security.istio.io/tlsMode: istio, service.istio.io/canonical-name: %s}
  annotations:
    sidecar.istio.io/status: '{"initContainers":["istio-init"],"containers":["istio-proxy"],"volumes":["istio-envoy","istio-data","istio-podinfo","istio-token","istiod-ca-cert"],"imagePullSecrets":null,"revision":"default"}'
spec:
`, name, name, name)
	if inits != "" {
		s += "  initContainers:\n" + indentYAML(inits, 2)
	}
	app := "- name: " + name + "\n  image: registry.example.com/shop/" + name + ":1.0\n"
	if appSC != "" {
		app += "  securityContext: " + appSC + "\n"
	}
	if native == "" {
		app += proxy
	}
	return s + "  containers:\n" + indentYAML(app, 2)
}

// captureDeployment is a Deployment that declares istio-init with the given
// args ("" declares none) and carries the given pod annotation line.
func captureDeployment(name, args, annotation string) string {
	return captureDeploymentApp(name, args, annotation, "")
}

func captureDeploymentApp(name, args, annotation, appSC string) string {
	init := ""
	if args != "" {
		init = captureInit(args, "")
	}
	return captureDeploymentWith(name, init, annotation, appSC)
}

// captureDeploymentWith is a Deployment with the given init containers
// (YAML list items at column 0, "" for none).
func captureDeploymentWith(name, inits, annotation, appSC string) string {
	s := fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: %s, namespace: {{ns}}}
spec:
  selector: {matchLabels: {app: %s}}
  template:
    metadata:
      labels: {app: %s}
`, name, name, name)
	if annotation != "" {
		s += "      annotations:\n        " + annotation + "\n"
	}
	s += "    spec:\n"
	if inits != "" {
		s += "      initContainers:\n" + indentYAML(inits, 6)
	}
	app := "- name: " + name + "\n  image: registry.example.com/shop/" + name + ":1.0\n"
	if appSC != "" {
		app += "  securityContext: " + appSC + "\n"
	}
	return s + "      containers:\n" + indentYAML(app, 6)
}
