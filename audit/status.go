package audit

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/meshguard/meshguard/reports"
	"github.com/meshguard/meshguard/rules"
)

// StatusKind and StatusAPIVersion identify `meshguard status -o json`.
const (
	StatusKind       = "MeshguardStatus"
	StatusAPIVersion = "meshguard.io/v1alpha1"
)

// PostureStatus is the compliance view `meshguard status` builds from the reports
// the background audit wrote: one entry per namespace report and the
// cluster-scoped findings. It reads nothing but the reports.
type PostureStatus struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	// Format is the report format read (openreports or wgpolicyk8s).
	Format string `json:"format"`
	// Namespaces are ordered by name.
	Namespaces []NamespaceStatus `json:"namespaces"`
	// Cluster counts the findings on cluster-scoped objects (nil without a
	// cluster report).
	Cluster *ScopeFindings `json:"cluster,omitempty"`
	// Totals add up every report's findings by severity and errors.
	Totals ScopeFindings `json:"totals"`
}

// ScopeFindings counts a report's findings and error results.
type ScopeFindings struct {
	// Findings is every finding of the scope (the report's summary.fail);
	// BySeverity counts those the report lists (at most its maxResults).
	Findings   int            `json:"findings"`
	BySeverity map[string]int `json:"bySeverity,omitempty"`
	// Errors are objects the rules could not be evaluated on.
	Errors int `json:"errors"`
	// Truncated is true when the report lists fewer findings than it counts.
	Truncated bool `json:"truncated,omitempty"`
}

// NamespaceStatus is one namespace's compliance view.
type NamespaceStatus struct {
	Name string `json:"name"`
	// Compliance is nil when the report carries none (written by an older
	// meshguard, or by `audit -o openreports`).
	Compliance *reports.Compliance `json:"compliance,omitempty"`
	ScopeFindings
}

// BuildStatus builds the status from reports of one format.
func BuildStatus(format reports.Format, reps []reports.Report) *PostureStatus {
	st := &PostureStatus{APIVersion: StatusAPIVersion, Kind: StatusKind, Format: string(format), Namespaces: []NamespaceStatus{}}
	for _, r := range reps {
		sf := ScopeFindings{Findings: r.Findings, Errors: r.Errors}
		listed := 0
		for _, x := range r.Results {
			if x.Outcome == reports.ResultError {
				continue
			}
			listed++
			if sf.BySeverity == nil {
				sf.BySeverity = map[string]int{}
			}
			sf.BySeverity[severityTitle(x.Severity)]++
		}
		sf.Truncated = listed < r.Findings
		st.Totals.Findings += sf.Findings
		st.Totals.Errors += sf.Errors
		st.Totals.Truncated = st.Totals.Truncated || sf.Truncated
		for s, n := range sf.BySeverity {
			if st.Totals.BySeverity == nil {
				st.Totals.BySeverity = map[string]int{}
			}
			st.Totals.BySeverity[s] += n
		}
		if r.Namespace == "" {
			c := sf
			st.Cluster = &c
			continue
		}
		st.Namespaces = append(st.Namespaces, NamespaceStatus{Name: r.Namespace, Compliance: r.Compliance, ScopeFindings: sf})
	}
	sort.Slice(st.Namespaces, func(i, j int) bool { return st.Namespaces[i].Name < st.Namespaces[j].Name })
	return st
}

// severityTitle turns a report severity ("high") into the catalog's ("High").
func severityTitle(s string) string {
	for _, sev := range rules.Severities() {
		if strings.EqualFold(sev.String(), s) {
			return sev.String()
		}
	}
	return s
}

// HighestSeverity returns the most severe severity with a listed finding,
// and false when there is none.
func (s *PostureStatus) HighestSeverity() (rules.Severity, bool) {
	sevs := rules.Severities()
	for i := len(sevs) - 1; i >= 0; i-- {
		if s.Totals.BySeverity[sevs[i].String()] > 0 {
			return sevs[i], true
		}
	}
	return 0, false
}

// WriteStatus renders the status as text (a table per namespace) or JSON.
func WriteStatus(w io.Writer, st *PostureStatus, format string) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	case "text", "":
	default:
		return fmt.Errorf("-o/--output: unknown format %q (want text or json)", format)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tMESH\tMTLS\tAUTHZ\tMESHED\tNETPOLS\tQUARANTINED\tFINDINGS\tERRORS")
	for _, n := range st.Namespaces {
		mesh, mtls, authz, meshed, np, quarantined := "?", "?", "?", "?", "?", "-"
		if c := n.Compliance; c != nil {
			mesh, mtls, authz, meshed = c.MeshMode, mtlsText(c.MTLS), authzText(c.Authz), meshedText(c.Meshed, c.Workloads)
			np = c.NetworkPolicies.Status
			if c.NetworkPolicies.Profile != "" {
				np = c.NetworkPolicies.Profile + ": " + np
			}
			if len(c.Quarantined) > 0 {
				quarantined = strings.Join(c.Quarantined, ", ")
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", n.Name, mesh, mtls, authz, meshed, np, quarantined, findingsText(n.ScopeFindings), n.Errors)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, n := range st.Namespaces {
		if c := n.Compliance; c != nil && len(c.NetworkPolicies.CutEdges) > 0 {
			total := max(c.NetworkPolicies.CutEdgesTotal, len(c.NetworkPolicies.CutEdges))
			fmt.Fprintf(w, "%s: default deny cuts %d edges the mesh allows (SOURCE -> DESTINATION:PORT):\n", n.Name, total)
			for _, e := range c.NetworkPolicies.CutEdges {
				fmt.Fprintf(w, "  %s\n", e)
			}
			if more := total - len(c.NetworkPolicies.CutEdges); more > 0 {
				fmt.Fprintf(w, "  ... and %d more\n", more)
			}
		}
	}
	if st.Cluster != nil {
		fmt.Fprintf(w, "Cluster-scoped objects: %s findings, %d errors\n", findingsText(*st.Cluster), st.Cluster.Errors)
	}
	_, err := fmt.Fprintf(w, "%d namespaces; %s findings, %d errors (from the %s reports)\n", len(st.Namespaces), findingsText(st.Totals), st.Totals.Errors, st.Format)
	return err
}

func findingsText(sf ScopeFindings) string {
	t := severityCounts(sf.Findings, sf.BySeverity)
	if sf.Truncated {
		t += " (report truncated)"
	}
	return t
}
