package e2e_test

// bypassRedteamCases are red-team attempts: other spellings of weakenings the
// catalog's rules judge. A case that fails with "want a denial, kubectl
// succeeded" is a bypass still open (see the report of the red-team branch).
var bypassRedteamCases = []bypassCase{
	// MESH0202: an app container that names one of Envoy's pod-internal ports
	// (the first step of reaching Envoy's admin port by name).
	{
		Name: "redteam a Deployment naming containerPort 15000 for a Service's named targetPort",
		Manifest: `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: "{{ns}}"}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: app
        image: registry.example.com/shop/web:1.0
        ports: [{name: envoy-admin, containerPort: 15000}]
---
apiVersion: v1
kind: Service
metadata: {name: web-admin, namespace: "{{ns}}"}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: envoy-admin}]
`,
		Code: "MESH0202",
	},
	// MESH0200: a named targetPort resolves against the namespace's running
	// pods (here one an admin exempted from MESH0202).
	{
		Name:     "redteam a Service whose named targetPort resolves to containerPort 15000",
		Exempt:   true,
		NSLabels: map[string]string{"istio.io/dataplane-mode": "ambient"},
		Setup:    podNamingEnvoyAdmin,
		Manifest: `apiVersion: v1
kind: Service
metadata: {name: web-admin, namespace: "{{ns}}"}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: envoy-admin}]
`,
		Code: "MESH0200",
	},
	// MESH0214: a named NetworkPolicy port resolves against the pods the
	// policy selects.
	{
		Name:     "redteam a NetworkPolicy opening Envoy's admin port by its container port name",
		Exempt:   true,
		NSLabels: map[string]string{"istio.io/dataplane-mode": "ambient"},
		Setup:    podNamingEnvoyAdmin,
		Manifest: `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: admin-open, namespace: "{{ns}}"}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{podSelector: {}}]
    ports: [{port: envoy-admin}]
`,
		Code: "MESH0214",
	},
	// MESH0120: proxy.istio.io/config is decoded with encoding/json field
	// matching, which does not know the proto field name interception_mode
	// that Istio's protojson decoding accepts.
	{
		Name: "redteam proxy.istio.io/config with interception_mode NONE (proto field name)",
		Manifest: `apiVersion: apps/v1
kind: Deployment
metadata: {name: w, namespace: "{{ns}}"}
spec:
  selector: {matchLabels: {app: w}}
  template:
    metadata:
      labels: {app: w}
      annotations:
        proxy.istio.io/config: "interception_mode: NONE"
    spec:
      containers:
      - {name: app, image: registry.example.com/shop/w:1.0}
`,
		Code: "MESH0120",
	},
	{
		Name: "redteam proxy.istio.io/config with interceptionMode as the enum number 2 (NONE)",
		Manifest: `apiVersion: apps/v1
kind: Deployment
metadata: {name: w, namespace: "{{ns}}"}
spec:
  selector: {matchLabels: {app: w}}
  template:
    metadata:
      labels: {app: w}
      annotations:
        proxy.istio.io/config: "interceptionMode: 2"
    spec:
      containers:
      - {name: app, image: registry.example.com/shop/w:1.0}
`,
		Code: "MESH0120",
	},
	// MESH0140/MESH0141: Istio takes the proxy UID/GID from the namespace's
	// OpenShift SCC annotations only on OpenShift (meshguard's --platform,
	// detected as kubernetes here), and only admins and the platform's
	// allocation controller may set them (MESH0106).
	{
		Name: "redteam a tenant annotating its namespace with an OpenShift SCC uid-range",
		Args: []string{"annotate", "namespace", "{{ns}}", "openshift.io/sa.scc.uid-range=1000/1"},
		Code: "MESH0106",
	},
	{
		Name:    "redteam a Deployment running as UID 1337 under a namespace SCC uid-range annotation",
		Prepare: [][]string{{"annotate", "namespace", "{{ns}}", "openshift.io/sa.scc.uid-range=1000/1"}, {"get", "namespace", "{{ns}}"}, {"get", "namespace", "{{ns}}", "-o", "yaml"}},
		Manifest: `apiVersion: apps/v1
kind: Deployment
metadata: {name: w, namespace: "{{ns}}"}
spec:
  selector: {matchLabels: {app: w}}
  template:
    metadata: {labels: {app: w}}
    spec:
      securityContext: {runAsUser: 1337, runAsGroup: 1337}
      containers:
      - {name: app, image: registry.example.com/shop/w:1.0}
`,
		Code: "MESH0140",
	},
	// Held checks (expected to be denied).
	{
		Name: "redteam pod-level runAsUser 1337 without a container override",
		Manifest: `apiVersion: apps/v1
kind: Deployment
metadata: {name: w, namespace: "{{ns}}"}
spec:
  selector: {matchLabels: {app: w}}
  template:
    metadata: {labels: {app: w}}
    spec:
      securityContext: {runAsUser: 1337}
      containers:
      - {name: app, image: registry.example.com/shop/w:1.0}
`,
		Code: "MESH0140",
	},
	{
		Name: "redteam pod-level runAsGroup 1337 in an init container's CronJob",
		Manifest: `apiVersion: batch/v1
kind: CronJob
metadata: {name: w, namespace: "{{ns}}"}
spec:
  schedule: "0 * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          securityContext: {runAsGroup: 1337}
          initContainers:
          - {name: init, image: registry.example.com/shop/w:1.0}
          containers:
          - {name: app, image: registry.example.com/shop/w:1.0}
`,
		Code: "MESH0141",
	},
	{
		Name: "redteam hostNetwork in a CronJob template",
		Manifest: `apiVersion: batch/v1
kind: CronJob
metadata: {name: w, namespace: "{{ns}}"}
spec:
  schedule: "0 * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          hostNetwork: true
          containers:
          - {name: app, image: registry.example.com/shop/w:1.0}
`,
		Code: "MESH0160",
	},
	{
		Name: "redteam NET_ADMIN in an init container of a Job template",
		Manifest: `apiVersion: batch/v1
kind: Job
metadata: {name: w, namespace: "{{ns}}"}
spec:
  template:
    spec:
      restartPolicy: Never
      initContainers:
      - name: init
        image: registry.example.com/shop/w:1.0
        securityContext: {capabilities: {add: [NET_ADMIN]}}
      containers:
      - {name: app, image: registry.example.com/shop/w:1.0}
`,
		Code: "MESH0150",
	},
	// (The "False" label case moved to the catalog: since Istio 1.27 "False"
	// is no opt-out, only MESH0118; under 1.26 it is MESH0110, see
	// rules/catalog/MESH0110-wl-inject-false/fail/opt-outs.yaml and
	// detected-istio-1-26.yaml.)
	{
		Name: "redteam AuthorizationPolicy without action and one empty rule",
		Manifest: `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: open, namespace: "{{ns}}"}
spec:
  rules: [{}]
`,
		Code: "MESH0020",
	},
	{
		Name: "redteam DestinationRule DISABLE in a subset's portLevelSettings",
		Manifest: `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: r, namespace: "{{ns}}"}
spec:
  host: reviews
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      portLevelSettings:
      - port: {number: 9080}
        tls: {mode: DISABLE}
`,
		Code: "MESH0010",
	},
	// Grandfathering compares the findings' items as lists (rules/items.go),
	// so an old DestinationRule host whose free text spells the item of a
	// later, real weakening hides nothing.
	{
		Name:   "redteam a grandfathered DestinationRule whose host text hides a new DISABLE item",
		Exempt: true,
		Setup: `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: r
  namespace: "{{ns}}"
  annotations: {meshguard.io/exempt: MESH0010, meshguard.io/exempt-reason: legacy}
spec:
  host: 'x"; spec.trafficPolicy.tls sets mode DISABLE towards in-mesh host "reviews.{{ns}}.svc'
  trafficPolicy: {tls: {mode: DISABLE}}
`,
		Manifest: `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: r, namespace: "{{ns}}"}
spec:
  host: reviews.{{ns}}.svc
  trafficPolicy: {tls: {mode: DISABLE}}
`,
		Code: "MESH0010",
	},
	// Held control of the case above: with an ordinary old host the new
	// DISABLE item is new and denied.
	{
		Name:   "redteam control a grandfathered DestinationRule with a plain host gets a new DISABLE host",
		Exempt: true,
		Setup: `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: r
  namespace: "{{ns}}"
  annotations: {meshguard.io/exempt: MESH0010, meshguard.io/exempt-reason: legacy}
spec:
  host: legacy.{{ns}}.svc
  trafficPolicy: {tls: {mode: DISABLE}}
`,
		Manifest: `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: r, namespace: "{{ns}}"}
spec:
  host: reviews.{{ns}}.svc
  trafficPolicy: {tls: {mode: DISABLE}}
`,
		Code: "MESH0010",
	},
	// MESH0200: a selector-less Service with an innocent targetPort pointed
	// at a pod's 15000 by hand-written Endpoints (or an EndpointSlice, even
	// one carrying the controller's managed-by label).
	{
		Name: "redteam a selector-less Service with hand-written Endpoints on port 15000",
		Manifest: `apiVersion: v1
kind: Service
metadata: {name: web-admin, namespace: "{{ns}}"}
spec:
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: web-admin, namespace: "{{ns}}"}
subsets:
- addresses: [{ip: 10.0.0.10}]
  ports: [{name: http, port: 15000}]
`,
		Code: "MESH0200",
	},
	{
		Name: "redteam a hand-written EndpointSlice with the controller's managed-by label on port 15006",
		Manifest: `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-admin-1
  namespace: "{{ns}}"
  labels: {kubernetes.io/service-name: web-admin, endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io}
addressType: IPv4
endpoints:
- addresses: [10.0.0.10]
ports:
- {name: http, port: 15006, protocol: TCP}
`,
		Code: "MESH0200",
	},
	// MESH0110: a pod label istio.io/dataplane-mode=ambient counts in a
	// sidecar namespace it opts out of only with --ambient-installed: a mesh
	// may run no ztunnel.
	{
		Name: "redteam sidecar.istio.io/inject false with a pod label istio.io/dataplane-mode ambient in a sidecar namespace",
		Manifest: `apiVersion: apps/v1
kind: Deployment
metadata: {name: w, namespace: "{{ns}}"}
spec:
  selector: {matchLabels: {app: w}}
  template:
    metadata: {labels: {app: w, sidecar.istio.io/inject: "false", istio.io/dataplane-mode: ambient}}
    spec:
      containers:
      - {name: app, image: registry.example.com/shop/w:1.0}
`,
		Code: "MESH0110",
	},
	{
		Name:  "redteam an ephemeral container running as UID 1337",
		Setup: injectedPod("{{ns}}", "reviews"),
		Args: []string{"patch", "pod", "reviews", "-n", "{{ns}}", "--subresource=ephemeralcontainers", "--type=strategic", "-p",
			`{"spec":{"ephemeralContainers":[{"name":"dbg","image":"busybox:1.36","targetContainerName":"istio-proxy","securityContext":{"runAsUser":1337}}]}}`},
		Code: "MESH0140",
	},
	{
		Name:  "redteam an ephemeral container that is privileged",
		Setup: injectedPod("{{ns}}", "reviews"),
		Args: []string{"patch", "pod", "reviews", "-n", "{{ns}}", "--subresource=ephemeralcontainers", "--type=strategic", "-p",
			`{"spec":{"ephemeralContainers":[{"name":"dbg","image":"busybox:1.36","securityContext":{"privileged":true}}]}}`},
		Code: "MESH0156",
	},
	// MESH0112: the rule skips pods annotated kubernetes.io/config.mirror,
	// an annotation any pod creator can write (the API server only stops a
	// mirror pod from using a service account, secrets and the like).
	{
		Name: "redteam a pod without istio-proxy annotated as a mirror pod",
		Manifest: `apiVersion: v1
kind: Pod
metadata:
  name: w
  namespace: "{{ns}}"
  annotations: {kubernetes.io/config.mirror: "forged"}
spec:
  nodeName: node-1
  automountServiceAccountToken: false
  containers:
  - {name: app, image: registry.example.com/shop/w:1.0}
`,
		Code: "MESH0112",
	},
	{
		Name: "redteam control a pod without istio-proxy",
		Manifest: `apiVersion: v1
kind: Pod
metadata: {name: w, namespace: "{{ns}}"}
spec:
  automountServiceAccountToken: false
  containers:
  - {name: app, image: registry.example.com/shop/w:1.0}
`,
		Code: "MESH0112",
	},
	// MESH0111: istio-cni's ambient enablement (cni/pkg/util
	// enablement_selector.go Matches) skips every pod with a
	// sidecar.istio.io/status annotation ("podHasSidecar"), so a pod that
	// only carries the annotation is never captured by ztunnel; meshguard
	// rates the spoofed annotation MESH0129 Low (audit only).
	{
		Name:     "redteam a pod in an ambient namespace opting out with a forged sidecar.istio.io/status annotation",
		NSLabels: map[string]string{"istio.io/dataplane-mode": "ambient"},
		Manifest: `apiVersion: apps/v1
kind: Deployment
metadata: {name: w, namespace: "{{ns}}"}
spec:
  selector: {matchLabels: {app: w}}
  template:
    metadata:
      labels: {app: w}
      annotations: {sidecar.istio.io/status: "{}"}
    spec:
      containers:
      - {name: app, image: registry.example.com/shop/w:1.0}
`,
		Code: "MESH0111",
	},
	{
		Name:     "redteam control a pod in an ambient namespace with istio.io/dataplane-mode none",
		NSLabels: map[string]string{"istio.io/dataplane-mode": "ambient"},
		Manifest: `apiVersion: apps/v1
kind: Deployment
metadata: {name: w, namespace: "{{ns}}"}
spec:
  selector: {matchLabels: {app: w}}
  template:
    metadata:
      labels: {app: w, istio.io/dataplane-mode: none}
    spec:
      containers:
      - {name: app, image: registry.example.com/shop/w:1.0}
`,
		Code: "MESH0111",
	},
	// MESH0066: a ServiceEntry alias whose DNS endpoint is an in-mesh
	// Service sends plaintext to meshed pods under a host that is "not in the
	// mesh" (auto mTLS does not apply to DNS endpoints); the alias itself is
	// denied, so the DestinationRule that disables TLS for it has nothing to
	// weaken.
	{
		Name: "redteam a DestinationRule DISABLE for a ServiceEntry alias of an in-mesh Service",
		Manifest: `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews-alias, namespace: "{{ns}}"}
spec:
  hosts: [reviews-alias.example.com]
  location: MESH_INTERNAL
  resolution: DNS
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints: [{address: reviews.{{ns}}.svc.cluster.local}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews-alias, namespace: "{{ns}}"}
spec:
  host: reviews-alias.example.com
  trafficPolicy: {tls: {mode: DISABLE}}
`,
		Code: "MESH0066",
	},
	// MESH0010: a ServiceEntry that sends a host to in-mesh workloads makes
	// that host in-mesh, whatever its spelling. The ServiceEntry is in Setup,
	// which waits until meshguard's cache holds it (a ServiceEntry and a
	// DestinationRule sent within the cache's propagation delay are judged as
	// the cache stood). The DNS alias is exempted from MESH0066 by the admin,
	// which must not open the DestinationRule's way.
	{
		Name:   "redteam a DestinationRule DISABLE for an exempted ServiceEntry alias of an in-mesh Service",
		Exempt: true,
		Setup:  reviewsAliasServiceEntryExempt,
		Manifest: `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews-alias, namespace: "{{ns}}"}
spec:
  host: reviews-alias.{{ns}}.example.com
  trafficPolicy: {tls: {mode: DISABLE}}
`,
		Code:     "MESH0010",
		Contains: []string{`(ServiceEntry {{ns}}/reviews-alias sends "reviews-alias.{{ns}}.example.com" to in-mesh "reviews.{{ns}}.svc.cluster.local")`},
	},
	{
		Name:   "redteam a wildcard DestinationRule with tls and no mode covering a ServiceEntry alias",
		Exempt: true,
		Setup:  reviewsAliasServiceEntryExempt,
		Manifest: `apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: example-wildcard, namespace: "{{ns}}"}
spec:
  host: "*.{{ns}}.example.com"
  trafficPolicy: {tls: {}}
`,
		Code: "MESH0010",
	},
	{
		Name: "redteam a DestinationRule DISABLE on a port for a ServiceEntry selecting meshed pods",
		Setup: `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews-vm, namespace: "{{ns}}"}
spec:
  hosts: [reviews.{{ns}}.vm.internal]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: reviews}}
`,
		Manifest: `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews-vm, namespace: "{{ns}}"}
spec:
  host: reviews.{{ns}}.vm.internal
  trafficPolicy:
    portLevelSettings:
    - port: {number: 9080}
      tls: {mode: DISABLE}
`,
		Code: "MESH0010",
	},
	// The other order: the DestinationRule first (its host is not in-mesh
	// then), the alias second: the ServiceEntry is judged against the
	// DestinationRules in meshguard's cache that name its hosts, also when
	// it is exempted from MESH0066 and when it selects meshed pods.
	{
		Name:   "redteam an exempted ServiceEntry alias created after its DestinationRule DISABLE",
		Exempt: true,
		Setup: `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews-alias, namespace: "{{ns}}"}
spec:
  host: reviews-alias.{{ns}}.example.com
  trafficPolicy: {tls: {mode: DISABLE}}
`,
		Manifest: reviewsAliasServiceEntryExempt,
		Code:     "MESH0010",
		Contains: []string{`ServiceEntry/{{ns}}/reviews-alias`, `DestinationRule {{ns}}/reviews-alias: spec.trafficPolicy.tls sets mode DISABLE towards "reviews-alias.{{ns}}.example.com", which this ServiceEntry sends to in-mesh "reviews.{{ns}}.svc.cluster.local"`},
	},
	{
		Name: "redteam a ServiceEntry selecting meshed pods created after a DestinationRule DISABLE for its host",
		Setup: `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews-vm, namespace: "{{ns}}"}
spec:
  host: reviews.{{ns}}.vm.internal
  trafficPolicy: {tls: {mode: DISABLE}}
`,
		Manifest: `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews-vm, namespace: "{{ns}}"}
spec:
  hosts: [reviews.{{ns}}.vm.internal]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: reviews}}
`,
		Code:     "MESH0010",
		Contains: []string{`DestinationRule {{ns}}/reviews-vm: spec.trafficPolicy.tls sets mode DISABLE towards "reviews.{{ns}}.vm.internal"`},
	},
	// The same forged annotation on a running ambient pod: istio-cni's pod
	// informer re-evaluates enablement on pod updates and unenrolls it.
	{
		Name:     "redteam annotating a running ambient pod with a forged sidecar.istio.io/status",
		NSLabels: map[string]string{"istio.io/dataplane-mode": "ambient"},
		Setup: `apiVersion: v1
kind: Pod
metadata: {name: web, namespace: "{{ns}}", labels: {app: web}}
spec:
  containers:
  - {name: app, image: registry.example.com/shop/web:1.0}
`,
		Args: []string{"annotate", "pod", "web", "-n", "{{ns}}", "sidecar.istio.io/status={}"},
		Code: "MESH0111",
	},
}

// podNamingEnvoyAdmin is a running (ambient) pod whose app container names
// Envoy's admin port, admitted by an object exemption from MESH0202.
const podNamingEnvoyAdmin = `apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: "{{ns}}"
  labels: {app: web}
  annotations: {meshguard.io/exempt: MESH0202, meshguard.io/exempt-reason: legacy debug build}
spec:
  containers:
  - name: app
    image: registry.example.com/shop/web:1.0
    ports: [{name: envoy-admin, containerPort: 15000}]
`

// reviewsAliasServiceEntryExempt makes reviews-alias.<ns>.example.com an
// alias of the in-mesh Service reviews of the case's namespace (a host of its
// own per case: ServiceEntries are seen from every namespace), exempted from
// MESH0066 by its object annotation (the case's namespace allows it).
const reviewsAliasServiceEntryExempt = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: reviews-alias
  namespace: "{{ns}}"
  annotations: {meshguard.io/exempt: MESH0066, meshguard.io/exempt-reason: partner alias with ISTIO_MUTUAL on the caller side}
spec:
  hosts: [reviews-alias.{{ns}}.example.com]
  location: MESH_INTERNAL
  resolution: DNS
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints: [{address: reviews.{{ns}}.svc.cluster.local}]
`
