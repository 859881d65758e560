package e2e_test

// bypassAuthzCases are allow-all AuthorizationPolicies written another way
// (issue 9, item 3): each admits every request to every sidecar workload of
// the tenant's namespace, so MESH0020 denies it at High. Workload-scope
// forms (Medium) only warn and are not bypass attempts. Contains holds no
// {{ns}} token: only Setup, Manifest and Args are expanded.
var bypassAuthzCases = []bypassCase{
	{
		Name: "a namespace-wide ALLOW with one empty rule (the canonical allow-all)",
		Manifest: `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-all, namespace: {{ns}}}
spec:
  action: ALLOW
  rules: [{}]
`,
		Code: "MESH0020", Fix: "Allow-list sources by principals or serviceAccounts",
		Contains: []string{"ALLOW policy for every workload in namespace", "spec.rules[0] matches every request"},
	},
	{
		Name: "an ALLOW from ipBlocks halves that together cover every IPv4 and IPv6 address",
		Manifest: `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: any-ip-halves, namespace: {{ns}}}
spec:
  rules:
  - from:
    - source:
        ipBlocks: ["0.0.0.0/1", "128.0.0.0/1", "::/1", "8000::/1"]
`,
		Code: "MESH0020", Fix: "Allow-list sources by principals or serviceAccounts",
		Contains: []string{`ipBlocks ["0.0.0.0/1","128.0.0.0/1","::/1","8000::/1"] cover every IPv4 and IPv6 address`},
	},
	{
		Name: "an ALLOW from remoteIpBlocks quarters that cover every IPv4 address",
		Manifest: `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: any-ipv4-quarters, namespace: {{ns}}}
spec:
  rules:
  - from:
    - source:
        remoteIpBlocks: ["0.0.0.0/2", "64.0.0.0/2", "128.0.0.0/2", "192.0.0.0/2"]
`,
		Code: "MESH0020", Fix: "Allow-list sources by principals or serviceAccounts",
		Contains: []string{`remoteIpBlocks ["0.0.0.0/2","64.0.0.0/2","128.0.0.0/2","192.0.0.0/2"] cover every IPv4 address`},
	},
	{
		Name: "an ALLOW whose only condition is a source.ip covering every address",
		Manifest: `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: when-any-source-ip, namespace: {{ns}}}
spec:
  rules:
  - when:
    - key: source.ip
      values: ["0.0.0.0/0", "::/0"]
`,
		Code: "MESH0020", Fix: "Allow-list sources by principals or serviceAccounts",
		Contains: []string{`when[0] (source.ip).values ["0.0.0.0/0","::/0"] cover every IPv4 and IPv6 address`},
	},
	{
		Name: "an ALLOW whose only condition is a remote.ip made of IPv4 halves",
		Manifest: `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: when-any-remote-ip, namespace: {{ns}}}
spec:
  rules:
  - when:
    - key: remote.ip
      values: ["0.0.0.0/1", "128.0.0.0/1"]
`,
		Code: "MESH0020", Fix: "Allow-list sources by principals or serviceAccounts",
		Contains: []string{`when[0] (remote.ip).values ["0.0.0.0/1","128.0.0.0/1"] cover every IPv4 address`},
	},
	{
		Name: "an ALLOW to every path but one that is not a path (no leading slash)",
		Manifest: `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: not-a-path, namespace: {{ns}}}
spec:
  rules:
  - to:
    - operation:
        notPaths: ["nothing"]
`,
		Code: "MESH0020", Fix: "Allow-list sources by principals or serviceAccounts",
		Contains: []string{`notPaths ["nothing"] match no request path`},
	},
	{
		Name: "an ALLOW to every method but one that is not a method token",
		Manifest: `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: not-a-method, namespace: {{ns}}}
spec:
  rules:
  - to:
    - operation:
        notMethods: ["GET,POST"]
`,
		Code: "MESH0020", Fix: "Allow-list sources by principals or serviceAccounts",
		Contains: []string{`notMethods ["GET,POST"] match no method`},
	},
	{
		Name: "an ALLOW to every Host but one that cannot be a Host",
		Manifest: `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: not-a-host, namespace: {{ns}}}
spec:
  rules:
  - to:
    - operation:
        notHosts: ["admin.example.com/"]
`,
		Code: "MESH0020", Fix: "Allow-list sources by principals or serviceAccounts",
		Contains: []string{`notHosts ["admin.example.com/"] match no Host`},
	},
	{
		Name: "an ALLOW to every port but port 0",
		Manifest: `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: not-port-zero, namespace: {{ns}}}
spec:
  rules:
  - to:
    - operation:
        notPorts: ["0"]
`,
		Code: "MESH0020", Fix: "Allow-list sources by principals or serviceAccounts",
		Contains: []string{`notPorts ["0"] match no port`},
	},
	{
		Name: "an ALLOW to every path and method written as wildcards",
		Manifest: `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: any-path-any-method, namespace: {{ns}}}
spec:
  rules:
  - to:
    - operation:
        methods: ["*"]
        paths: ["/*"]
        hosts: ["*"]
`,
		Code: "MESH0020", Fix: "Allow-list sources by principals or serviceAccounts",
		Contains: []string{"ALLOW policy for every workload in namespace", "spec.rules[0] matches every request"},
	},
	{
		Name: "a \"workload\" allow-all whose selector security.istio.io/tlsMode=istio matches every injected pod",
		Manifest: `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: every-sidecar, namespace: {{ns}}}
spec:
  selector:
    matchLabels:
      security.istio.io/tlsMode: istio
  rules: [{}]
`,
		Code: "MESH0020", Fix: "Allow-list sources by principals or serviceAccounts",
		Contains: []string{"selector security.istio.io/tlsMode=istio selects every injected pod"},
	},
	{
		Name: "a tlsMode=istio selector combined with ipBlocks pieces",
		Manifest: `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: every-sidecar-any-ip, namespace: {{ns}}}
spec:
  selector:
    matchLabels:
      security.istio.io/tlsMode: istio
  rules:
  - from:
    - source:
        ipBlocks: ["0.0.0.0/1", "128.0.0.0/1"]
`,
		Code: "MESH0020", Fix: "Allow-list sources by principals or serviceAccounts",
		Contains: []string{"selector security.istio.io/tlsMode=istio selects every injected pod",
			`ipBlocks ["0.0.0.0/1","128.0.0.0/1"] cover every IPv4 address`},
	},
	// meshguard's managed AuthorizationPolicies (a quarantine's DENY-all)
	// are protected like its NetworkPolicies (MESH0025).
	{
		Name: "a tenant deleting a managed AuthorizationPolicy", Setup: managedDenyAll,
		Args: []string{"delete", "authorizationpolicy", "meshguard-quarantine-cart", "-n", "{{ns}}"},
		Code: "MESH0025", Fix: "Leave the managed AuthorizationPolicies to meshguard", Contains: []string{"deletes it"},
	},
	{
		Name: "a tenant deleting every AuthorizationPolicy with one deletecollection call", Setup: managedDenyAll,
		Args: []string{"delete", "--raw", "/apis/security.istio.io/v1/namespaces/{{ns}}/authorizationpolicies"},
		Code: "MESH0025", Fix: "Leave the managed AuthorizationPolicies to meshguard",
	},
	{
		Name: "a tenant removing the managed label of an AuthorizationPolicy", Setup: managedDenyAll,
		Args: []string{"label", "authorizationpolicy", "meshguard-quarantine-cart", "-n", "{{ns}}", "meshguard.io/managed-"},
		Code: "MESH0025", Fix: "Leave the managed AuthorizationPolicies to meshguard", Contains: []string{`removes label meshguard.io/managed="true"`},
	},
	{
		Name: "a tenant turning a managed DENY into AUDIT", Setup: managedDenyAll,
		Args: []string{"patch", "authorizationpolicy", "meshguard-quarantine-cart", "-n", "{{ns}}", "--type=merge", "-p", `{"spec":{"action":"AUDIT"}}`},
		Code: "MESH0025", Fix: "Leave the managed AuthorizationPolicies to meshguard", Contains: []string{"changes its spec"},
	},
}

// managedDenyAll is a managed DENY-all AuthorizationPolicy as a quarantine
// writes it.
const managedDenyAll = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: meshguard-quarantine-cart
  namespace: {{ns}}
  labels: {app.kubernetes.io/managed-by: meshguard, meshguard.io/managed: "true"}
spec:
  selector: {matchLabels: {meshguard.io/quarantined: cart}}
  action: DENY
  rules: [{}]
`
