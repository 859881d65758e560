package webhook

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/meshguard/meshguard/internal/promreg"
)

// Memory bounds of the validating webhook (issue 10). What arrives on the
// HTTPS port is untrusted until it has been read and decoded: anyone who can
// reach the port can send reviews, so the memory they may cost is bounded by
// the bytes of reviews in flight, not by who sends them.
const (
	// HeapPerReviewByte is the measured peak live heap of a decision per byte
	// of AdmissionReview body, rounded up: 19.0x for a 5.6 MB UPDATE review of
	// a Deployment with 17,500 containers, every one with findings, and 20.1x
	// for the same with 5,000 containers (15.4-17.7x before the identity facts
	// of MESH0143/MESH0144, four more per container; the body, the decoded
	// maps of object and oldObject, about 5.5x; the workload facts of one
	// object; rule evaluation; the findings). TestHeapPerReviewByte measures
	// it. JSON that decodes to more than decodeHeapPerByte per byte (dense
	// empty objects) holds more budget as it is decoded.
	HeapPerReviewByte = 22

	// MinInflightBytes is the smallest in-flight budget: one review of the
	// largest size the webhook accepts must fit besides the reserve (a
	// quarter) kept for small reviews.
	MinInflightBytes = 10 << 20

	// DefaultInflightBytes is the budget when no memory limit is known (no
	// cgroup limit and no GOMEMLIMIT): 32 MiB of reviews, about 640 MiB of
	// heap at HeapPerReviewByte.
	DefaultInflightBytes = 32 << 20

	// SmallReviewBytes is the size up to which a review may use the budget's
	// reserve (SmallReserve): the reviews of ordinary objects (a 7 KB Pod, a
	// Deployment, an Istio policy) still get decisions while large reviews
	// hold the rest of the budget.
	SmallReviewBytes = 64 << 10

	// RetryAfterSeconds is the Retry-After of a 429: the API server retries a
	// webhook call that answers 429 within its timeoutSeconds.
	RetryAfterSeconds = 1
)

// InflightBytesFor returns the default in-flight budget for a Go memory limit
// (math.MaxInt64 or <= 0: none known): three quarters of the limit, divided by
// HeapPerReviewByte (the last quarter is for everything else: the informer
// caches, connections, goroutines), and at least MinInflightBytes. The chart's
// 512 MiB limit (a 460 MiB Go memory limit) gives 15.7 MiB: two reviews of the
// largest size, or thousands of ordinary ones.
func InflightBytesFor(memoryLimit int64) int64 {
	if memoryLimit <= 0 || memoryLimit == math.MaxInt64 {
		return DefaultInflightBytes
	}
	return max(memoryLimit/4*3/HeapPerReviewByte, MinInflightBytes)
}

// Budget is a non-blocking weighted semaphore over the bytes of the
// AdmissionReviews in flight: a request holds what it has read (rounded up to
// its buffer) until its response is written. A request that does not fit is
// refused at once with 429 rather than queued: queued requests would hold
// their connections, and the API server retries a 429.
//
// A quarter of the budget (the reserve, at least one SmallReviewBytes) is
// kept for reviews of at most SmallReviewBytes, so a flood of large reviews
// cannot keep ordinary ones from being decided; and reviews larger than that
// are decoded and decided at most LargeReviewsAtOnce at a time (the rest get
// 429 too), so they cannot take every core either.
type Budget struct {
	mu      sync.Mutex
	used    int64
	limit   int64
	reserve int64
	large   chan struct{}
	metrics *LimitMetrics
}

// LargeReviewsAtOnce is how many reviews larger than SmallReviewBytes are
// decoded and decided at once: GOMAXPROCS - 1, at least 1, so one core is
// always left for ordinary reviews. A 5.6 MB review takes about half a
// second of CPU; with two on the two cores of the benchmark machine the 7 KB
// review's p99 reached 0.7 s.
func LargeReviewsAtOnce() int { return max(1, runtime.GOMAXPROCS(0)-1) }

// NewBudget returns a budget of limit bytes (at least MinInflightBytes), with
// its metrics (nil: none).
func NewBudget(limit int64, m *LimitMetrics) *Budget {
	limit = max(limit, MinInflightBytes)
	b := &Budget{limit: limit, reserve: max(limit/4, SmallReviewBytes), large: make(chan struct{}, LargeReviewsAtOnce()), metrics: m}
	if m != nil {
		m.Limit.Set(float64(limit))
	}
	return b
}

// Limit is the budget in bytes.
func (b *Budget) Limit() int64 { return b.limit }

// InUse is the bytes held now.
func (b *Budget) InUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// fits reports whether n more bytes would fit now, without taking them: the
// early check on an announced Content-Length.
func (b *Budget) fits(n int64, small bool) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used+n <= b.cap(small)
}

func (b *Budget) cap(small bool) int64 {
	if small {
		return b.limit
	}
	return b.limit - b.reserve
}

// tryAcquire takes n bytes if they fit.
func (b *Budget) tryAcquire(n int64, small bool) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > b.cap(small) {
		return false
	}
	b.used += n
	if b.metrics != nil {
		b.metrics.InUse.Set(float64(b.used))
	}
	return true
}

func (b *Budget) release(n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
	if b.metrics != nil {
		b.metrics.InUse.Set(float64(b.used))
	}
}

// tryLarge takes a slot for deciding a large review, if one is free.
func (b *Budget) tryLarge() bool {
	select {
	case b.large <- struct{}{}:
		return true
	default:
		return false
	}
}

