package e2e_test

import "fmt"

// bypassExtraPod is a Pod as the injector leaves it, with Istio's proxy image:
// the admin creates it in Setup (no finding), and the tenant then changes the
// proxy's image with kubectl apply (an UPDATE; the injector runs only on CREATE).
const bypassExtraPod = `apiVersion: v1
kind: Pod
metadata:
  name: orders
  namespace: {{ns}}
  labels:
    app: orders
spec:
  initContainers:
  - name: istio-validation
    image: docker.io/istio/proxyv2:1.24.2
    args: ["istio-iptables", "-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT", "-i", "*", "-x", "", "-b", "*", "-d", "15090,15021,15020", "--run-validation", "--skip-rule-apply"]
    securityContext: {capabilities: {drop: [ALL]}, runAsUser: 1337, runAsGroup: 1337, runAsNonRoot: true}
  containers:
  - name: orders
    image: registry.example.com/shop/orders:3.0
  - name: istio-proxy
    image: %s
    args: ["proxy", "sidecar"]
`

// bypassExtraDeployment is a Deployment whose pod template carries the given
// annotations (YAML lines at template-annotation indent) and containers.
func bypassExtraDeployment(name, annotations, containers string) string {
	return `apiVersion: apps/v1
kind: Deployment
metadata:
  name: ` + name + `
  namespace: {{ns}}
spec:
  selector:
    matchLabels:
      app: ` + name + `
  template:
    metadata:
      labels:
        app: ` + name + `
      annotations:
` + annotations + `
    spec:
      containers:
      - name: ` + name + `
        image: registry.example.com/shop/` + name + `:1.0
` + containers
}

