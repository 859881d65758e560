package reports

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	openreportsv1alpha1 "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/meshguard/meshguard/rules"
)

// Format is a report API.
type Format string

// The report formats.
const (
	// FormatOpenReports writes openreports.io/v1alpha1 Report and ClusterReport.
	FormatOpenReports Format = "openreports"
	// FormatWGPolicy writes wgpolicyk8s.io/v1alpha2 PolicyReport and
	// ClusterPolicyReport, for clusters that run Policy Reporter on them.
	FormatWGPolicy Format = "wgpolicyk8s"
)

// Formats lists every report format.
func Formats() []Format { return []Format{FormatOpenReports, FormatWGPolicy} }

// ParseFormat parses a format name, case-insensitively.
func ParseFormat(s string) (Format, error) {
	for _, f := range Formats() {
		if strings.EqualFold(string(f), strings.TrimSpace(s)) {
			return f, nil
		}
	}
	return "", fmt.Errorf("unknown report format %q (want openreports or wgpolicyk8s)", s)
}

// Names, labels and limits every report shares.
const (
	// Name is the name of every report meshguard writes: one per namespace
	// and one cluster-wide, so the name alone makes a report unique and a
	// restart finds what it wrote before.
	Name = "meshguard"
	// Source is the source of every report and result.
	Source = "meshguard"
	// LabelManagedBy marks the reports meshguard owns; the background audit
	// watches only reports with this label and value ManagedBy.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ManagedBy is LabelManagedBy's value.
	ManagedBy = "meshguard"
	// DefaultMaxResults bounds the results of one report (about 500 bytes
	// each, so a full report stays far below etcd's 1.5 MiB object limit).
	DefaultMaxResults = 1000
	// ResultFail is the result of every finding.
	ResultFail = "fail"
	// ResultError is the result of an object the rules could not be
	// evaluated on (malformed, or a rule failed on it): never left out.
	ResultError = "error"
	// PolicyEvaluationError is the policy of error results.
	PolicyEvaluationError = "meshguard-evaluation-error"
	// AnnotationCompliance holds a namespace report's compliance view
	// (Compliance, as JSON).
	AnnotationCompliance = "meshguard.io/compliance"
)

// Result properties.
const (
	// PropertyTitle is the rule's title.
	PropertyTitle = "title"
	// PropertyDetails is the finding's message: what is wrong, quoting the
	// offending items.
	PropertyDetails = "details"
)

// Kinds of each format, in the order namespaced, cluster-scoped.
var (
	OpenReportsGV = schema.GroupVersion{Group: "openreports.io", Version: "v1alpha1"}
	WGPolicyGV    = schema.GroupVersion{Group: "wgpolicyk8s.io", Version: "v1alpha2"}
)

// GVK returns the kind a format uses for a namespace's report (namespaced
// true) or the cluster report.
func (f Format) GVK(namespaced bool) schema.GroupVersionKind {
	switch {
	case f == FormatWGPolicy && namespaced:
		return WGPolicyGV.WithKind("PolicyReport")
	case f == FormatWGPolicy:
		return WGPolicyGV.WithKind("ClusterPolicyReport")
	case namespaced:
		return OpenReportsGV.WithKind("Report")
	}
	return OpenReportsGV.WithKind("ClusterReport")
}

// Resources returns the plural resource names of a format's two kinds
// (namespaced first), for RBAC and discovery.
func (f Format) Resources() (namespaced, cluster schema.GroupVersionResource) {
	if f == FormatWGPolicy {
		return WGPolicyGV.WithResource("policyreports"), WGPolicyGV.WithResource("clusterpolicyreports")
	}
	return OpenReportsGV.WithResource("reports"), OpenReportsGV.WithResource("clusterreports")
}

// Subject is the object a result is about.
type Subject struct {
	APIVersion string
	Kind       string
	Namespace  string
	Name       string
}

