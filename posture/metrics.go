package posture

import (
	"errors"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshguard/meshguard/internal/promreg"
	"github.com/meshguard/meshguard/reports"
	"github.com/meshguard/meshguard/rules"
)

// Metrics are the background audit's Prometheus metrics.
type Metrics struct {
	// Writes counts report writes by kind, operation (create, update) and
	// result (ok, error).
	Writes *prometheus.CounterVec
	// Results is the number of findings in the reports, by severity.
	Results *prometheus.GaugeVec
	// Judgments counts scope judgments by result: written, unchanged,
	// context_error, write_error, skipped (a namespace gone or terminating).
	Judgments *prometheus.CounterVec
	// EvaluationErrors counts objects a rule could not be evaluated on (they
	// are left out of the report and logged).
	EvaluationErrors prometheus.Counter
	// LastResync is the Unix time the last full resync finished;
	// ResyncDuration how long it took, from enqueueing every scope to the last
	// of them judged.
	LastResync     prometheus.Gauge
	ResyncDuration prometheus.Gauge
	// ReportsAPI is 1 while the report kinds are served, 0 while their CRDs are
	// missing (nothing is written then).
	ReportsAPI prometheus.Gauge
	// QueueDepth is the number of scopes waiting in the workqueue.
	QueueDepth prometheus.Gauge

	// The compliance view per namespace (one series per namespace, never per
	// object): see publishNamespace.
	NamespaceMTLS        *prometheus.GaugeVec
	NamespaceAuthz       *prometheus.GaugeVec
	NamespaceNetpol      *prometheus.GaugeVec
	NamespaceWorkloads   *prometheus.GaugeVec
	NamespaceMeshed      *prometheus.GaugeVec
	NamespaceFindings    *prometheus.GaugeVec
	NamespaceQuarantined *prometheus.GaugeVec
}

// mtlsModes and netpolStates are the label values the compliance gauges
// publish one-hot, so that a dashboard can sum and filter by them.
var (
	mtlsModes    = []string{"STRICT", "PERMISSIVE", "DISABLE"}
	netpolStates = []string{"complete", "partial", "missing", "none", "unknown"}
)

// publishNamespace sets a namespace's compliance gauges from its judgment.
func (m *Metrics) publishNamespace(ns string, c *reports.Compliance, bySeverity map[string]int) {
	for _, s := range rules.Severities() {
		m.NamespaceFindings.WithLabelValues(ns, s.String()).Set(float64(bySeverity[s.String()]))
	}
	if c == nil {
		return
	}
	for _, mode := range mtlsModes {
		m.NamespaceMTLS.WithLabelValues(ns, mode).Set(boolGauge(c.MTLS.Mode == mode))
	}
	m.NamespaceAuthz.WithLabelValues(ns).Set(boolGauge(c.Authz.DefaultDeny))
	for _, st := range netpolStates {
		m.NamespaceNetpol.WithLabelValues(ns, st).Set(boolGauge(c.NetworkPolicies.Status == st))
	}
	m.NamespaceWorkloads.WithLabelValues(ns).Set(float64(c.Workloads))
	m.NamespaceMeshed.WithLabelValues(ns).Set(float64(c.Meshed))
	m.NamespaceQuarantined.WithLabelValues(ns).Set(float64(len(c.Quarantined)))
}

