package e2e_test

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/rules"
	"github.com/meshguard/meshguard/test/e2e/framework"
	"github.com/meshguard/meshguard/webhook/netpol"
)

// Namespaces of the NetworkPolicy preview tests, one per state of the
// managed set. Policies are applied with kubectl as the controller renders
// them (netpol.Config.Render), so the audit's comparison by name is checked
// against what the controller really creates.
const (
	npaComplete = "audit-np-complete" // sidecar, every policy of the set
	npaPartial  = "audit-np-partial"  // ambient, the default-deny and DNS only
	npaNoDeny   = "audit-np-nodeny"   // ambient, DNS only: no default-deny
	npaMissing  = "audit-np-missing"  // sidecar by revision, nothing
	npaGateway  = "audit-np-gateway"  // gateway by label, its lock-down
	npaOutside  = "audit-np-outside"  // outside the mesh, a stale managed policy
)

// npaManifests renders the namespaces and their managed NetworkPolicies.
func npaManifests(t *testing.T) string {
	t.Helper()
	cfg := netpol.NewConfig()
	var docs []string
	ns := func(name string, labels map[string]string) {
		b, err := yaml.Marshal(map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": name, "labels": labels}})
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, string(b))
	}
	policies := func(name string, p netpol.Profile, only ...string) {
		for _, np := range cfg.Render(name, p) {
			if len(only) > 0 && !slices.Contains(only, np.Name) {
				continue
			}
			b, err := yaml.Marshal(np)
			if err != nil {
				t.Fatal(err)
			}
			docs = append(docs, string(b))
		}
	}
	ns(npaComplete, map[string]string{"istio-injection": "enabled"})
	policies(npaComplete, netpol.ProfileSidecar)
	ns(npaPartial, map[string]string{framework.LabelDataplaneMode: "ambient"})
	policies(npaPartial, netpol.ProfileAmbient, netpol.NameDefaultDeny, netpol.NameAllowDNS)
	ns(npaNoDeny, map[string]string{framework.LabelDataplaneMode: "ambient"})
	policies(npaNoDeny, netpol.ProfileAmbient, netpol.NameAllowDNS)
	ns(npaMissing, map[string]string{"istio.io/rev": "1-24"})
	ns(npaGateway, map[string]string{netpol.LabelProfile: "gateway"})
	policies(npaGateway, netpol.ProfileGateway)
	ns(npaOutside, nil)
	policies(npaOutside, netpol.ProfileSidecar, netpol.NameDefaultDeny)
	return strings.Join(docs, "---\n")
}

func setupNetpolAudit(t *testing.T) *framework.Env {
	t.Helper()
	env := framework.Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := env.Apply(ctx, npaManifests(t))
	if err != nil {
		t.Fatalf("apply the NetworkPolicy preview fixtures: %v", err)
	}
	if !strings.Contains(res.Stdout, "networkpolicy.networking.k8s.io/"+netpol.NameGatewayLockdown) {
		t.Fatalf("kubectl apply did not report the gateway lock-down:\n%s", res)
	}
	return env
}

// npaWant is the expected preview of each namespace.
var npaWant = map[string]struct {
	profile, status  string
	missing, extra   []string
	unguardedFinding bool // MESH0217
}{
	npaComplete: {profile: "sidecar", status: rules.NetpolComplete},
	npaPartial: {profile: "ambient", status: rules.NetpolPartial,
		missing: []string{netpol.NameAllowMetrics, netpol.NameAllowHBONE, netpol.NameAllowWaypoint}},
	npaNoDeny: {profile: "ambient", status: rules.NetpolPartial, unguardedFinding: true,
		missing: []string{netpol.NameDefaultDeny, netpol.NameAllowMetrics, netpol.NameAllowHBONE, netpol.NameAllowWaypoint}},
	npaMissing: {profile: "sidecar", status: rules.NetpolMissing, unguardedFinding: true,
		missing: []string{netpol.NameDefaultDeny, netpol.NameAllowDNS, netpol.NameAllowMetrics, netpol.NameAllowIstiod}},
	npaGateway: {profile: "gateway", status: rules.NetpolComplete},
	npaOutside: {profile: "none", status: rules.NetpolNone, extra: []string{netpol.NameDefaultDeny}},
}

func checkNetpolSummary(t *testing.T, sums []audit.NamespaceSummary) {
	t.Helper()
	for name, want := range npaWant {
		s := nsSummary(t, sums, name)
		got := s.NetworkPolicies
		if got == nil {
			t.Errorf("%s: no NetworkPolicy preview in %+v", name, s)
			continue
		}
		if got.Profile != want.profile || got.Status != want.status {
			t.Errorf("%s: profile %q status %q, want %q %q (%+v)", name, got.Profile, got.Status, want.profile, want.status, got)
		}
		if !slices.Equal(got.Missing, append([]string{}, want.missing...)) || !slices.Equal(got.Extra, append([]string{}, want.extra...)) {
			t.Errorf("%s: missing %v extra %v, want %v %v", name, got.Missing, got.Extra, want.missing, want.extra)
		}
		// The expected set is what the controller renders, by name.
		if !slices.Equal(got.Expected, append([]string{}, netpol.Names(netpol.Profile(want.profile))...)) {
			t.Errorf("%s: expected set %v, want the rendered %v", name, got.Expected, netpol.Names(netpol.Profile(want.profile)))
		}
	}
	if ks := nsSummary(t, sums, "kube-system"); ks.NetworkPolicies == nil || ks.NetworkPolicies.Profile != "none" || ks.NetworkPolicies.Why != "excluded namespace" {
		t.Errorf("kube-system preview: %+v", ks.NetworkPolicies)
	}
}