// Result is one finding in a report.
type Result struct {
	// Policy is the catalog policy's name (MESH0150-priv-net-admin); Rule its code.
	Policy, Rule string
	// Severity is critical, high, medium, low or info.
	Severity string
	// Message is the rule's fix.
	Message string
	Subject Subject
	// Properties are PropertyTitle and PropertyDetails.
	Properties map[string]string
	// Timestamp is when the result was first seen (seconds only).
	Timestamp metav1.Timestamp
	// Outcome is ResultFail ("" means fail) or ResultError.
	Outcome string
}

// outcome is the result value as the report APIs spell it.
func (r Result) outcome() string {
	if r.Outcome == "" {
		return ResultFail
	}
	return r.Outcome
}

// Compliance is a namespace's compliance view as the background audit
// computes it (the same resolution `meshguard audit --cluster` prints), kept
// on the namespace's report as the JSON annotation meshguard.io/compliance so
// that `meshguard status` answers from the reports alone.
type Compliance struct {
	// MeshMode is sidecar, ambient, none or unknown.
	MeshMode string `json:"meshMode"`
	// MTLS is the effective namespace-wide mTLS mode and the policy deciding it.
	MTLS rules.MTLSResolution `json:"mtls"`
	// Authz says whether authorization is default-deny and which policy decides.
	Authz rules.AuthzResolution `json:"authz"`
	// NetworkPolicies is the default-deny profile and how the managed
	// NetworkPolicies compare with it (complete, partial, missing, none, unknown).
	NetworkPolicies NetpolCompliance `json:"networkPolicies"`
	// Workloads counts the top-level workloads; Meshed those in the mesh.
	Workloads int `json:"workloads"`
	Meshed    int `json:"meshed"`
	// Quarantined are the workloads (Kind/name) carrying meshguard.io/quarantined.
	Quarantined []string `json:"quarantined,omitempty"`
}

// NetpolCompliance is the default-deny part of Compliance.
type NetpolCompliance struct {
	Profile string   `json:"profile"`
	Status  string   `json:"status"`
	Missing []string `json:"missing,omitempty"`
	// CutEdges are the edges the mesh allows that the managed policies cut
	// (in preview mode: would cut), "SOURCE -> DESTINATION:PORT", as the
	// default-deny controller derived them; absent when it does not run.
	CutEdges []string `json:"cutEdges,omitempty"`
	// CutEdgesTotal counts them all (CutEdges lists at most 100).
	CutEdgesTotal int `json:"cutEdgesTotal,omitempty"`
}

// key identifies a result regardless of its timestamp.
func (r Result) key() string {
	return strings.Join([]string{r.Subject.Kind, r.Subject.Namespace, r.Subject.Name, r.Subject.APIVersion,
		r.Rule, r.Properties[PropertyDetails], r.Policy, r.Severity, r.Message, r.Properties[PropertyTitle], r.outcome()}, "\x00")
}

// Report is the findings of one scope: a namespace, or the cluster-scoped
// objects (Namespace "").
type Report struct {
	// Namespace is the report's namespace; "" is the cluster report.
	Namespace string
	// Results are ordered by subject, code and details; at most MaxResults.
	Results []Result
	// Findings counts every finding of the scope (summary.fail), including
	// those beyond MaxResults.
	Findings int
	// MaxResults is the cap the results were built with.
	MaxResults int
	// Errors counts the error results (objects that could not be evaluated);
	// they are always kept, beside the findings.
	Errors int
	// Compliance is the namespace's compliance view (nil for the cluster
	// report, and for reports written by `audit -o openreports`).
	Compliance *Compliance
}

// AddError records an object the rules could not be evaluated on as an
// error result: a report never silently leaves an object out.
func (r *Report) AddError(subject Subject, message string, now metav1.Timestamp) {
	now.Nanos = 0
	r.Errors++
	r.Results = append(r.Results, Result{
		Policy: PolicyEvaluationError, Severity: "high", Message: "meshguard could not evaluate this object: " + message,
		Subject: subject, Properties: map[string]string{PropertyTitle: "Object could not be evaluated", PropertyDetails: message},
		Timestamp: now, Outcome: ResultError,
	})
	sort.SliceStable(r.Results, func(a, b int) bool { return resultLess(r.Results[a], r.Results[b]) })
}

