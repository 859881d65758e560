package e2e_test

// bypassNetpolCases are NetworkPolicies that admit everything, written the
// plain way and spelled so that no field is empty (issue 9, item 2).
var bypassNetpolCases = func() []bypassCase {
	const (
		fixIngress = "Name the sources (the ingress gateway, specific namespaces or pods) and the ports in the rule."
		fixEgress  = "Name the destinations (istiod, DNS, the egress gateway, specific namespaces or CIDRs)"
		fixAnyIP   = "Name the CIDRs the pods really talk to"
	)
	np := func(name, spec string) string {
		return "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: " + name + `, namespace: "{{ns}}"}` + "\nspec:\n" + spec
	}
	return []bypassCase{
		{Name: "an ingress rule that is empty", Manifest: np("open", "  podSelector: {}\n  ingress: [{}]\n"),
			Code: "MESH0210", Fix: fixIngress, Contains: []string{"spec.ingress[0] allows every source on every port"}},
		{Name: "an ingress rule whose ports name only protocols", Manifest: np("protocols", "  podSelector: {}\n  ingress:\n  - ports: [{protocol: TCP}, {protocol: UDP}]\n"),
			Code: "MESH0210", Fix: fixIngress, Contains: []string{"its ports carry no port number, so every port"}},
		{Name: "an ingress rule from the IPv4 halves on port ranges covering 1-65535", Manifest: np("halves",
			"  podSelector: {matchExpressions: [{key: app, operator: NotIn, values: [db]}]}\n  ingress:\n  - from: [{ipBlock: {cidr: 0.0.0.0/1}}, {ipBlock: {cidr: 128.0.0.0/1}}]\n    ports: [{port: 1, endPort: 32767}, {port: 32768, endPort: 65535}]\n"),
			Code: "MESH0210", Fix: fixIngress, Contains: []string{"its ipBlocks cover every IPv4 address, and its port ranges cover every TCP port 1-65535"}},
		{Name: "an egress rule that is empty", Manifest: np("egress-open", "  podSelector: {}\n  policyTypes: [Egress]\n  egress: [{}]\n"),
			Code: "MESH0211", Fix: fixEgress},
		{Name: "an egress rule to every IPv4 and IPv6 address on protocol-only ports", Manifest: np("egress-halves",
			"  podSelector: {}\n  policyTypes: [Egress]\n  egress:\n  - to: [{ipBlock: {cidr: 0.0.0.0/1}}, {ipBlock: {cidr: 128.0.0.0/1}}, {ipBlock: {cidr: \"::/1\"}}, {ipBlock: {cidr: \"8000::/1\"}}]\n    ports: [{protocol: TCP}]\n"),
			Code: "MESH0211", Fix: fixEgress, Contains: []string{"every IPv4 and IPv6 address"}},
		{Name: "an ingress ipBlock 0.0.0.0/0", Manifest: np("any-ip", "  podSelector: {matchLabels: {app: web}}\n  ingress:\n  - from: [{ipBlock: {cidr: 0.0.0.0/0}}]\n    ports: [{port: 8080}]\n"),
			Code: "MESH0212", Fix: fixAnyIP, Contains: []string{"spec.ingress[0].from[0].ipBlock.cidr 0.0.0.0/0"}},
		{Name: "ingress ipBlock quarters spread over two rules", Manifest: np("quarters",
			"  podSelector: {matchLabels: {app: web}}\n  ingress:\n  - from: [{ipBlock: {cidr: 0.0.0.0/2}}, {ipBlock: {cidr: 64.0.0.0/2}}]\n    ports: [{port: 8080}]\n  - from: [{ipBlock: {cidr: 128.0.0.0/1}}]\n    ports: [{port: 8443}]\n"),
			Code: "MESH0212", Fix: fixAnyIP, Contains: []string{"(together every IPv4 address)"}},
	}
}()