// bypassExtraCases are the mesh-weakening settings of issue 9 item 7: proxy
// image overrides (MESH0115), proxy bootstrap and volume overrides (MESH0116),
// proxy extensions ahead of authn/authz in an application namespace
// (MESH0044), and suffix-wildcard DestinationRule hosts (MESH0010). Every
// case is denied (High or Critical).
var bypassExtraCases = []bypassCase{
	{
		Name:     "a Deployment swaps the injected proxy image with the sidecar.istio.io/proxyImage annotation",
		Manifest: bypassExtraDeployment("web", `        sidecar.istio.io/proxyImage: registry.example.com/tools/envoy-debug:1.0`, ""),
		Code:     "MESH0115",
		Fix:      "remove the sidecar.istio.io/proxyImage annotation",
		Contains: []string{`"registry.example.com/tools/envoy-debug:1.0"`},
	},
	{
		Name: "a Deployment declares its own istio-proxy container with a foreign image, which the injector keeps",
		Manifest: bypassExtraDeployment("ledger", `        example.com/owner: shop`, `      - name: istio-proxy
        image: ghcr.io/mallory/proxyv2:1.24.2
`),
		Code:     "MESH0115",
		Fix:      "Use the platform's proxy image",
		Contains: []string{`container "istio-proxy"`, `"ghcr.io/mallory/proxyv2:1.24.2"`},
	},
	{
		Name:     "a running pod's proxy image is changed to auto, which only the injector replaces and only on CREATE",
		Setup:    sprintfPod(bypassExtraPod, "docker.io/istio/proxyv2:1.24.2"),
		Manifest: sprintfPod(bypassExtraPod, "auto"),
		Code:     "MESH0115",
		Fix:      "never change it on a running pod",
		Contains: []string{`"docker.io/istio/proxyv2:1.24.2"`, `"auto"`},
	},
	{
		Name:     "a running pod's proxy image is changed to a foreign image",
		Setup:    sprintfPod(bypassExtraPod, "docker.io/istio/proxyv2:1.24.2"),
		Manifest: sprintfPod(bypassExtraPod, "registry.example.com/mallory/envoy:latest"),
		Code:     "MESH0115",
		Fix:      "never change it on a running pod",
		Contains: []string{`"registry.example.com/mallory/envoy:latest"`},
	},
	{
		Name:     "a Deployment replaces the proxy's Envoy bootstrap with a ConfigMap",
		Manifest: bypassExtraDeployment("api", `        sidecar.istio.io/bootstrapOverride: api-envoy-bootstrap`, ""),
		Code:     "MESH0116",
		Fix:      "Remove the sidecar.istio.io/bootstrapOverride",
		Contains: []string{`ConfigMap "api-envoy-bootstrap"`},
	},
	{
		Name: "a Deployment adds a secret volume and mounts it into the proxy",
		Manifest: bypassExtraDeployment("cart", `        sidecar.istio.io/userVolume: '{"db-certs":{"secret":{"secretName":"cart-db-certs"}}}'
        sidecar.istio.io/userVolumeMount: '{"db-certs":{"mountPath":"/etc/db-certs"}}'`, ""),
		Code:     "MESH0116",
		Fix:      "customise the proxy through ProxyConfig",
		Contains: []string{`volume "db-certs"`, `"/etc/db-certs"`},
	},
	{
		Name:     "a Deployment pulls a host path into the pod through sidecar.istio.io/userVolume",
		Manifest: bypassExtraDeployment("probe", `        sidecar.istio.io/userVolume: '{"run":{"hostPath":{"path":"/var/run"}}}'`, ""),
		Code:     "MESH0116",
		Fix:      "sidecar.istio.io/userVolume",
		Contains: []string{`volume "run" with host path "/var/run"`},
	},
	{
		Name:     "a Deployment spells hostPath in another case, which the injector's encoding/json still accepts",
		Manifest: bypassExtraDeployment("report", `        sidecar.istio.io/userVolume: '{"root":{"HostPath":{"path":"/"}}}'`, ""),
		Code:     "MESH0116",
		Fix:      "sidecar.istio.io/userVolume",
		Contains: []string{`with host path "/"`},
	},
	{
		Name: "a WasmPlugin in an application namespace runs before Istio's authentication filters",
		Manifest: `apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata:
  name: openid-connect
  namespace: {{ns}}
spec:
  selector:
    matchLabels:
      app: web
  url: oci://registry.example.com/filters/openid:1.0
  phase: AUTHN
`,
		Code:     "MESH0044",
		Fix:      "Move the extension to the root namespace",
		Contains: []string{`"oci://registry.example.com/filters/openid:1.0"`, "phase AUTHN"},
	},
	{
		Name: "a network WasmPlugin in an application namespace runs before Istio's authorization filters",
		Manifest: `apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata:
  name: tcp-acl
  namespace: {{ns}}
spec:
  url: oci://registry.example.com/filters/tcp-acl:2.1
  phase: AUTHZ
  type: NETWORK
`,
		Code:     "MESH0044",
		Fix:      "Move the extension to the root namespace",
		Contains: []string{`network Wasm module "oci://registry.example.com/filters/tcp-acl:2.1"`, "phase AUTHZ"},
	},
	{
		Name: "a TrafficExtension with Lua in an application namespace rewrites the path before authorization",
		Manifest: `apiVersion: extensions.istio.io/v1alpha1
kind: TrafficExtension
metadata:
  name: header-rewrite
  namespace: {{ns}}
spec:
  phase: AUTHZ
  lua:
    inlineCode: |
      function envoy_on_request(request_handle)
        request_handle:headers():replace(":path", "/public")
      end
`,
		Code:     "MESH0044",
		Fix:      "leave its phase unset or use STATS",
		Contains: []string{"TrafficExtension runs Lua code at phase AUTHZ"},
	},
	{
		Name: "a DestinationRule turns TLS off for a suffix wildcard without a dot, which Istio matches against every service",
		Manifest: `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: no-dot
  namespace: {{ns}}
spec:
  host: "*svc.cluster.local"
  trafficPolicy:
    tls:
      mode: DISABLE
`,
		Code:     "MESH0010",
		Fix:      "Delete the tls block",
		Contains: []string{`in-mesh host "*svc.cluster.local"`},
	},
	{
		Name: "a DestinationRule turns TLS off for *local",
		Manifest: `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: everything-local
  namespace: {{ns}}
spec:
  host: "*local"
  trafficPolicy:
    tls:
      mode: DISABLE
`,
		Code:     "MESH0010",
		Fix:      "Delete the tls block",
		Contains: []string{`in-mesh host "*local"`},
	},
}

// sprintfPod fills the proxy image into bypassExtraPod.
func sprintfPod(format, image string) string { return fmt.Sprintf(format, image) }