// ScopeOf returns the report an object's findings go to: its namespace, the
// namespace itself for a Namespace, "" (the cluster report) for other
// cluster-scoped objects.
func ScopeOf(ref rules.ObjectRef) string {
	if ref.Namespace != "" {
		return ref.Namespace
	}
	if ref.Kind == "Namespace" && (ref.APIVersion == "v1" || ref.APIVersion == "") {
		return ref.Name
	}
	return ""
}

// severityName is a rules severity as the report APIs spell it.
func severityName(s rules.Severity) string { return strings.ToLower(s.String()) }

// Build is the report of one scope from its findings (every finding must
// belong to the scope: ScopeOf its object is scope). now stamps every result;
// KeepTimestamps carries older stamps over. maxResults <= 0 is DefaultMaxResults.
func Build(scope string, findings []rules.Finding, now metav1.Timestamp, maxResults int) Report {
	if maxResults <= 0 {
		maxResults = DefaultMaxResults
	}
	now.Nanos = 0
	rep := Report{Namespace: scope, Findings: len(findings), MaxResults: maxResults, Results: make([]Result, 0, min(len(findings), maxResults))}
	all := make([]Result, 0, len(findings))
	sev := make([]rules.Severity, 0, len(findings))
	for _, f := range findings {
		all = append(all, Result{
			Policy:     f.Code + "-" + f.Rule,
			Rule:       f.Code,
			Severity:   severityName(f.Severity),
			Message:    f.Remediation,
			Subject:    Subject{APIVersion: f.Object.APIVersion, Kind: f.Object.Kind, Namespace: f.Object.Namespace, Name: f.Object.Name},
			Properties: map[string]string{PropertyTitle: f.Title, PropertyDetails: f.Message},
			Timestamp:  now,
		})
		sev = append(sev, f.Severity)
	}
	idx := make([]int, len(all))
	for i := range idx {
		idx[i] = i
	}
	if len(all) > maxResults {
		// Keep the most severe; among equals, the first in result order.
		sort.SliceStable(idx, func(a, b int) bool {
			if sev[idx[a]] != sev[idx[b]] {
				return sev[idx[a]] > sev[idx[b]]
			}
			return resultLess(all[idx[a]], all[idx[b]])
		})
		idx = idx[:maxResults]
	}
	for _, i := range idx {
		rep.Results = append(rep.Results, all[i])
	}
	sort.SliceStable(rep.Results, func(a, b int) bool { return resultLess(rep.Results[a], rep.Results[b]) })
	return rep
}

func resultLess(a, b Result) bool { return a.key() < b.key() }

// BuildAll is the reports of a whole audit: one per namespace in namespaces
// and per namespace a finding belongs to, and the cluster report (always),
// ordered cluster report first, then by namespace.
func BuildAll(findings []rules.Finding, namespaces []string, now metav1.Timestamp, maxResults int) []Report {
	byScope := map[string][]rules.Finding{"": nil}
	for _, ns := range namespaces {
		if _, ok := byScope[ns]; !ok {
			byScope[ns] = nil
		}
	}
	for _, f := range findings {
		s := ScopeOf(f.Object)
		byScope[s] = append(byScope[s], f)
	}
	scopes := make([]string, 0, len(byScope))
	for s := range byScope {
		scopes = append(scopes, s)
	}
	sort.Strings(scopes)
	out := make([]Report, 0, len(scopes))
	for _, s := range scopes {
		out = append(out, Build(s, byScope[s], now, maxResults))
	}
	return out
}

