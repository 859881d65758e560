package webhook

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshguard/meshguard/internal/promreg"
)

// Metrics are the webhook's Prometheus metrics. Register them once with
// Register (the server registers them on controller-runtime's registry).
type Metrics struct {
	Requests    *prometheus.CounterVec
	Duration    *prometheus.HistogramVec
	Findings    *prometheus.CounterVec
	Expired     *prometheus.CounterVec
	CacheSynced prometheus.Gauge
	// ContextErrors counts failed reads of the context the rules need, by
	// kind (Namespace, PeerAuthentication, ..., discovery for the Istio API
	// discovery, and the informers' list and watch failures).
	ContextErrors *prometheus.CounterVec
	// IstioAPI is 1 while the Istio security API (PeerAuthentication and
	// AuthorizationPolicy) is served and its caches are read, 0 otherwise.
	IstioAPI prometheus.Gauge
	// CustomRules counts the custom rules (--rules-dir) by state: loaded, or
	// failed (left out; the log names the file and field).
	CustomRules *prometheus.GaugeVec
	// Events counts admission Events recorded, by reason; EventsDropped
	// those dropped, by why (queue_full, rate_limited).
	Events        *prometheus.CounterVec
	EventsDropped *prometheus.CounterVec
}

// NewMetrics creates the metrics, unregistered.
func NewMetrics() *Metrics {
	return &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshguard_admission_requests_total",
			Help: "Admission requests decided, by kind, operation, decision (allow, warn, deny, error), mode and dry run.",
		}, []string{"kind", "operation", "decision", "mode", "dry_run"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "meshguard_admission_duration_seconds",
			Help:    "Time to decide an admission request, from decoding to response, by kind and operation.",
			Buckets: []float64{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25},
		}, []string{"kind", "operation"}),
		Findings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshguard_findings_total",
			Help: "Findings at admission, by rule code and action (deny, warn, audit, exempt).",
		}, []string{"code", "action"}),
		Expired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshguard_exemption_expired_total",
			Help: "Findings that an expired exemption would have covered, by exemption.",
		}, []string{"exemption"}),
		CacheSynced: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meshguard_cache_synced",
			Help: "1 while every context cache (namespaces, pods, services, webhook configurations and, when the Istio security API is served, PeerAuthentications and AuthorizationPolicies) has synced.",
		}),
		ContextErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshguard_context_errors_total",
			Help: "Failed reads of the context the rules need, by kind (a cached kind, discovery for the Istio API discovery); a request whose rules needed the failed read is answered with an error.",
		}, []string{"kind"}),
		CustomRules: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "meshguard_custom_rules",
			Help: "Custom rules from --rules-dir by state: loaded, or failed to load (left out; the log names the file and field).",
		}, []string{"state"}),
		Events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshguard_admission_events_total",
			Help: "Kubernetes Events recorded for admission decisions (--admission-events), by reason (MeshguardDenied, MeshguardWarned).",
		}, []string{"reason"}),
		EventsDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshguard_admission_events_dropped_total",
			Help: "Admission Events not recorded, by why: queue_full (more decisions than the queue holds) or rate_limited (above 10 a second, bursts of 50).",
		}, []string{"why"}),
		IstioAPI: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meshguard_istio_security_api_served",
			Help: "1 while the Istio security API (PeerAuthentication, AuthorizationPolicy) is served and its caches are read; 0 when it is not installed or not known yet.",
		}),
	}
}

// Register adds the metrics to a registerer. A metric that is already
// registered there (a second server in the same process, as the e2e tests
// start) is reused, so both servers count into the same series.
func (m *Metrics) Register(r prometheus.Registerer) error {
	return errors.Join(
		promreg.Into(r, &m.Requests),
		promreg.Into(r, &m.Duration),
		promreg.Into(r, &m.Findings),
		promreg.Into(r, &m.Expired),
		promreg.Into(r, &m.CacheSynced),
		promreg.Into(r, &m.CustomRules),
		promreg.Into(r, &m.Events),
		promreg.Into(r, &m.EventsDropped),
		promreg.Into(r, &m.ContextErrors),
		promreg.Into(r, &m.IstioAPI),
	)
}
