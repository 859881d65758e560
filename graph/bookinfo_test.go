package graph

import (
	"sort"
	"strings"
	"testing"
)

const (
	productpage = "Deployment/bookinfo/productpage-v1"
	reviews     = "Deployment/bookinfo/reviews-v1"
	ratings     = "Deployment/bookinfo/ratings-v1"
	details     = "Deployment/bookinfo/details-v1"
	gateway     = "gateway:istio-ingress/istio-ingressgateway"
)

// TestGraphBookinfoFixed checks every edge of examples/bookinfo/fixed by hand.
//
// The manifests: mesh-wide STRICT (istio-system/default); bookinfo is
// sidecar-injected and holds allow-nothing (an ALLOW policy with no rules,
// selecting every workload of the namespace), so each workload admits only
// what its own ALLOW policy matches:
//   - productpage-from-gateway: principal of the ingress gateway, with a
//     token (requestPrincipals) and methods GET/POST;
//   - reviews-from-productpage, ratings-from-reviews, details-from-productpage:
//     one principal each, method GET.
//
// The input holds no gateway pods, so the gateway is the assumed one
// (istio-ingress/istio-ingressgateway, the principal the policy names).
// details is also guarded by the NetworkPolicy details-from-productpage
// (ingress only from app=productpage on TCP 9080).
//
// Sources: four workloads, the gateway and outside; destinations: the four
// workloads on 9080 (their only container port; only productpage has a
// Service). So 4 x 5 = 20 edges:
//   - the four intended edges are conditional, never plain "allowed", since
//     every ALLOW rule also names methods (and the gateway's a token);
//   - outside has no identity and STRICT rejects its plaintext, except to
//     details, where the NetworkPolicy drops it first;
//   - every other workload or gateway edge reaches its destination's sidecar
//     over mTLS and no ALLOW rule matches its principal (denied-authz),
//     except edges to details from anything but productpage, which the
//     NetworkPolicy drops first (denied-netpol).
func TestGraphBookinfoFixed(t *testing.T) {
	g := compute(t, readDir(t, "../examples/bookinfo/fixed"), Options{})
	if len(g.Edges) != 20 {
		t.Fatalf("want 20 edges, got %d:\n%s", len(g.Edges), strings.Join(edgeLines(g), "\n"))
	}
	intended := map[string]string{
		gateway + " -> " + productpage + ":9080": `allowed when bookinfo/productpage-from-gateway rules[0]: requestPrincipals ["https://auth.example.com//*"] and methods ["GET","POST"]`,
		productpage + " -> " + reviews + ":9080": `allowed when bookinfo/reviews-from-productpage rules[0]: methods ["GET"]`,
		productpage + " -> " + details + ":9080": `allowed when bookinfo/details-from-productpage rules[0]: methods ["GET"]`,
		reviews + " -> " + ratings + ":9080":     `allowed when bookinfo/ratings-from-reviews rules[0]: methods ["GET"]`,
	}
	var allowed []string
	for _, e := range g.Edges {
		from, to := g.Nodes[e.From].ID, g.Nodes[e.To].ID
		key := from + " -> " + to + ":9080"
		if e.Verdict.Allowed() {
			allowed = append(allowed, key)
			if e.Verdict != Conditional || e.Transport != TransportMTLS {
				t.Errorf("%s: want conditional over mTLS, got %s", edgeLine(g, e), e.Transport)
			}
			if want := intended[key]; len(e.Why.Conditions) != 1 || e.Why.Conditions[0] != want {
				t.Errorf("%s: conditions %q, want %q", key, e.Why.Conditions, want)
			}
			continue
		}
		var want Verdict
		switch {
		case to == details && from != productpage:
			want = DeniedNetpol
		case from == OutsideID:
			want = RejectedMTLS
		default:
			want = DeniedAuthz
		}
		if e.Verdict != want {
			t.Errorf("%s: want %s (%v)", edgeLine(g, e), want, e.Why.Reasons)
		}
	}
	sort.Strings(allowed)
	if len(allowed) != len(intended) {
		t.Errorf("allowed edges:\n%s\nwant exactly the %d intended ones", strings.Join(allowed, "\n"), len(intended))
	}
	// Why the rest is denied, named.
	e := findEdge(t, g, ratings, productpage, 9080)
	if got := strings.Join(e.Why.Reasons, "; "); !strings.Contains(got, "no rule of ALLOW AuthorizationPolicy bookinfo/allow-nothing, bookinfo/productpage-from-gateway matches") {
		t.Errorf("ratings -> productpage reasons: %s", got)
	}
	e = findEdge(t, g, reviews, details, 9080)
	if got := strings.Join(e.Why.Reasons, "; "); got != "ingress to the destination is restricted by NetworkPolicy bookinfo/details-from-productpage: none admits this source on port 9080" {
		t.Errorf("reviews -> details reasons: %s", got)
	}
	if n := g.Nodes[g.NodeIndex(gateway)]; !n.Assumed || n.Identity != "spiffe://cluster.local/ns/istio-ingress/sa/istio-ingressgateway" {
		t.Errorf("gateway node: %+v", n)
	}
}

