package webhook

import (
	"context"
	"fmt"
	"strings"

	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
)

// Kubernetes Events for admission decisions (--admission-events): a denial or
// a warning is also recorded as a Warning Event regarding the object, so that
// `kubectl get events -n NS` (and `kubectl describe` for an object that
// exists: UPDATE, DELETE) shows who was refused what and why, after the
// client's terminal is gone.
//
// Never on the hot path of the decision: the validator hands the event to a
// bounded queue and returns; one goroutine drains the queue through a token
// bucket into client-go's events.k8s.io recorder (which folds repeats of the
// same event into a series). Under a flood the queue fills and events are
// dropped and counted (meshguard_admission_events_dropped_total), never
// waited for: a tenant looping on a denied apply, or creating objects under
// random names, cannot make meshguard write events faster than the bucket
// allows, nor slow a decision down.

// Event reasons.
const (
	// EventReasonDenied is the reason of the Event recorded for a denial.
	EventReasonDenied = "MeshguardDenied"
	// EventReasonWarned is the reason of the Event recorded for an admitted
	// request with warnings.
	EventReasonWarned = "MeshguardWarned"
)

// Admission event limits: at most eventsPerSecond events a second on
// average, eventsBurst at once, eventQueueSize waiting.
const (
	eventsPerSecond = 10
	eventsBurst     = 50
	eventQueueSize  = 256
	// maxEventNote is the longest note (events.k8s.io limits it to 1 KiB).
	maxEventNote = 1024
)

// AdmissionEvent is one decision to record.
type AdmissionEvent struct {
	// Regarding is the object under review: kind, API version, namespace,
	// name, and its UID when it exists already (UPDATE, DELETE).
	Regarding corev1.ObjectReference
	// Denied is true for a denial, false for warnings.
	Denied bool
	// Operation is the request's operation (CREATE, UPDATE, DELETE).
	Operation string
	// User is the requesting user's name.
	User string
	// Codes are the rule codes of the denied or warned findings.
	Codes []string
	// Note is the denial message or the warnings.
	Note string
}

// EventSink takes admission events; Admission must not block.
type EventSink interface {
	Admission(AdmissionEvent)
}

// annotatedRecorder is the part of an events.k8s.io recorder the emitter uses
// (controller-runtime's manager provides one).
type annotatedRecorder interface {
	AnnotatedEventf(regarding, related runtime.Object, annotations map[string]string, eventtype, reason, action, note string, args ...any)
}

// eventEmitter is the EventSink of the server: a bounded queue drained
// through a rate limiter into an events.k8s.io recorder.
type eventEmitter struct {
	queue    chan AdmissionEvent
	recorder annotatedRecorder
	limiter  *rate.Limiter
	metrics  *Metrics
}

func newEventEmitter(rec annotatedRecorder, m *Metrics) *eventEmitter {
	return &eventEmitter{
		queue:    make(chan AdmissionEvent, eventQueueSize),
		recorder: rec,
		limiter:  rate.NewLimiter(eventsPerSecond, eventsBurst),
		metrics:  m,
	}
}

// Admission queues the event, or drops it when the queue is full.
func (e *eventEmitter) Admission(ev AdmissionEvent) {
	select {
	case e.queue <- ev:
	default:
		e.metrics.EventsDropped.WithLabelValues("queue_full").Inc()
	}
}

// Start drains the queue until ctx ends (a manager Runnable on every
// replica: every replica decides requests).
func (e *eventEmitter) Start(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-e.queue:
			if !e.limiter.Allow() {
				e.metrics.EventsDropped.WithLabelValues("rate_limited").Inc()
				continue
			}
			e.record(ev)
		}
	}
}

// NeedLeaderElection implements manager.LeaderElectionRunnable: every
// replica records the decisions it makes.
func (e *eventEmitter) NeedLeaderElection() bool { return false }

func (e *eventEmitter) record(ev AdmissionEvent) {
	reason, action := EventReasonWarned, "Warn"
	if ev.Denied {
		reason, action = EventReasonDenied, "Deny"
	}
	ann := map[string]string{
		"meshguard.io/operation": ev.Operation,
		"meshguard.io/user":      ev.User,
		"meshguard.io/codes":     strings.Join(ev.Codes, ","),
	}
	ref := ev.Regarding
	e.recorder.AnnotatedEventf(&ref, nil, ann, corev1.EventTypeWarning, reason, action, "%s", truncate(ev.Note, maxEventNote))
	e.metrics.Events.WithLabelValues(reason).Inc()
}

// admissionEventOf builds the event of a decided request; ok is false when
// there is nothing to record (an allow without warnings, or a dry run, which
// changes nothing and must leave no trace in the cluster).
func admissionEventOf(kind, apiVersion, namespace, name, operation, user string, uid types.UID, dryRun bool, denied bool, ds []decided, note string) (AdmissionEvent, bool) {
	if dryRun {
		return AdmissionEvent{}, false
	}
	var codes []string
	for _, d := range ds {
		if d.Action == ActionDeny || d.Action == ActionWarn {
			codes = append(codes, d.Code)
		}
	}
	if len(codes) == 0 {
		return AdmissionEvent{}, false
	}
	if name == "" {
		name = "(generated name)"
	}
	return AdmissionEvent{
		Regarding: corev1.ObjectReference{Kind: kind, APIVersion: apiVersion, Namespace: namespace, Name: name, UID: uid},
		Denied:    denied,
		Operation: operation,
		User:      user,
		Codes:     dedupe(codes),
		Note:      note,
	}, true
}

// warningsNote joins a response's warnings into an event note.
func warningsNote(op, object string, warnings []string) string {
	return fmt.Sprintf("%s %s admitted with warnings: %s", op, object, strings.Join(warnings, " | "))
}