func (b *Budget) releaseLarge() { <-b.large }

// largeFree reports whether a large review's slot is free now, without
// taking it: the early check before its body is read.
func (b *Budget) largeFree() bool { return len(b.large) < cap(b.large) }

// Guard bounds another handler's requests with the budget (the mutating
// webhook, served by controller-runtime's admission.Webhook, which reads and
// decodes up to 7 MiB itself): a request holds its Content-Length, or
// MaxReviewBytes when none is announced, until it is answered; one that does
// not fit gets 429 before its body is read, one over MaxReviewBytes 413.
func (b *Budget) Guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := r.ContentLength
		if n > MaxReviewBytes {
			b.rejected(RejectTooLarge)
			w.Header().Set("Connection", "close")
			http.Error(w, errTooLarge.Error(), http.StatusRequestEntityTooLarge)
			return
		}
		if n < 0 {
			n = MaxReviewBytes
		}
		small := n <= SmallReviewBytes
		if !b.tryAcquire(n, small) {
			b.writeOverloaded(w, RejectInflightBytes)
			return
		}
		defer b.release(n)
		if !small {
			if !b.tryLarge() {
				b.writeOverloaded(w, RejectLargeBusy)
				return
			}
			defer b.releaseLarge()
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxReviewBytes)
		next.ServeHTTP(w, r)
	})
}

// Reasons of meshguard_admission_rejected_total.
const (
	RejectInflightBytes = "inflight_bytes" // the budget was full: 429
	RejectLargeBusy     = "large_reviews"  // LargeReviewsAtOnce large reviews were being decided: 429
	RejectTooLarge      = "too_large"      // over MaxReviewBytes: 413 in the review
	RejectReadBody      = "read_body"      // the body could not be read (timeout, reset)
)

// LimitMetrics are the metrics of the in-flight budget.
type LimitMetrics struct {
	Rejected *prometheus.CounterVec
	InUse    prometheus.Gauge
	Limit    prometheus.Gauge
}

// NewLimitMetrics creates the metrics, unregistered.
func NewLimitMetrics() *LimitMetrics {
	return &LimitMetrics{
		Rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshguard_admission_rejected_total",
			Help: "Admission requests refused before a decision, by reason (inflight_bytes: 429, the budget of reviews in flight was full; large_reviews: 429, as many reviews over 64 KiB as allowed were being decided; too_large: over the body limit or decoding to more than the budget; read_body: the body could not be read in time).",
		}, []string{"reason"}),
		InUse: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meshguard_admission_inflight_bytes",
			Help: "Bytes of AdmissionReviews being read or decided now.",
		}),
		Limit: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meshguard_admission_inflight_bytes_limit",
			Help: "The budget of AdmissionReview bytes in flight (--max-inflight-bytes).",
		}),
	}
}

// Register adds the metrics to a registerer, reusing ones already there.
func (m *LimitMetrics) Register(r prometheus.Registerer) error {
	return errors.Join(
		promreg.Into(r, &m.Rejected),
		promreg.Into(r, &m.InUse),
		promreg.Into(r, &m.Limit),
	)
}

func (b *Budget) rejected(reason string) {
	if b != nil && b.metrics != nil {
		b.metrics.Rejected.WithLabelValues(reason).Inc()
	}
}

// overloadedStatus is the 429's body.
func overloadedStatus(msg string) []byte {
	st := metav1.Status{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Status"},
		Status:   metav1.StatusFailure,
		Code:     http.StatusTooManyRequests,
		Reason:   metav1.StatusReasonTooManyRequests,
		Message:  fmt.Sprintf("meshguard is overloaded: %s; retry in %d s", msg, RetryAfterSeconds),
		Details:  &metav1.StatusDetails{RetryAfterSeconds: RetryAfterSeconds},
	}
	out, _ := json.Marshal(st)
	return out
}

// writeOverloaded answers 429 with Retry-After and a Status body. It is an
// HTTP error, never an AdmissionReview, so the API server retries and then
// applies the webhook's failurePolicy: an overloaded webhook never allows.
func (b *Budget) writeOverloaded(w http.ResponseWriter, reason string) {
	b.rejected(reason)
	msg := fmt.Sprintf("this review does not fit in the budget of %d bytes of reviews in flight (--max-inflight-bytes)", b.limit)
	if reason == RejectLargeBusy {
		msg = fmt.Sprintf("%d reviews larger than %d KiB are being decided", cap(b.large), SmallReviewBytes>>10)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Retry-After", strconv.Itoa(RetryAfterSeconds))
	w.WriteHeader(http.StatusTooManyRequests)
	_, _ = w.Write(overloadedStatus(msg))
}

// newBudget is the server's budget: --max-inflight-bytes, or derived from the
// Go memory limit in effect (set by `meshguard serve` from the cgroup, or
// GOMEMLIMIT), with its metrics on controller-runtime's registry.
func newBudget(o *Options, log logr.Logger) (*Budget, error) {
	m := NewLimitMetrics()
	if err := m.Register(metrics.Registry); err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	limit, from := o.MaxInflightBytes, "flag"
	if limit == 0 {
		memLimit := debug.SetMemoryLimit(-1)
		limit, from = InflightBytesFor(memLimit), "memory limit"
		if memLimit == math.MaxInt64 {
			from = "default (no memory limit)"
		}
	}
	log.Info("admission review budget", "maxInflightBytes", limit, "from", from, "maxReviewBytes", MaxReviewBytes)
	return NewBudget(limit, m), nil
}
