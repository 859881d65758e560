package rules

import "testing"

func TestHostsOverlap(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want bool
	}{
		{"reviews-alias.example.com", "Reviews-Alias.example.com", true},
		{"*.example.com", "api.example.com", true},
		{"api.example.com", "*.example.com", true},
		{"*.example.com", "*.eu.example.com", true},
		{"*", "anything.example.org", true},
		{"*.example.com", "example.com", false},
		{"api.example.com", "api.example.org", false},
		{"*.eu.example.com", "*.us.example.com", false},
	} {
		if got := hostsOverlap(tt.a, tt.b); got != tt.want {
			t.Errorf("hostsOverlap(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestServiceEntryAliases(t *testing.T) {
	s := NewSnapshot()
	s.AddNamespace(Namespace{Name: "legacy"})
	for _, doc := range []string{
		`{apiVersion: networking.istio.io/v1, kind: ServiceEntry, metadata: {name: a, namespace: shop},
		  spec: {hosts: [a.example.com], resolution: DNS, endpoints: [{address: 10.1.2.3}, {address: reviews.shop.svc.cluster.local}, {address: "unix:///var/run/sock"}]}}`,
		`{apiVersion: networking.istio.io/v1, kind: ServiceEntry, metadata: {name: b},
		  spec: {hosts: [b.example.com], workloadSelector: {labels: {app: b}}}}`,
		`{apiVersion: networking.istio.io/v1, kind: ServiceEntry, metadata: {name: c, namespace: legacy},
		  spec: {hosts: [c.example.com], workloadSelector: {labels: {app: c}}}}`,
		`{apiVersion: networking.istio.io/v1, kind: ServiceEntry, metadata: {name: d, namespace: shop},
		  spec: {hosts: [d.example.com], resolution: DNS, endpoints: [{address: d.example.org}, {address: 192.0.2.1}]}}`,
	} {
		s.Add(decode(t, doc), "tenant")
	}
	cfg, err := NewConfig().compile()
	if err != nil {
		t.Fatal(err)
	}
	e := &engine{cfg: cfg, ctx: s}
	for _, tt := range []struct{ host, text, ns string }{
		{"a.example.com", `ServiceEntry shop/a sends "a.example.com" to in-mesh "reviews.shop.svc.cluster.local"`, "shop"},
		{"*.example.com", `ServiceEntry shop/a sends "a.example.com" to in-mesh "reviews.shop.svc.cluster.local"`, "shop"},
		{"b.example.com", `ServiceEntry tenant/b sends "b.example.com" to the workloads its workloadSelector app=b selects in namespace tenant`, "tenant"},
		{"c.example.com", "", ""},
		{"d.example.com", "", ""},
		{"e.example.com", "", ""},
	} {
		got := e.serviceEntryAliases(tt.host, "shop")
		text, ns := "", ""
		if len(got) > 0 {
			text, ns = got[0].text, got[0].namespace
		}
		if text != tt.text || ns != tt.ns {
			t.Errorf("serviceEntryAliases(%q) = %q in %q, want %q in %q", tt.host, text, ns, tt.text, tt.ns)
		}
	}
	if s.ServiceEntries()[1]["metadata"].(map[string]any)["namespace"] != "tenant" {
		t.Error("a ServiceEntry without a namespace takes the default one")
	}
}
