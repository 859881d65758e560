package rules

import "testing"

// TestMeshHostWildcards checks DestinationRule hosts against Istio's host
// matching (pkg/config/host/name.go Matches): a leading "*" matches any
// suffix, with or without a dot.
func TestMeshHostWildcards(t *testing.T) {
	tests := []struct {
		name, host, domain string
		inMesh, meshWide   bool
		hostNS             string
	}{
		{"a suffix without a dot after the star covers every service", "*svc.cluster.local", "cluster.local", true, true, ""},
		{"*.svc.cluster.local covers every service", "*.svc.cluster.local", "cluster.local", true, true, ""},
		{"*cluster.local covers every service", "*cluster.local", "cluster.local", true, true, ""},
		{"*.cluster.local covers every service", "*.cluster.local", "cluster.local", true, true, ""},
		{"*local covers every service", "*local", "cluster.local", true, true, ""},
		{"*.local covers every service", "*.local", "cluster.local", true, true, ""},
		{"a single letter of the domain's end covers every service", "*l", "cluster.local", true, true, ""},
		{"the bare star covers every service", "*", "cluster.local", true, true, ""},
		{"wildcards are case-insensitive", "*SVC.Cluster.Local", "cluster.local", true, true, ""},
		{"*.<ns>.svc.<domain> covers one namespace", "*.prod.svc.cluster.local", "cluster.local", true, false, "prod"},
		{"a service-name suffix in one namespace names that namespace", "*api.prod.svc.cluster.local", "cluster.local", true, false, "prod"},
		{"a namespace-name suffix covers several namespaces", "*prod.svc.cluster.local", "cluster.local", true, false, ""},
		{"a .svc wildcard is in the mesh as .svc names are, but not mesh-wide", "*.svc", "cluster.local", true, false, ""},
		{"a .svc namespace wildcard names its namespace", "*.prod.svc", "cluster.local", true, false, "prod"},
		{"a custom cluster domain: its suffix wildcard covers every service", "*svc.corp.example", "corp.example", true, true, ""},
		{"a custom cluster domain: *.example covers every service", "*.example", "corp.example", true, true, ""},
		{"a custom cluster domain: *.local covers no service", "*.local", "corp.example", false, false, ""},
		{"a custom cluster domain: cluster.local wildcards cover no service", "*.svc.cluster.local", "corp.example", false, false, ""},
		{"an external wildcard is not in the mesh", "*.example.com", "cluster.local", false, false, ""},
		{"an external suffix without a dot is not in the mesh", "*example.com", "cluster.local", false, false, ""},
		{"a longer domain is not the cluster's", "*.svc.cluster.local.example.org", "cluster.local", false, false, ""},
		{"a suffix deeper than <svc>.<ns> matches no service", "*.a.b.svc.cluster.local", "cluster.local", false, false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in, wide, ns := meshHost(tc.host, "shop", tc.domain)
			if in != tc.inMesh || wide != tc.meshWide || ns != tc.hostNS {
				t.Errorf("meshHost(%q, domain %q) = %v, %v, %q; want %v, %v, %q", tc.host, tc.domain, in, wide, ns, tc.inMesh, tc.meshWide, tc.hostNS)
			}
			if in2, wide2 := inMeshHost(tc.host, "shop", tc.domain); in2 != in || wide2 != wide {
				t.Errorf("inMeshHost disagrees with meshHost: %v, %v", in2, wide2)
			}
			if got := hostNamespace(tc.host, "shop", tc.domain); got != ns {
				t.Errorf("hostNamespace disagrees with meshHost: %q", got)
			}
		})
	}
}

// TestDestinationRuleWildcardFacts checks the facts MESH0010's severity reads
// for a suffix wildcard in the root namespace.
func TestDestinationRuleWildcardFacts(t *testing.T) {
	cfg := NewConfig()
	cfg.ClusterDomain = "corp.example"
	cc, err := cfg.compile()
	if err != nil {
		t.Fatal(err)
	}
	e := &engine{cfg: cc, ctx: emptyContext{}}
	for _, tc := range []struct {
		name, host       string
		inMesh, meshWide bool
	}{
		{"a suffix wildcard of the configured domain is mesh-wide", "*svc.corp.example", true, true},
		{"the default domain's wildcard is not the configured domain's", "*svc.cluster.local", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := e.destinationRuleFacts(decode(t, `{metadata: {name: r, namespace: istio-system}, spec: {host: "`+tc.host+`", trafficPolicy: {tls: {mode: DISABLE}}}}`), "istio-system")
			if err != nil {
				t.Fatal(err)
			}
			if f["inMesh"] != tc.inMesh || f["meshWildcard"] != tc.meshWide || f["inRoot"] != true || f["exportedToAll"] != true {
				t.Errorf("facts = %v", f)
			}
		})
	}
}