// TestGraphBookinfoInsecure checks the edges of examples/bookinfo/insecure by
// hand. Nothing is denied: the NetworkPolicy allow-everything admits all
// ingress and egress, the mesh is PERMISSIVE, and the only ALLOW policy
// (ratings-allow) has the allow-all rule {}. What differs is the protection:
//   - details opts out of injection: every edge to it is plaintext, with no
//     policy enforced;
//   - productpage excludes 9080 from capture: every edge to productpage:9080
//     is plaintext and bypasses its sidecar (port 15000, the exposed Envoy
//     admin port, is captured: allowed by default);
//   - ratings' PeerAuthentication disables mTLS on 9080: auto mTLS sends
//     plaintext there, and ratings-allow admits it (allowed-plaintext);
//   - ratings runs as UID 1337: its own outbound traffic skips its sidecar,
//     so its edges are plaintext, like details' and outside's;
//   - reviews has no ALLOW policy: meshed callers (productpage, the
//     gateway) reach it over mTLS allowed by default, the others in plaintext.
func TestGraphBookinfoInsecure(t *testing.T) {
	g := compute(t, readDir(t, "../examples/bookinfo/insecure"), Options{})
	// 5 destination ports (productpage 9080 and 15000, reviews, ratings,
	// details 9080) x 5 sources.
	if len(g.Edges) != 25 {
		t.Fatalf("want 25 edges, got %d:\n%s", len(g.Edges), strings.Join(edgeLines(g), "\n"))
	}
	for _, e := range g.Edges {
		from, to := g.Nodes[e.From].ID, g.Nodes[e.To].ID
		var want Verdict
		switch {
		case to == details, to == productpage && e.Port == 9080, to == ratings:
			want = AllowedPlaintext
		case from == productpage, from == reviews, from == gateway:
			want = AllowedByDefault
		default: // details, ratings, outside: no identity on the wire
			want = AllowedPlaintext
		}
		if e.Verdict != want {
			t.Errorf("%s: want %s (%v)", edgeLine(g, e), want, e.Why.Reasons)
		}
	}
	for _, c := range []struct{ from, to, reason string }{
		{OutsideID, productpage, "port 9080 bypasses the destination's sidecar (traffic.sidecar.istio.io/excludeInboundPorts names port 9080)"},
		{productpage, details, "the destination has no sidecar and no ztunnel"},
		{productpage, ratings, "auto mTLS sends plaintext: the destination's mode on port 9080 is DISABLE (PeerAuthentication bookinfo/ratings-metrics, port level)"},
		{productpage, ratings, "AuthorizationPolicy bookinfo/ratings-allow allows"},
		{ratings, reviews, "the source sends plaintext (no mesh identity), which mode PERMISSIVE (PeerAuthentication istio-system/default, mesh level) accepts"},
		{productpage, reviews, "no ALLOW AuthorizationPolicy applies to the destination"},
	} {
		e := findEdge(t, g, c.from, c.to, 9080)
		if got := strings.Join(e.Why.Reasons, "; "); !strings.Contains(got, c.reason) {
			t.Errorf("%s: reasons %q lack %q", edgeLine(g, e), got, c.reason)
		}
	}
	if n := g.Nodes[g.NodeIndex(ratings)]; n.Identity != "" || len(n.Notes) == 0 || !strings.Contains(n.Notes[0], "UID 1337") {
		t.Errorf("ratings node: want no identity and the UID 1337 note, got %+v", n)
	}
}
