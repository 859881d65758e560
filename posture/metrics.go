package posture

import (
	"errors"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshguard/meshguard/internal/promreg"
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
	)
}