// forgetNamespace removes a namespace's series (the namespace is gone).
func (m *Metrics) forgetNamespace(ns string) {
	for _, v := range []*prometheus.GaugeVec{m.NamespaceMTLS, m.NamespaceAuthz, m.NamespaceNetpol, m.NamespaceWorkloads,
		m.NamespaceMeshed, m.NamespaceFindings, m.NamespaceQuarantined} {
		v.DeletePartialMatch(prometheus.Labels{"namespace": ns})
	}
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// NewMetrics creates the metrics, unregistered.
func NewMetrics() *Metrics {
	return &Metrics{
		Writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshguard_posture_report_writes_total",
			Help: "Report objects written by the background audit, by kind, operation (create, update) and result (ok, error).",
		}, []string{"kind", "operation", "result"}),
		Results: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "meshguard_posture_results",
			Help: "Findings of the background audit in the cluster's reports, by severity.",
		}, []string{"severity"}),
		Judgments: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshguard_posture_judgments_total",
			Help: "Scopes (a namespace, or the cluster-scoped objects) judged by the background audit, by result: written, unchanged, context_error, write_error, skipped.",
		}, []string{"result"}),
		EvaluationErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshguard_posture_evaluation_errors_total",
			Help: "Objects the background audit could not evaluate (left out of their report and logged).",
		}),
		LastResync: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meshguard_posture_last_full_resync_timestamp_seconds",
			Help: "Unix time the background audit's last full resync finished (every scope judged).",
		}),
		ResyncDuration: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meshguard_posture_full_resync_duration_seconds",
			Help: "How long the background audit's last full resync took, from enqueueing every scope to the last of them judged.",
		}),
		ReportsAPI: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meshguard_posture_reports_api_served",
			Help: "1 while the report kinds of --report-format are served by the API server, 0 while their CRDs are not installed.",
		}),
		QueueDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meshguard_posture_queue_depth",
			Help: "Scopes waiting in the background audit's workqueue (debounced ones count once due).",
		}),
		NamespaceMTLS: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "meshguard_namespace_mtls_mode",
			Help: "1 for a namespace's effective namespace-wide mTLS mode (STRICT, PERMISSIVE or DISABLE), 0 for the others.",
		}, []string{"namespace", "mode"}),
		NamespaceAuthz: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "meshguard_namespace_authz_default_deny",
			Help: "1 when a namespace's authorization is default-deny (a namespace-wide or mesh-wide policy refuses what nothing allows).",
		}, []string{"namespace"}),
		NamespaceNetpol: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "meshguard_namespace_netpol_status",
			Help: "1 for how a namespace's managed default-deny NetworkPolicies compare with its profile (complete, partial, missing, none, unknown), 0 for the others.",
		}, []string{"namespace", "status"}),
		NamespaceWorkloads: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "meshguard_namespace_workloads",
			Help: "Top-level workloads of a namespace (pod-template kinds and Pods no controller owns).",
		}, []string{"namespace"}),
		NamespaceMeshed: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "meshguard_namespace_workloads_meshed",
			Help: "Workloads of a namespace whose pods are in the mesh (sidecar or ambient).",
		}, []string{"namespace"}),
		NamespaceFindings: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "meshguard_namespace_findings",
			Help: "Findings of the background audit in a namespace's report, by severity.",
		}, []string{"namespace", "severity"}),
		NamespaceQuarantined: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "meshguard_namespace_quarantined_workloads",
			Help: "Workloads of a namespace labelled meshguard.io/quarantined.",
		}, []string{"namespace"}),
	}
}

// Register adds the metrics to r, reusing collectors already registered
// (another server in the same process, as in tests).
func (m *Metrics) Register(r prometheus.Registerer) error {
	return errors.Join(
		promreg.Into(r, &m.Writes),
		promreg.Into(r, &m.Results),
		promreg.Into(r, &m.Judgments),
		promreg.Into(r, &m.EvaluationErrors),
		promreg.Into(r, &m.LastResync),
		promreg.Into(r, &m.ResyncDuration),
		promreg.Into(r, &m.ReportsAPI),
		promreg.Into(r, &m.QueueDepth),
		promreg.Into(r, &m.NamespaceMTLS),
		promreg.Into(r, &m.NamespaceAuthz),
		promreg.Into(r, &m.NamespaceNetpol),
		promreg.Into(r, &m.NamespaceWorkloads),
		promreg.Into(r, &m.NamespaceMeshed),
		promreg.Into(r, &m.NamespaceFindings),
		promreg.Into(r, &m.NamespaceQuarantined),
	)
}
