package webhook

import (
	"context"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshguard/meshguard/rules"
)

// Istio policy kinds the context caches (storage versions).
var (
	gvkPeerAuthentication  = schema.GroupVersionKind{Group: "security.istio.io", Version: "v1", Kind: "PeerAuthenticationList"}
	gvkAuthorizationPolicy = schema.GroupVersionKind{Group: "security.istio.io", Version: "v1", Kind: "AuthorizationPolicyList"}
)

// cacheContext serves rules.Context from informer caches: never an API call on
// the request path. Lists are read without deep copies and must not be modified.
type cacheContext struct {
	reader client.Reader
	// istio is true when the Istio security CRDs are installed (found at start).
	istio bool
	// synced flips to true once the caches have synced.
	synced atomic.Bool
}

var _ rules.Context = (*cacheContext)(nil)

func (c *cacheContext) Namespace(name string) (rules.Namespace, bool) {
	if name == "" {
		return rules.Namespace{}, false
	}
	var ns corev1.Namespace
	if err := c.reader.Get(context.Background(), client.ObjectKey{Name: name}, &ns); err != nil {
		return rules.Namespace{}, false
	}
	return rules.Namespace{
		Name:        ns.Name,
		Labels:      ns.Labels,
		Annotations: ns.Annotations,
		Terminating: ns.DeletionTimestamp != nil,
	}, true
}

func (c *cacheContext) list(gvk schema.GroupVersionKind, namespace string) []rules.Object {
	if !c.istio {
		return nil
	}
	var l unstructured.UnstructuredList
	l.SetGroupVersionKind(gvk)
	if err := c.reader.List(context.Background(), &l, client.InNamespace(namespace), client.UnsafeDisableDeepCopy); err != nil {
		return nil
	}
	out := make([]rules.Object, 0, len(l.Items))
	for i := range l.Items {
		out = append(out, l.Items[i].Object)
	}
	return out
}

func (c *cacheContext) PeerAuthentications(namespace string) []rules.Object {
	return c.list(gvkPeerAuthentication, namespace)
}

func (c *cacheContext) AuthorizationPolicies(namespace string) []rules.Object {
	return c.list(gvkAuthorizationPolicy, namespace)
}
