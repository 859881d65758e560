package posture

import (
	"slices"
	"sort"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshguard/meshguard/rules"
)

func TestRecorderRegistersReadsAndForgetsOldOnes(t *testing.T) {
	idx := newDepIndex()
	snap := rules.NewSnapshot()
	snap.AddNamespace(rules.Namespace{Name: "a"})
	r := newRecorder(snap, "b", idx)
	r.Namespace("a")
	r.PeerAuthentications("istio-system")
	if got := idx.readersOf(dep{kind: depNamespace, namespace: "a"}); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("readers of namespace a: %v, want [b]", got)
	}
	// The next judgment of b reads only the root's PeerAuthentications.
	r2 := newRecorder(snap, "b", idx)
	r2.PeerAuthentications("istio-system")
	idx.keepOnly("b", r2.read())
	if got := idx.readersOf(dep{kind: depNamespace, namespace: "a"}); len(got) != 0 {
		t.Errorf("b still reads namespace a: %v", got)
	}
	r3 := newRecorder(snap, "c", idx)
	r3.PeerAuthentications("istio-system")
	got := idx.readersOf(dep{kind: depPeerAuthn, namespace: "istio-system"})
	sort.Strings(got)
	if !slices.Equal(got, []string{"b", "c"}) {
		t.Errorf("readers of the root's PeerAuthentications: %v, want [b c]", got)
	}
	idx.keepOnly("c", nil)
	if got := idx.readersOf(dep{kind: depPeerAuthn, namespace: "istio-system"}); !slices.Equal(got, []string{"b"}) {
		t.Errorf("after c is gone: %v, want [b]", got)
	}
}

// The recorder answers the optional interfaces its context lacks as
// "unknown", as if it did not implement them.
func TestRecorderKeepsUnknownUnknown(t *testing.T) {
	r := newRecorder(emptyCtx{}, "a", newDepIndex())
	if _, known := r.Pods("a"); known {
		t.Error("pods known through a context that knows none")
	}
	if _, known := r.InjectorRevisions(); known {
		t.Error("revisions known through a context that knows none")
	}
	if _, known := r.ManagedNetworkPolicies("a"); known {
		t.Error("managed NetworkPolicies known through a context that knows none")
	}
	if r.WebhookBackends("a") != nil {
		t.Error("webhook backends through a context that knows none")
	}
}

type emptyCtx struct{}

func (emptyCtx) Namespace(string) (rules.Namespace, bool)    { return rules.Namespace{}, false }
func (emptyCtx) PeerAuthentications(string) []rules.Object   { return nil }
func (emptyCtx) AuthorizationPolicies(string) []rules.Object { return nil }

func TestWebhookChangeMatters(t *testing.T) {
	port := int32(443)
	mk := func(ca string, rev string, svc string) *admissionregistrationv1.MutatingWebhookConfiguration {
		return &admissionregistrationv1.MutatingWebhookConfiguration{
			ObjectMeta: metav1.ObjectMeta{Name: "istio-sidecar-injector", Labels: map[string]string{"istio.io/rev": rev}},
			Webhooks: []admissionregistrationv1.MutatingWebhook{{ClientConfig: admissionregistrationv1.WebhookClientConfig{
				CABundle: []byte(ca), Service: &admissionregistrationv1.ServiceReference{Namespace: "istio-system", Name: svc, Port: &port}}}},
		}
	}
	if webhookChangeMatters(mk("a", "1-24", "istiod"), mk("b", "1-24", "istiod")) {
		t.Error("a caBundle rotation counts as a context change")
	}
	if !webhookChangeMatters(mk("a", "1-24", "istiod"), mk("a", "1-25", "istiod")) {
		t.Error("a new revision label does not count")
	}
	if !webhookChangeMatters(mk("a", "1-24", "istiod"), mk("a", "1-24", "istiod-1-24")) {
		t.Error("a new Service does not count")
	}
}