// KeepTimestamps gives every result that old also holds old's timestamp, so
// an unchanged result keeps the time it was first seen and an unchanged
// report is equal to the stored one.
func (r *Report) KeepTimestamps(old Report) {
	seen := make(map[string]metav1.Timestamp, len(old.Results))
	for _, o := range old.Results {
		seen[o.key()] = o.Timestamp
	}
	for i := range r.Results {
		if ts, ok := seen[r.Results[i].key()]; ok {
			r.Results[i].Timestamp = ts
		}
	}
}

// Object renders the report in a format as an object ready to be written
// (apiVersion, kind, name, namespace and the managed-by label set).
func (r Report) Object(f Format) (*unstructured.Unstructured, error) {
	meta := metav1.ObjectMeta{Name: Name, Namespace: r.Namespace, Labels: map[string]string{LabelManagedBy: ManagedBy}}
	var obj any
	switch f {
	case FormatOpenReports:
		results := make([]openreportsv1alpha1.ReportResult, 0, len(r.Results))
		for _, x := range r.Results {
			results = append(results, openreportsv1alpha1.ReportResult{
				Source: Source, Policy: x.Policy, Rule: x.Rule, Severity: openreportsv1alpha1.ResultSeverity(x.Severity),
				Timestamp: x.Timestamp, Result: openreportsv1alpha1.Result(x.outcome()), Subjects: []corev1.ObjectReference{x.Subject.ref()},
				Description: x.Message, Properties: x.Properties,
			})
		}
		summary := openreportsv1alpha1.ReportSummary{Fail: r.Findings, Error: r.Errors}
		cfg := &openreportsv1alpha1.ReportConfiguration{Limits: openreportsv1alpha1.Limits{MaxResults: r.MaxResults}}
		if r.Namespace != "" {
			obj = &openreportsv1alpha1.Report{ObjectMeta: meta, Source: Source, Configuration: cfg, Summary: summary, Results: results}
		} else {
			obj = &openreportsv1alpha1.ClusterReport{ObjectMeta: meta, Source: Source, Configuration: cfg, Summary: summary, Results: results}
		}
	case FormatWGPolicy:
		results := make([]PolicyReportResult, 0, len(r.Results))
		for _, x := range r.Results {
			results = append(results, PolicyReportResult{
				Source: Source, Policy: x.Policy, Rule: x.Rule, Severity: x.Severity,
				Timestamp: x.Timestamp, Result: x.outcome(), Subjects: []corev1.ObjectReference{x.Subject.ref()},
				Description: x.Message, Properties: x.Properties,
			})
		}
		summary := PolicyReportSummary{Fail: r.Findings, Error: r.Errors}
		if r.Namespace != "" {
			obj = &PolicyReport{ObjectMeta: meta, Summary: summary, Results: results}
		} else {
			obj = &ClusterPolicyReport{ObjectMeta: meta, Summary: summary, Results: results}
		}
	default:
		return nil, fmt.Errorf("render report: unknown format %q", f)
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, fmt.Errorf("render report %s: %w", r.describe(), err)
	}
	u := &unstructured.Unstructured{Object: m}
	u.SetGroupVersionKind(f.GVK(r.Namespace != ""))
	if r.Compliance != nil {
		b, err := json.Marshal(r.Compliance)
		if err != nil {
			return nil, fmt.Errorf("render report %s: compliance: %w", r.describe(), err)
		}
		u.SetAnnotations(map[string]string{AnnotationCompliance: string(b)})
	}
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	return u, nil
}

func (s Subject) ref() corev1.ObjectReference {
	return corev1.ObjectReference{APIVersion: s.APIVersion, Kind: s.Kind, Namespace: s.Namespace, Name: s.Name}
}

func (r Report) describe() string {
	if r.Namespace == "" {
		return "cluster report"
	}
	return "report of namespace " + r.Namespace
}

