package audit

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/meshguard/meshguard/rules"
)

// WriteText renders the report for a terminal: findings grouped by object
// ("file:line Kind/namespace/name", or "cluster://Kind/namespace/name" for a
// cluster audit, then per finding its severity, code, rule,
// message, why it matters and the fix), the input errors with file, document and line, the summary
// and a verdict. A cluster audit adds the per-namespace summary and the kinds
// the cluster does not serve before the summary line.
func WriteText(w io.Writer, rep *Report, opts WriteOptions) error {
	opts = opts.withDefaults()
	bw := bufio.NewWriter(w)
	var prev *Located
	for i := range rep.Findings {
		f := &rep.Findings[i]
		if prev == nil || prev.File != f.File || prev.Index != f.Index || prev.Line != f.Line || prev.Object != f.Object {
			if prev != nil {
				fmt.Fprintln(bw)
			}
			if isClusterLocation(f.File) {
				fmt.Fprintf(bw, "%s\n", f.File)
			} else {
				fmt.Fprintf(bw, "%s:%d: %s\n", displayFile(f.File), f.Line, f.Object)
			}
		}
		prev = f
		fmt.Fprintf(bw, "  %-8s  %s %s: %s\n", f.Severity, f.Code, f.Rule, f.Message)
		fmt.Fprintf(bw, "  %-8s  why: %s\n", "", f.Why)
		fmt.Fprintf(bw, "  %-8s  fix: %s\n", "", f.Remediation)
	}
	if len(rep.Findings) > 0 {
		fmt.Fprintln(bw)
	}
	if len(rep.Errors) > 0 {
		fmt.Fprintln(bw, "Errors (these documents were not audited):")
		for _, e := range rep.Errors {
			fmt.Fprintf(bw, "  %s\n", e.Error())
		}
		fmt.Fprintln(bw)
	}
	if len(rep.Ignored) > 0 {
		fmt.Fprintln(bw, "Ignored (not Kubernetes objects: no kind):")
		for _, e := range rep.Ignored {
			fmt.Fprintf(bw, "  %s\n", e.Location())
		}
		fmt.Fprintln(bw)
	}
	if rep.Cluster != nil {
		writeClusterSummary(bw, rep.Cluster)
		fmt.Fprintln(bw)
	}
	s := rep.Summarize(opts.FailOn)
	fmt.Fprintln(bw, s.String())
	switch s.ExitCode {
	case ExitError:
		fmt.Fprintf(bw, "ERROR: %s could not be audited\n", plural(s.Errors, "document"))
	case ExitFindings:
		fmt.Fprintf(bw, "FAIL: %s at or above %s\n", plural(s.Failing, "finding"), s.FailOn)
	default:
		fmt.Fprintf(bw, "PASS: no finding at or above %s\n", s.FailOn)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write text report: %w", err)
	}
	return nil
}

// writeClusterSummary renders a cluster audit's namespaces as a table (mesh
// mode, effective mTLS and the policy deciding it, the default-deny
// NetworkPolicy profile and the state of its managed set, objects, findings
// by severity), the controller's preview (which managed policies it would
// create or remove, by name) and the kinds that were listed and not served.
func writeClusterSummary(w io.Writer, c *ClusterSummary) {
	fmt.Fprintln(w, "Namespaces:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  NAMESPACE\tMESH\tMTLS\tAUTHZ\tMESHED\tNETPOL PROFILE\tMANAGED NETPOLS\tOBJECTS\tFINDINGS")
	for _, n := range c.Namespaces {
		profile, state := netpolColumns(n.NetworkPolicies)
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", n.Name, n.MeshMode, mtlsText(n.MTLS), authzText(n.Authz), meshedText(n.Meshed, n.Workloads), profile, state, n.Objects, severityCounts(n.Findings, n.BySeverity))
	}
	_ = tw.Flush()
	writeNetpolPreview(w, c.Namespaces)
	writeCutEdges(w, c)
	var listed []string
	for _, k := range c.Listed {
		if k.ContextOnly {
			continue
		}
		listed = append(listed, fmt.Sprintf("%s %s (%d)", schema.GroupVersion{Group: k.Group, Version: k.Version}, k.Kind, k.Objects))
	}
	fmt.Fprintf(w, "Listed: %s\n", strings.Join(listed, ", "))
	if c.IstioVersions != "" {
		fmt.Fprintf(w, "Istio releases detected (per injector revision): %s\n", c.IstioVersions)
	}
	if len(c.ViaOwner) > 0 {
		var via []string
		for _, k := range sortedKeys(c.ViaOwner) {
			via = append(via, fmt.Sprintf("%d %s", c.ViaOwner[k], k))
		}
		fmt.Fprintf(w, "Judged through their controller's pod template (Deployment, CronJob): %s\n", strings.Join(via, ", "))
	}
	if len(c.Unavailable) > 0 {
		fmt.Fprintln(w, "Not served by the cluster (not audited):")
		for _, u := range c.Unavailable {
			fmt.Fprintf(w, "  %s: %s\n", u, u.Reason)
		}
	}
}

