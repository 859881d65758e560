package reports

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The wgpolicyk8s.io/v1alpha2 types, written here: the module that defined
// them (sigs.k8s.io/wg-policy-prototypes) is not served by the Go module proxy,
// and Kyverno's copy drags in all of Kyverno. Only the fields meshguard
// writes or reads are declared; the JSON names are the API's. They are
// rendered through the unstructured converter, so they need no deep-copy or
// scheme registration. The CRDs used in tests and by the chart are in
// testdata/crds and charts/meshguard/crds.

// PolicyReport is a namespace's wgpolicyk8s.io/v1alpha2 report.
type PolicyReport struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	// Scope is the object the report is about; nil for a namespace's report.
	Scope   *corev1.ObjectReference `json:"scope,omitempty"`
	Summary PolicyReportSummary     `json:"summary"`
	Results []PolicyReportResult    `json:"results,omitempty"`
}

// ClusterPolicyReport is the cluster-scoped wgpolicyk8s.io/v1alpha2 report.
type ClusterPolicyReport struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Scope             *corev1.ObjectReference `json:"scope,omitempty"`
	Summary           PolicyReportSummary     `json:"summary"`
	Results           []PolicyReportResult    `json:"results,omitempty"`
}

// PolicyReportSummary counts results by outcome.
type PolicyReportSummary struct {
	Pass  int `json:"pass"`
	Fail  int `json:"fail"`
	Warn  int `json:"warn"`
	Error int `json:"error"`
	Skip  int `json:"skip"`
}

// PolicyReportResult is one result. Subjects is spelled "resources" and
// Description "message" in the API.
type PolicyReportResult struct {
	Source      string                   `json:"source,omitempty"`
	Policy      string                   `json:"policy"`
	Rule        string                   `json:"rule,omitempty"`
	Category    string                   `json:"category,omitempty"`
	Severity    string                   `json:"severity,omitempty"`
	Timestamp   metav1.Timestamp         `json:"timestamp"`
	Result      string                   `json:"result,omitempty"`
	Scored      bool                     `json:"scored,omitempty"`
	Subjects    []corev1.ObjectReference `json:"resources,omitempty"`
	Description string                   `json:"message,omitempty"`
	Properties  map[string]string        `json:"properties,omitempty"`
}
