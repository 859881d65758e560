package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/graph"
	"github.com/meshguard/meshguard/reports"
	"github.com/meshguard/meshguard/rules"
	"github.com/meshguard/meshguard/test/e2e/framework"
	"github.com/meshguard/meshguard/webhook"
	"github.com/meshguard/meshguard/webhook/netpol"
)

const intentTenant = "e2e-intent-tenant"

// The Bookinfo edges the mesh authorizes (examples/bookinfo/fixed: STRICT
// mTLS, allow-nothing, one ALLOW per service), and the three of them plain
// default deny cuts.
var (
	bookinfoGatewayEdge = "gateway:istio-ingress/istio-ingressgateway -> Deployment/bookinfo/productpage-v1:9080"
	bookinfoAppEdges    = []string{
		"Deployment/bookinfo/productpage-v1 -> Deployment/bookinfo/details-v1:9080",
		"Deployment/bookinfo/productpage-v1 -> Deployment/bookinfo/reviews-v1:9080",
		"Deployment/bookinfo/reviews-v1 -> Deployment/bookinfo/ratings-v1:9080",
	}
	bookinfoSidecarSet = []string{"mesh-allow-dns", "mesh-allow-istiod", "mesh-allow-metrics-scrape", "mesh-default-deny"}
	bookinfoFromAuthz  = []string{
		"mesh-allow-authz-from-productpage-v1", "mesh-allow-authz-from-reviews-v1",
		"mesh-allow-authz-to-details-v1", "mesh-allow-authz-to-ratings-v1", "mesh-allow-authz-to-reviews-v1",
		"mesh-allow-gateway-to-productpage",
	}
)

// withinBookinfo keeps the edges between Bookinfo's workloads (and its
// gateway): the shared control plane holds other tests' namespaces, whose
// workloads Bookinfo's may reach and whose edges are cut too.
func withinBookinfo(edges []string) []string {
	var out []string
	for _, e := range edges {
		src, dst, _ := strings.Cut(e, " -> ")
		inside := func(id string) bool {
			return strings.Contains(id, "/bookinfo/") || strings.HasPrefix(id, "gateway:istio-ingress/")
		}
		if inside(src) && inside(dst) {
			out = append(out, e)
		}
	}
	return out
}

// cutMetricMatches checks the cut-edge gauge against the controller's list.
func (s *npServer) cutMetricMatches(t *testing.T, ns string) {
	t.Helper()
	cut, total, ok := s.srv.NetworkPolicies.CutEdges(ns)
	if !ok {
		t.Errorf("CutEdges(%s): not derived", ns)
	}
	if total < len(cut) || (total <= netpol.MaxListedEdges && total != len(cut)) {
		t.Errorf("CutEdges(%s): %d listed, %d in all", ns, len(cut), total)
	}
	if got := s.metric(t, "meshguard_netpol_cut_edges", map[string]string{"namespace": ns}); got != float64(total) {
		t.Errorf("meshguard_netpol_cut_edges{namespace=%s} = %v, want %d (the controller's count)", ns, got, total)
	}
}

// auditClusterJSON runs `meshguard audit --cluster -o json` and decodes it.
func auditClusterJSON(t *testing.T, env *framework.Env, extra ...string) audit.Report {
	t.Helper()
	code, out, errOut := runCLI(t, append([]string{"audit", "--cluster", "--kubeconfig", env.KubeconfigPath, "-o", "json"}, extra...)...)
	if code != 0 && code != 1 {
		t.Fatalf("audit --cluster: exit %d\n%s", code, errOut)
	}
	var rep audit.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("audit --cluster -o json: %v", err)
	}
	return rep
}