// netpolColumns renders a namespace's profile and the state of its managed
// set: "complete (4/4)", "partial (3/4)", "missing (0/5)", "-" for a profile
// without policies, "unknown" when NetworkPolicies could not be listed.
func netpolColumns(np *rules.NetpolState) (string, string) {
	if np == nil {
		return "-", "-"
	}
	switch np.Status {
	case rules.NetpolUnknown:
		return np.Profile, "unknown"
	case rules.NetpolNone:
		if len(np.Extra) > 0 {
			return np.Profile, fmt.Sprintf("%d not in profile", len(np.Extra))
		}
		return np.Profile, "-"
	}
	return np.Profile, fmt.Sprintf("%s (%d/%d)", np.Status, len(np.Expected)-len(np.Missing), len(np.Expected))
}

// writeNetpolPreview lists, per namespace whose managed set differs from its
// profile's, what meshguard's controller would create or remove in enforce
// mode (by name; drift inside a policy is not compared).
func writeNetpolPreview(w io.Writer, nss []NamespaceSummary) {
	var lines []string
	unknown := false
	for _, n := range nss {
		np := n.NetworkPolicies
		if np == nil {
			continue
		}
		if np.Status == rules.NetpolUnknown {
			unknown = true
			continue
		}
		var parts []string
		if len(np.Missing) > 0 {
			parts = append(parts, "would create "+strings.Join(np.Missing, ", "))
		}
		if len(np.Extra) > 0 {
			parts = append(parts, "would remove "+strings.Join(np.Extra, ", "))
		}
		if len(parts) > 0 {
			lines = append(lines, fmt.Sprintf("  %s: %s (profile %s: %s)", n.Name, strings.Join(parts, "; "), np.Profile, np.Why))
		}
	}
	if len(lines) > 0 {
		fmt.Fprintln(w, "NetworkPolicy preview (what meshguard's controller would change in enforce mode, by name):")
		for _, l := range lines {
			fmt.Fprintln(w, l)
		}
	}
	if unknown {
		fmt.Fprintln(w, "NetworkPolicies were not listed: the managed default-deny sets are unknown.")
	}
}

// mtlsText renders "PERMISSIVE (mesh: istio-system/default)" or "PERMISSIVE (default)".
func mtlsText(m rules.MTLSResolution) string {
	if m.Source == "" {
		return m.Mode + " (" + m.Level + ")"
	}
	return fmt.Sprintf("%s (%s: %s)", m.Mode, m.Level, m.Source)
}

// severityCounts renders "3 (1 Critical, 2 High)", or "0".
func severityCounts(total int, by map[string]int) string {
	if total == 0 {
		return "0"
	}
	var parts []string
	sevs := rules.Severities()
	for i := len(sevs) - 1; i >= 0; i-- {
		if n := by[sevs[i].String()]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, sevs[i]))
		}
	}
	return fmt.Sprintf("%d (%s)", total, strings.Join(parts, ", "))
}

// authzText renders a namespace's authorization: "default-deny (ns/name)",
// "open (ns/name allows all)" or "open (no policy)".
func authzText(a rules.AuthzResolution) string {
	switch {
	case a.DefaultDeny:
		return "default-deny (" + a.Source + ")"
	case a.Source != "":
		return "open (" + a.Source + " allows all)"
	}
	return "open (no policy)"
}

// meshedText renders the share of meshed workloads: "3/4", or "-" without
// workloads.
func meshedText(meshed, total int) string {
	if total == 0 {
		return "-"
	}
	return fmt.Sprintf("%d/%d", meshed, total)
}

// writeCutEdges lists, per namespace, the edges the mesh allows today that
// enforcing default deny would cut.
func writeCutEdges(w io.Writer, c *ClusterSummary) {
	if c.CutEdgesError != "" {
		fmt.Fprintf(w, "The edges enforcing default deny would cut could not be derived: %s\n", c.CutEdgesError)
		return
	}
	header := false
	for _, n := range c.Namespaces {
		if len(n.CutEdges) == 0 {
			continue
		}
		if !header {
			fmt.Fprintln(w, "Enforcing default deny would cut these edges the mesh allows today (SOURCE -> DESTINATION:PORT; allow them with an AuthorizationPolicy and --netpol-from-authz, or a Gateway route):")
			header = true
		}
		for _, e := range n.CutEdges {
			fmt.Fprintf(w, "  %s: %s\n", n.Name, e)
		}
		if more := n.CutEdgesTotal - len(n.CutEdges); more > 0 {
			fmt.Fprintf(w, "  %s: ... and %d more\n", n.Name, more)
		}
	}
}
