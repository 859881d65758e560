package e2e_test

import (
	"context"
	"strings"
	"testing"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/meshguard/meshguard/test/e2e/framework"
	"github.com/meshguard/meshguard/webhook"
)

// testAdmissionEvents: with --admission-events (the chart's default), a
// denial and a warning leave a Warning Event regarding the object, with the
// codes, operation and user as annotations; a denied UPDATE's Event carries
// the object's UID, so `kubectl describe` shows it.
func testAdmissionEvents(t *testing.T, ctx context.Context, env *framework.Env) {
	cs, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	ns, warnNS := "e2e-events", "e2e-relaxed-events"

	assertDenied(t, kubectl(t, ctx, env, deploymentYAML(ns, "ev-net-admin", deploymentOpts{Caps: []string{"NET_ADMIN"}}), "apply", "-f", "-"), "MESH0150")
	ev := waitForEvent(t, ctx, cs, ns, "ev-net-admin", webhook.EventReasonDenied)
	if ev.Type != "Warning" || ev.Regarding.Kind != "Deployment" || ev.Regarding.APIVersion != "apps/v1" || ev.Regarding.UID != "" ||
		!strings.Contains(ev.Note, "MESH0150") || !strings.Contains(ev.Note, "Fix:") || ev.Action != "Deny" ||
		ev.Annotations["meshguard.io/codes"] != "MESH0150" || ev.Annotations["meshguard.io/operation"] != "CREATE" || ev.Annotations["meshguard.io/user"] == "" ||
		ev.ReportingController != "meshguard-webhook" {
		t.Errorf("the denial's Event: %+v", ev)
	}

	// A denied UPDATE of an existing object: the Event names its UID.
	mustKubectl(t, ctx, env, deploymentYAML(ns, "ev-update", deploymentOpts{}), "apply", "-f", "-")
	d, err := cs.AppsV1().Deployments(ns).Get(ctx, "ev-update", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	assertDenied(t, kubectl(t, ctx, env, deploymentYAML(ns, "ev-update", deploymentOpts{Caps: []string{"NET_ADMIN"}}), "apply", "-f", "-"), "MESH0150")
	if ev := waitForEvent(t, ctx, cs, ns, "ev-update", webhook.EventReasonDenied); ev.Regarding.UID != d.UID || ev.Annotations["meshguard.io/operation"] != "UPDATE" {
		t.Errorf("the denied update's Event: regarding %+v, annotations %v; want UID %s", ev.Regarding, ev.Annotations, d.UID)
	}

	// A warning (a namespace in warn mode) is recorded too.
	if res := kubectl(t, ctx, env, deploymentYAML(warnNS, "ev-net-raw", deploymentOpts{Caps: []string{"NET_RAW"}}), "apply", "-f", "-"); res.ExitCode != 0 {
		t.Fatalf("warn mode must admit:\n%s", res)
	}
	if ev := waitForEvent(t, ctx, cs, warnNS, "ev-net-raw", webhook.EventReasonWarned); !strings.Contains(ev.Note, "admitted with warnings") || !strings.Contains(ev.Note, "MESH0151") || ev.Action != "Warn" {
		t.Errorf("the warning's Event: %+v", ev)
	}
}

// waitForEvent polls (bounded) for the Event with reason regarding the named object.
func waitForEvent(t *testing.T, ctx context.Context, cs kubernetes.Interface, ns, name, reason string) eventsv1.Event {
	t.Helper()
	var found *eventsv1.Event
	var last error
	if !poll(30*time.Second, 100*time.Millisecond, func() bool {
		list, err := cs.EventsV1().Events(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			last = err
			return false
		}
		for i, e := range list.Items {
			if e.Regarding.Name == name && e.Reason == reason {
				found = &list.Items[i]
				return true
			}
		}
		return false
	}) {
		t.Fatalf("no %s Event regarding %s/%s within 30s (last error: %v)", reason, ns, name, last)
	}
	return *found
}