// managedNames are the names of a namespace's managed policies (not a
// quarantine's), sorted.
func (s *npServer) managedNames(t *testing.T, ns string) []string {
	t.Helper()
	var out []string
	for n, np := range s.policies(t, ns) {
		if np.Labels[netpol.LabelManaged] == "true" && np.Labels[netpol.LabelQuarantine] == "" {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// waitForNames waits (bounded) until the namespace's managed policies are
// exactly want.
func (s *npServer) waitForNames(t *testing.T, ns string, want []string) {
	t.Helper()
	want = slices.Sorted(slices.Values(want))
	var got []string
	if !poll(60*time.Second, 200*time.Millisecond, func() bool {
		got = s.managedNames(t, ns)
		return slices.Equal(got, want)
	}) {
		t.Fatalf("namespace %s: managed policies %v, want %v (within 60s)\n%s", ns, got, want, tail(s.logPath, 20))
	}
}

// allowedEdgesWith computes the allowed-traffic graph of the Bookinfo
// manifests plus the cluster's managed policies in bookinfo, and returns
// the allowed edges that end in bookinfo.
func allowedEdgesWith(t *testing.T, env *framework.Env, s *npServer) []string {
	t.Helper()
	in, err := audit.Read([]string{env.Root + "/examples/bookinfo/fixed"}, nil)
	if err != nil || len(in.Errors) > 0 {
		t.Fatalf("read examples/bookinfo/fixed: %v %v", err, in.Errors)
	}
	var objs []rules.Object
	for _, d := range in.Documents {
		objs = append(objs, d.Object)
	}
	for _, np := range s.policies(t, "bookinfo") {
		np.APIVersion, np.Kind = "networking.k8s.io/v1", "NetworkPolicy"
		b, err := json.Marshal(np)
		if err != nil {
			t.Fatal(err)
		}
		var o rules.Object
		if err := json.Unmarshal(b, &o); err != nil {
			t.Fatal(err)
		}
		objs = append(objs, rules.JSONNumbers(o).(map[string]any))
	}
	cat, err := rules.DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	ev, err := rules.New(cat, rules.NewConfig())
	if err != nil {
		t.Fatal(err)
	}
	g, err := graph.Compute(objs, graph.Options{Engine: ev})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range g.Edges {
		if e.Verdict.Allowed() && g.Node(e.To).Namespace == "bookinfo" {
			out = append(out, fmt.Sprintf("%s -> %s:%d", g.Node(e.From).ID, g.Node(e.To).ID, e.Port))
		}
	}
	sort.Strings(out)
	return out
}

// TestIntentController runs the default-deny controller against the real
// API server over examples/bookinfo/fixed (its ingress Gateway and
// VirtualService, STRICT mTLS, allow-nothing and one ALLOW per service):
//
//   - in preview mode it names, in its Event and a gauge, the three
//     service-to-service edges enforcing would cut, and creates nothing;
//   - in enforce mode with the routes alone it creates
//     mesh-allow-gateway-to-productpage and warns (Event, gauge) that it cuts
//     the three edges;
//   - with --netpol-from-authz it manages exactly the policies under which
//     the graph of Bookinfo allows gateway -> productpage:9080, productpage ->
//     reviews and details, reviews -> ratings and nothing else; they follow
//     the AuthorizationPolicies and the routes (removed and restored); a
//     tenant who owns the namespace cannot widen or delete them (MESH0215).
func TestIntentController(t *testing.T) {
	env := framework.Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	files := bookinfoFiles(t, env)
	mustKubectl(t, ctx, env, joinManifests(files), "apply", "-f", "-")
	t.Cleanup(func() {
		// Leave Bookinfo whole and without managed policies for later tests.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		mustKubectl(t, ctx, env, joinManifests(files), "apply", "-f", "-")
		mustKubectl(t, ctx, env, "", "delete", "networkpolicy", "-n", "bookinfo", "-l", netpol.LabelManaged+"=true", "--ignore-not-found")
	})
	expectedCut := []string{}
	for _, e := range bookinfoAppEdges {
		expectedCut = append(expectedCut, e)
	}

	t.Run("preview names the edges enforcing would cut", func(t *testing.T) {
		s := startNetpolServer(t, env, netpol.ModePreview, "e2e-intent-preview")
		// The Event names the first edges (other tests' namespaces share the
		// control plane: their edges may come first); CutEdges has them all.
		ev := s.waitForEvent(t, "bookinfo", netpol.ReasonPreview, "would create mesh-default-deny", "mesh-allow-gateway-to-productpage;", "enforcing would cut", "Deployment/bookinfo/")
		t.Logf("event: %s", ev)
		s.cutMetricMatches(t, "bookinfo")
		if got := s.managedNames(t, "bookinfo"); len(got) != 0 {
			t.Errorf("preview created %v", got)
		}
		if cut, _, ok := s.srv.NetworkPolicies.CutEdges("bookinfo"); !ok || !slices.Equal(withinBookinfo(cut), expectedCut) {
			t.Errorf("CutEdges(bookinfo) = %v, %v; want, within Bookinfo, %v", cut, ok, expectedCut)
		}
	})

	t.Run("audit --cluster names the edges enforcing would cut", func(t *testing.T) {
		rep := auditClusterJSON(t, env)
		if rep.Cluster == nil || rep.Cluster.CutEdgesError != "" {
			t.Fatalf("no cut edges derived: %+v", rep.Cluster)
		}
		for _, n := range rep.Cluster.Namespaces {
			if n.Name == "bookinfo" {
				if !slices.Equal(withinBookinfo(n.CutEdges), expectedCut) {
					t.Errorf("audit --cluster: bookinfo cutEdges %v, want, within Bookinfo, %v", n.CutEdges, expectedCut)
				}
				return
			}
		}
		t.Error("audit --cluster lists no namespace bookinfo")
	})

	t.Run("enforce with the routes alone opens the gateway and warns about the rest", func(t *testing.T) {
		s := startNetpolServer(t, env, netpol.ModeEnforce, "e2e-intent-routes")
		s.waitForNames(t, "bookinfo", append(slices.Clone(bookinfoSidecarSet), "mesh-allow-gateway-to-productpage"))
		s.waitForEvent(t, "bookinfo", netpol.ReasonCutEdges, "default deny cuts", "edges the mesh allows (SOURCE -> DESTINATION:PORT): ")
		if cut, _, _ := s.srv.NetworkPolicies.CutEdges("bookinfo"); !slices.Equal(withinBookinfo(cut), expectedCut) {
			t.Errorf("CutEdges(bookinfo) within Bookinfo = %v, want %v", withinBookinfo(cut), expectedCut)
		}
		s.cutMetricMatches(t, "bookinfo")
		if got, want := allowedEdgesWith(t, env, s), []string{bookinfoGatewayEdge}; !slices.Equal(got, want) {
			t.Errorf("allowed edges into bookinfo under the managed policies:\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
		}
	})

	t.Run("from AuthorizationPolicies", func(t *testing.T) {
		s := startNetpolServerWithPolicy(t, env, netpol.ModeEnforce, "e2e-intent-authz", "mode: enforce\nadmins:\n  groups: [\"system:masters\"]\n",
			func(c *netpol.Config) { c.FromAuthz = true })
		want := append(slices.Clone(bookinfoSidecarSet), bookinfoFromAuthz...)
		s.waitForNames(t, "bookinfo", want)
		all := append([]string{bookinfoGatewayEdge}, bookinfoAppEdges...)
		sort.Strings(all)
		if got := allowedEdgesWith(t, env, s); !slices.Equal(got, all) {
			t.Errorf("allowed edges into bookinfo under the managed policies:\n  %s\nwant exactly\n  %s", strings.Join(got, "\n  "), strings.Join(all, "\n  "))
		}
		s.cutMetricMatches(t, "bookinfo")
		if cut, _, _ := s.srv.NetworkPolicies.CutEdges("bookinfo"); len(withinBookinfo(cut)) > 0 {
			t.Errorf("with --netpol-from-authz, edges within Bookinfo are still cut: %v", withinBookinfo(cut))
		}
		// The same rules judge meshguard's own policies in the cluster:
		// MESH0210-MESH0214 never fire on them.
		rep := auditClusterJSON(t, env, "--netpol-from-authz")
		for _, n := range rep.Cluster.Namespaces {
			if n.Name == "bookinfo" && len(withinBookinfo(n.CutEdges)) > 0 {
				t.Errorf("audit --cluster --netpol-from-authz: bookinfo edges still cut: %v", withinBookinfo(n.CutEdges))
			}
		}
		judged := 0
		for _, f := range rep.Findings {
			if f.Object.Kind == "NetworkPolicy" && f.Object.Namespace == "bookinfo" && f.Code >= "MESH0210" && f.Code <= "MESH0214" {
				t.Errorf("%s fires on %s: %s", f.Code, f.Object, f.Message)
			}
		}
		for _, l := range rep.Cluster.Listed {
			if l.Kind == "NetworkPolicy" {
				judged = l.Objects
			}
		}
		if judged < len(want) {
			t.Errorf("audit --cluster judged %d NetworkPolicies, want at least bookinfo's %d", judged, len(want))
		}

		// They follow the AuthorizationPolicies and the routes.
		mustKubectl(t, ctx, env, "", "delete", "authorizationpolicy", "ratings-from-reviews", "-n", "bookinfo")
		s.waitForNames(t, "bookinfo", slices.DeleteFunc(slices.Clone(want), func(n string) bool {
			return n == "mesh-allow-authz-to-ratings-v1" || n == "mesh-allow-authz-from-reviews-v1"
		}))
		mustKubectl(t, ctx, env, files["40-ratings.yaml"], "apply", "-f", "-")
		s.waitForNames(t, "bookinfo", want)
		mustKubectl(t, ctx, env, "", "delete", "virtualservice", "bookinfo", "-n", "bookinfo")
		s.waitForNames(t, "bookinfo", slices.DeleteFunc(slices.Clone(want), func(n string) bool { return n == "mesh-allow-gateway-to-productpage" }))
		mustKubectl(t, ctx, env, files["70-gateway.yaml"], "apply", "-f", "-")
		s.waitForNames(t, "bookinfo", want)

		// A tenant who owns the namespace cannot widen or remove them.
		mustKubectl(t, ctx, env, fmt.Sprintf(quarantineTenantRBAC, "bookinfo", intentTenant), "apply", "-f", "-")
		s.register(t, env, "bookinfo")
		as := "--as=" + intentTenant
		for _, tc := range []struct {
			name string
			args []string
		}{
			{"widen", []string{"patch", "networkpolicy", "mesh-allow-authz-to-reviews-v1", "-n", "bookinfo", as, "--type=json", "-p", `[{"op":"add","path":"/spec/ingress/-","value":{}}]`}},
			{"widen the gateway allow", []string{"patch", "networkpolicy", "mesh-allow-gateway-to-productpage", "-n", "bookinfo", as, "--type=json", "-p", `[{"op":"remove","path":"/spec/ingress/0/from"}]`}},
			{"delete", []string{"delete", "networkpolicy", "mesh-allow-authz-from-productpage-v1", "-n", "bookinfo", as}},
		} {
			res := kubectl(t, ctx, env, "", tc.args...)
			if res.ExitCode == 0 || !strings.Contains(res.Stderr, "MESH0215") {
				t.Errorf("tenant %s: want a MESH0215 denial, got:\n%s", tc.name, res)
			}
		}
		s.waitForNames(t, "bookinfo", want)
	})
}

// TestIntentStatus: with the background audit and the default-deny
// controller (preview) in one serve, `meshguard status` shows, from the
// reports alone, the edges enforcing would cut in bookinfo, and drops them
// once --netpol-from-authz derives the allows (a second serve).
func TestIntentStatus(t *testing.T) {
	env := framework.Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	files := bookinfoFiles(t, env)
	mustKubectl(t, ctx, env, joinManifests(files), "apply", "-f", "-")
	status := func() (reports.NetpolCompliance, bool) {
		code, out, errOut := runCLI(t, "status", "--kubeconfig", env.KubeconfigPath, "-n", "bookinfo", "-o", "json")
		if code != 0 && code != 1 {
			t.Logf("status: exit %d: %s", code, errOut)
			return reports.NetpolCompliance{}, false
		}
		var st audit.PostureStatus
		if err := json.Unmarshal([]byte(out), &st); err != nil || len(st.Namespaces) != 1 || st.Namespaces[0].Compliance == nil {
			return reports.NetpolCompliance{}, false
		}
		return st.Namespaces[0].Compliance.NetworkPolicies, true
	}
	for _, tc := range []struct {
		name      string
		fromAuthz bool
		want      []string
	}{
		{"preview with the routes alone", false, bookinfoAppEdges},
		{"preview with --netpol-from-authz", true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startPostureServer(t, env, reports.FormatOpenReports, "e2e-intent-status-"+fmt.Sprint(tc.fromAuthz), time.Hour, func(o *webhook.Options) {
				nc := netpol.NewConfig()
				nc.Mode = netpol.ModePreview
				nc.IntentMinInterval = time.Second
				nc.FromAuthz = tc.fromAuthz
				o.NetworkPolicies = nc
			})
			// Derived (the controller answers), then the report follows.
			if !poll(60*time.Second, 100*time.Millisecond, func() bool {
				_, _, ok := s.srv.NetworkPolicies.CutEdges("bookinfo")
				return ok
			}) {
				t.Fatal("the controller did not derive the intent within 60s")
			}
			var got reports.NetpolCompliance
			if !poll(60*time.Second, 250*time.Millisecond, func() bool {
				var ok bool
				got, ok = status()
				return ok && got.Profile == "sidecar" && slices.Equal(withinBookinfo(got.CutEdges), tc.want)
			}) {
				t.Fatalf("status of bookinfo: networkPolicies %+v, want cutEdges %v", got, tc.want)
			}
		})
	}
}