// TestAuditClusterNetworkPolicies: the cluster audit reports, per namespace,
// the profile the default-deny controller would apply and how the managed
// NetworkPolicies compare with it (the controller's preview), and MESH0217
// for mesh namespaces without the managed default-deny.
func TestAuditClusterNetworkPolicies(t *testing.T) {
	env := setupNetpolAudit(t)
	rep := runAuditCluster(t, env)
	checkNetpolSummary(t, rep.Cluster.Namespaces)
	for name, want := range npaWant {
		f, got := findingsFor(rep, "cluster://Namespace/"+name)["MESH0217"]
		if got != want.unguardedFinding {
			t.Errorf("%s: MESH0217 %v, want %v (%+v)", name, got, want.unguardedFinding, f)
		}
		if got && (f.Severity != rules.SeverityMedium || !strings.Contains(f.Message, "missing "+strings.Join(want.missing, ", "))) {
			t.Errorf("%s: MESH0217 %s %q", name, f.Severity, f.Message)
		}
	}
}

// TestAuditClusterNetworkPoliciesCLI: the preview in every output format.
func TestAuditClusterNetworkPoliciesCLI(t *testing.T) {
	env := setupNetpolAudit(t)
	base := []string{"audit", "--cluster", "--kubeconfig", env.KubeconfigPath}

	t.Run("text", func(t *testing.T) {
		_, out, errOut := runCLI(t, base...)
		rows := map[string]string{}
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) > 0 && npaWant[f[0]].profile != "" {
				rows[f[0]] = l
			}
		}
		for ns, want := range map[string]string{
			npaComplete: " sidecar  complete (4/4) ",
			npaPartial:  " ambient  partial (2/5) ",
			npaNoDeny:   " ambient  partial (1/5) ",
			npaMissing:  " sidecar  missing (0/4) ",
			npaGateway:  " gateway  complete (1/1) ",
			npaOutside:  " none  1 not in profile ",
		} {
			if norm := func(s string) string { return " " + strings.Join(strings.Fields(s), " ") + " " }; !strings.Contains(norm(rows[ns]), norm(want)) {
				t.Errorf("namespace row of %s lacks %q: %q\nstdout:\n%s\nstderr:\n%s", ns, want, rows[ns], out, errOut)
			}
		}
		for _, want := range []string{
			"  NAMESPACE ",
			" NETPOL PROFILE ",
			"NetworkPolicy preview (what meshguard's controller would change in enforce mode, by name):\n",
			fmt.Sprintf("  %s: would create %s (profile sidecar: sidecar-injected namespace)\n", npaMissing, strings.Join(npaWant[npaMissing].missing, ", ")),
			fmt.Sprintf("  %s: would create %s (profile ambient: ambient namespace)\n", npaPartial, strings.Join(npaWant[npaPartial].missing, ", ")),
			fmt.Sprintf("  %s: would remove %s (profile none: namespace outside the mesh)\n", npaOutside, netpol.NameDefaultDeny),
			"cluster://Namespace/" + npaMissing + "\n  Medium    MESH0217 np-namespace-unguarded: ",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("text report lacks %q:\n%s", want, out)
			}
		}
		for _, quiet := range []string{"  " + npaComplete + ": would", "  " + npaGateway + ": would", "cluster://Namespace/" + npaComplete + "\n"} {
			if strings.Contains(out, quiet) {
				t.Errorf("text report has %q, but that namespace is complete:\n%s", quiet, out)
			}
		}
	})

	t.Run("json", func(t *testing.T) {
		_, out, _ := runCLI(t, append(base, "-o", "json")...)
		var doc audit.JSONReport
		if err := json.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatalf("json: %v\n%s", err, out)
		}
		if doc.Cluster == nil {
			t.Fatal("json report lacks the cluster summary")
		}
		checkNetpolSummary(t, doc.Cluster.Namespaces)
		if !strings.Contains(out, `"networkPolicies": {`) || !strings.Contains(out, `"status": "partial"`) {
			t.Errorf("json field names: want networkPolicies.status")
		}
	})

	t.Run("sarif properties", func(t *testing.T) {
		_, out, _ := runCLI(t, append(base, "-o", "sarif")...)
		var log struct {
			Runs []struct {
				Properties struct {
					Cluster audit.ClusterSummary `json:"cluster"`
				} `json:"properties"`
			} `json:"runs"`
		}
		if err := json.Unmarshal([]byte(out), &log); err != nil || len(log.Runs) != 1 {
			t.Fatalf("sarif: %v\n%s", err, out)
		}
		checkNetpolSummary(t, log.Runs[0].Properties.Cluster.Namespaces)
	})

	t.Run("junit", func(t *testing.T) {
		_, out, _ := runCLI(t, append(base, "-o", "junit")...)
		var doc struct {
			Suites []struct {
				Name      string `xml:"name,attr"`
				SystemOut string `xml:"system-out"`
			} `xml:"testsuite"`
		}
		if err := xml.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatalf("junit: %v\n%s", err, out)
		}
		var summary string
		for _, s := range doc.Suites {
			if s.Name == "cluster summary" {
				summary = s.SystemOut
			}
		}
		for _, want := range []string{
			"NETPOL PROFILE",
			fmt.Sprintf("  %s: would create %s (profile sidecar: sidecar-injected namespace)\n", npaMissing, strings.Join(npaWant[npaMissing].missing, ", ")),
		} {
			if !strings.Contains(summary, want) {
				t.Errorf("junit cluster summary lacks %q:\n%s", want, summary)
			}
		}
	})
}
