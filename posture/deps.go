package posture

import (
	"sync"

	"github.com/meshguard/meshguard/rules"
)

// dep is one piece of context a judgment read: a kind of context in a
// namespace ("" for cluster-wide context such as the webhook configurations).
type dep struct {
	kind      string
	namespace string
}

// Context kinds a judgment can read.
const (
	depNamespace     = "Namespace"
	depPeerAuthn     = "PeerAuthentication"
	depAuthzPolicy   = "AuthorizationPolicy"
	depPods          = "Pod"
	depWebhooks      = "webhooks" // the webhook configurations (cluster-wide)
	depServices      = "Service"
	depNetworkPolicy = "NetworkPolicy"
)

// depIndex maps context to the scopes that read it.
type depIndex struct {
	mu      sync.Mutex
	readers map[dep]map[string]struct{}
	read    map[string]map[dep]struct{} // scope -> what it read
}

func newDepIndex() *depIndex {
	return &depIndex{readers: map[dep]map[string]struct{}{}, read: map[string]map[dep]struct{}{}}
}

// add records that scope reads d.
func (x *depIndex) add(scope string, d dep) {
	x.mu.Lock()
	defer x.mu.Unlock()
	r := x.readers[d]
	if r == nil {
		r = map[string]struct{}{}
		x.readers[d] = r
	}
	r[scope] = struct{}{}
	s := x.read[scope]
	if s == nil {
		s = map[dep]struct{}{}
		x.read[scope] = s
	}
	s[d] = struct{}{}
}

// keepOnly forgets what scope read before, except what it read in its
// latest judgment (now).
func (x *depIndex) keepOnly(scope string, now map[dep]struct{}) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for d := range x.read[scope] {
		if _, ok := now[d]; ok {
			continue
		}
		delete(x.read[scope], d)
		if r := x.readers[d]; r != nil {
			delete(r, scope)
			if len(r) == 0 {
				delete(x.readers, d)
			}
		}
	}
	if len(x.read[scope]) == 0 {
		delete(x.read, scope)
	}
}

// readersOf returns the scopes that read d.
func (x *depIndex) readersOf(d dep) []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := make([]string, 0, len(x.readers[d]))
	for s := range x.readers[d] {
		out = append(out, s)
	}
	return out
}

// recorder is the rules.Context of one scope's judgment: every read is
// registered in the index (before it is made, so a change racing the read
// still re-judges the scope) and then answered by the wrapped context. It
// implements every optional context interface; where the wrapped context
// does not, it answers "unknown", exactly as if the interface were not
// implemented.
type recorder struct {
	ctx   rules.Context
	scope string
	index *depIndex
	// netpols answers ManagedNetworkPolicies when ctx does not (the
	// webhook's context has no NetworkPolicy cache; the background audit
	// watches NetworkPolicies itself). Nil: unknown.
	netpols func(namespace string) ([]string, bool)

	mu   sync.Mutex
	deps map[dep]struct{}
}

var (
	_ rules.Context                = (*recorder)(nil)
	_ rules.NamespacePods          = (*recorder)(nil)
	_ rules.WebhookBackends        = (*recorder)(nil)
	_ rules.InjectorRevisions      = (*recorder)(nil)
	_ rules.ManagedNetworkPolicies = (*recorder)(nil)
)

func newRecorder(ctx rules.Context, scope string, index *depIndex) *recorder {
	return &recorder{ctx: ctx, scope: scope, index: index, deps: map[dep]struct{}{}}
}

func (r *recorder) note(kind, namespace string) {
	d := dep{kind: kind, namespace: namespace}
	r.mu.Lock()
	_, seen := r.deps[d]
	r.deps[d] = struct{}{}
	r.mu.Unlock()
	if !seen {
		r.index.add(r.scope, d)
	}
}

func (r *recorder) Namespace(name string) (rules.Namespace, bool) {
	r.note(depNamespace, name)
	return r.ctx.Namespace(name)
}

func (r *recorder) PeerAuthentications(namespace string) []rules.Object {
	r.note(depPeerAuthn, namespace)
	return r.ctx.PeerAuthentications(namespace)
}

func (r *recorder) AuthorizationPolicies(namespace string) []rules.Object {
	r.note(depAuthzPolicy, namespace)
	return r.ctx.AuthorizationPolicies(namespace)
}

func (r *recorder) Pods(namespace string) ([]rules.Object, bool) {
	r.note(depPods, namespace)
	if np, ok := r.ctx.(rules.NamespacePods); ok {
		return np.Pods(namespace)
	}
	return nil, false
}

func (r *recorder) WebhookBackends(namespace string) []rules.WebhookBackend {
	r.note(depWebhooks, "")
	r.note(depServices, namespace)
	if wb, ok := r.ctx.(rules.WebhookBackends); ok {
		return wb.WebhookBackends(namespace)
	}
	return nil
}

func (r *recorder) InjectorRevisions() ([]string, bool) {
	r.note(depWebhooks, "")
	if ir, ok := r.ctx.(rules.InjectorRevisions); ok {
		return ir.InjectorRevisions()
	}
	return nil, false
}

func (r *recorder) ManagedNetworkPolicies(namespace string) ([]string, bool) {
	r.note(depNetworkPolicy, namespace)
	if mp, ok := r.ctx.(rules.ManagedNetworkPolicies); ok {
		return mp.ManagedNetworkPolicies(namespace)
	}
	if r.netpols != nil {
		return r.netpols(namespace)
	}
	return nil, false
}

// read returns what the judgment read.
func (r *recorder) read() map[dep]struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[dep]struct{}, len(r.deps))
	for d := range r.deps {
		out[d] = struct{}{}
	}
	return out
}