// Parse reads a report object of either format back (for the timestamps of
// a stored report).
func Parse(u *unstructured.Unstructured) (Report, error) {
	rep := Report{Namespace: u.GetNamespace()}
	var results []PolicyReportResult
	var summary PolicyReportSummary
	// Both formats spell results and summary alike; read them through the
	// wgpolicyk8s types, which are this package's own.
	if raw, ok := u.Object["results"]; ok {
		if err := fromUnstructured(raw, &results); err != nil {
			return Report{}, fmt.Errorf("parse %s %s/%s: results: %w", u.GetKind(), u.GetNamespace(), u.GetName(), err)
		}
	}
	if raw, ok := u.Object["summary"]; ok {
		if err := fromUnstructured(raw, &summary); err != nil {
			return Report{}, fmt.Errorf("parse %s %s/%s: summary: %w", u.GetKind(), u.GetNamespace(), u.GetName(), err)
		}
	}
	rep.Findings, rep.Errors = summary.Fail, summary.Error
	if raw, ok := u.GetAnnotations()[AnnotationCompliance]; ok {
		var c Compliance
		if err := json.Unmarshal([]byte(raw), &c); err != nil {
			return Report{}, fmt.Errorf("parse %s %s/%s: annotation %s: %w", u.GetKind(), u.GetNamespace(), u.GetName(), AnnotationCompliance, err)
		}
		rep.Compliance = &c
	}
	if n, ok, _ := unstructured.NestedInt64(u.Object, "configuration", "limits", "maxResults"); ok {
		rep.MaxResults = int(n)
	}
	for _, x := range results {
		res := Result{Policy: x.Policy, Rule: x.Rule, Severity: x.Severity, Message: x.Description, Properties: x.Properties, Timestamp: x.Timestamp}
		if x.Result == ResultError {
			res.Outcome = ResultError
		}
		if len(x.Subjects) > 0 {
			s := x.Subjects[0]
			res.Subject = Subject{APIVersion: s.APIVersion, Kind: s.Kind, Namespace: s.Namespace, Name: s.Name}
		}
		rep.Results = append(rep.Results, res)
	}
	return rep, nil
}

func fromUnstructured(raw any, into any) error {
	b, err := json.Marshal(raw)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, into)
}

// contentFields are the fields of a report object meshguard writes (besides
// metadata): two objects with the same content need no write.
var contentFields = []string{"source", "scope", "scopeSelector", "configuration", "summary", "results"}

// SameContent reports whether a stored report object already holds what
// desired holds: the content fields, the compliance annotation and
// meshguard's label. Other labels, annotations and metadata are not compared.
func SameContent(desired, stored *unstructured.Unstructured) bool {
	if stored.GetLabels()[LabelManagedBy] != ManagedBy {
		return false
	}
	if desired.GetAnnotations()[AnnotationCompliance] != stored.GetAnnotations()[AnnotationCompliance] {
		return false
	}
	return bytes.Equal(content(desired), content(stored))
}

// content is the canonical JSON of an object's content fields (map keys
// sorted, numbers as written).
func content(u *unstructured.Unstructured) []byte {
	m := map[string]any{}
	for _, f := range contentFields {
		if v, ok := u.Object[f]; ok && v != nil {
			m[f] = v
		}
	}
	b, _ := json.Marshal(m)
	return b
}

// CopyContent sets stored's content fields and meshguard's label to
// desired's, keeping the rest of stored (resourceVersion, other labels).
func CopyContent(desired, stored *unstructured.Unstructured) {
	for _, f := range contentFields {
		if v, ok := desired.Object[f]; ok {
			stored.Object[f] = runtime.DeepCopyJSONValue(v)
		} else {
			delete(stored.Object, f)
		}
	}
	l := stored.GetLabels()
	if l == nil {
		l = map[string]string{}
	}
	l[LabelManagedBy] = ManagedBy
	stored.SetLabels(l)
	a := stored.GetAnnotations()
	if c, ok := desired.GetAnnotations()[AnnotationCompliance]; ok {
		if a == nil {
			a = map[string]string{}
		}
		a[AnnotationCompliance] = c
	} else {
		delete(a, AnnotationCompliance)
	}
	stored.SetAnnotations(a)
}
