package webhook

import (
	"context"
	goruntime "runtime"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"

	"github.com/meshguard/meshguard/rules"
)

type fakeRecorder struct {
	mu      sync.Mutex
	reasons []string
	notes   []string
}

func (f *fakeRecorder) AnnotatedEventf(_, _ runtime.Object, _ map[string]string, _, reason, _, note string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reasons = append(f.reasons, reason)
	if len(args) == 1 {
		note, _ = args[0].(string)
	}
	f.notes = append(f.notes, note)
}

func TestAdmissionEventOf(t *testing.T) {
	ds := []decided{
		{Finding: rules.Finding{Code: "MESH0150"}, Action: ActionDeny},
		{Finding: rules.Finding{Code: "MESH0151"}, Action: ActionWarn},
		{Finding: rules.Finding{Code: "MESH0151"}, Action: ActionWarn},
		{Finding: rules.Finding{Code: "MESH0024"}, Action: ActionAudit},
	}
	ev, ok := admissionEventOf("Deployment", "apps/v1", "shop", "", "CREATE", "alice", "", false, true, ds, "denied")
	if !ok || ev.Regarding.Name != "(generated name)" || len(ev.Codes) != 2 || ev.Codes[0] != "MESH0150" || ev.Codes[1] != "MESH0151" {
		t.Errorf("event %+v, %v", ev, ok)
	}
	if _, ok := admissionEventOf("Deployment", "apps/v1", "shop", "web", "CREATE", "alice", "", true, true, ds, "denied"); ok {
		t.Error("a dry run must leave no Event")
	}
	if _, ok := admissionEventOf("Deployment", "apps/v1", "shop", "web", "CREATE", "alice", "", false, false, ds[3:], ""); ok {
		t.Error("audit-only findings must leave no Event")
	}
}

// The emitter never blocks the caller: beyond the queue events are dropped
// and counted, and beyond the token bucket too.
func TestEventEmitterDropsInsteadOfBlocking(t *testing.T) {
	m := NewMetrics()
	rec := &fakeRecorder{}
	em := newEventEmitter(rec, m)
	ev := AdmissionEvent{Denied: true, Note: "n", Codes: []string{"MESH0150"}}
	total := eventQueueSize + 100
	for range total { // nothing drains yet: the queue fills, the rest drop
		em.Admission(ev)
	}
	if got := counterValue(t, m.EventsDropped, "queue_full"); got != 100 {
		t.Errorf("queue_full drops %v, want 100", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = em.Start(ctx); close(done) }()
	// The queued events go through the bucket: the burst is recorded, the
	// rest of the queue (drained faster than the bucket refills) is dropped.
	deadline := time.Now().Add(10 * time.Second)
	for {
		recorded := counterValue(t, m.Events, EventReasonDenied)
		limited := counterValue(t, m.EventsDropped, "rate_limited")
		if int(recorded+limited) == eventQueueSize {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the queue was not drained within 10s: %v recorded, %v rate-limited", recorded, limited)
		}
		goruntime.Gosched()
	}
	cancel()
	<-done
	recorded := counterValue(t, m.Events, EventReasonDenied)
	if recorded < eventsBurst || recorded > eventsBurst+10 {
		t.Errorf("recorded %v events, want the burst of %d (plus what refilled meanwhile)", recorded, eventsBurst)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.reasons) != int(recorded) || rec.reasons[0] != EventReasonDenied || rec.notes[0] != "n" {
		t.Errorf("recorder got %d events (%v), metrics say %v", len(rec.reasons), rec.reasons[:1], recorded)
	}
}
