package netpol

import (
	"errors"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshguard/meshguard/internal/promreg"
)

// Metrics are the controller's Prometheus metrics.
type Metrics struct {
	// Namespaces counts the namespaces this replica manages, by profile and mode.
	Namespaces *prometheus.GaugeVec
	// Changes counts policies created, repaired (patched in place) and removed.
	Changes *prometheus.CounterVec
	// Preview is, per namespace, how many policies preview mode would create,
	// repair or remove (0 once nothing would change).
	Preview *prometheus.GaugeVec
	// GateRefusals counts Pod creations the pod gate refused.
	GateRefusals prometheus.Counter
	// Errors counts failed reconciles.
	Errors prometheus.Counter
	// CutEdges is, per namespace, how many edges the mesh allows that the
	// managed set cuts (the preview of enforce, or what enforce cuts).
	CutEdges *prometheus.GaugeVec
	// IntentErrors counts derivations of the intent that failed.
	IntentErrors prometheus.Counter
	// IntentDuration is how long a derivation of the intent takes.
	IntentDuration prometheus.Histogram
}

// NewMetrics creates the metrics, unregistered.
func NewMetrics() *Metrics {
	return &Metrics{
		Namespaces: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "meshguard_netpol_namespaces",
			Help: "Namespaces with a managed default-deny NetworkPolicy set, by profile and controller mode (enforce or preview).",
		}, []string{"profile", "mode"}),
		Changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshguard_netpol_changes_total",
			Help: "Managed NetworkPolicies created, repaired in place after drift, or removed because the profile no longer includes them.",
		}, []string{"action"}),
		Preview: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "meshguard_netpol_preview_pending",
			Help: "Preview mode: managed NetworkPolicies the controller would create, repair or remove, by namespace and action.",
		}, []string{"namespace", "action"}),
		GateRefusals: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshguard_netpol_pod_gate_refusals_total",
			Help: "Pod creations refused because the namespace's managed NetworkPolicies were not in place yet.",
		}),
		Errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshguard_netpol_reconcile_errors_total",
			Help: "Namespace reconciles that failed (they are retried with backoff).",
		}),
		CutEdges: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "meshguard_netpol_cut_edges",
			Help: "Edges the mesh allows (by its AuthorizationPolicies, or by default) that the managed NetworkPolicies cut, by namespace of either end: what enforce mode cuts, or in preview mode would cut.",
		}, []string{"namespace"}),
		IntentErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshguard_netpol_intent_errors_total",
			Help: "Derivations of the NetworkPolicies from the mesh's intent (routes, AuthorizationPolicies) that failed; the last derived set stays.",
		}),
		IntentDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "meshguard_netpol_intent_duration_seconds",
			Help:    "Time to derive the NetworkPolicies and the cut edges from the whole cluster's objects.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}),
	}
}

// Register adds the metrics to r. A collector that is already registered
// (another server in the same process, as in tests) is reused.
func (m *Metrics) Register(r prometheus.Registerer) error {
	return errors.Join(
		promreg.Into(r, &m.Namespaces),
		promreg.Into(r, &m.Changes),
		promreg.Into(r, &m.Preview),
		promreg.Into(r, &m.GateRefusals),
		promreg.Into(r, &m.Errors),
		promreg.Into(r, &m.CutEdges),
		promreg.Into(r, &m.IntentErrors),
		promreg.Into(r, &m.IntentDuration),
	)
}
