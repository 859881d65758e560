package webhook

import (
	"context"
	"strings"
	"sync/atomic"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshguard/meshguard/rules"
)

// Istio policy kinds the context caches (storage versions).
var (
	gvkPeerAuthentication  = schema.GroupVersionKind{Group: "security.istio.io", Version: "v1", Kind: "PeerAuthenticationList"}
	gvkAuthorizationPolicy = schema.GroupVersionKind{Group: "security.istio.io", Version: "v1", Kind: "AuthorizationPolicyList"}
	gvkServiceEntry        = schema.GroupVersionKind{Group: "networking.istio.io", Version: "v1", Kind: "ServiceEntryList"}
	gvkDestinationRule     = schema.GroupVersionKind{Group: "networking.istio.io", Version: "v1", Kind: "DestinationRuleList"}
)

// cacheContext serves rules.Context from informer caches: never an API call on
// the request path. Lists are read without deep copies and must not be modified.
//
// Each read has two forms: the rules.Context method, which the validator's
// per-request view (requestView) wraps so that a failed read becomes an error
// response, and an internal one that returns the error. Every failed read is
// counted and logged (errs); see contexterr.go.
type cacheContext struct {
	reader client.Reader
	// istio says whether the Istio security API is served and its caches
	// synced; nil means it is not served (tests).
	istio *istioAPI
	// istioNet says the same of the Istio networking API (ServiceEntries);
	// nil means it is not served.
	istioNet *istioAPI
	// errs counts and logs failed reads; nil records nothing.
	errs *contextErrors
	// synced flips to true once the caches of the built-in kinds have synced.
	synced atomic.Bool
	// istiods are istiod's Deployments, the second source of the Istio
	// release per revision; nil reads none.
	istiods *istiodDeployments
}

var (
	_ rules.Context           = (*cacheContext)(nil)
	_ rules.NamespacePods     = (*cacheContext)(nil)
	_ rules.ServiceEntries    = (*cacheContext)(nil)
	_ rules.DestinationRules  = (*cacheContext)(nil)
	_ rules.WebhookBackends   = (*cacheContext)(nil)
	_ rules.InjectorRevisions = (*cacheContext)(nil)
	_ rules.IstiodDeployments = (*cacheContext)(nil)
	_ requestScoped           = (*cacheContext)(nil)
)

// fail records a failed read of a kind and returns it as a contextReadError.
func (c *cacheContext) fail(kind string, err error) error {
	c.errs.record(kind, err)
	return &contextReadError{kind: kind, err: err}
}

// InjectorRevisions returns the revisions and tags of Istio's sidecar
// injector webhook configurations (labels istio.io/rev and istio.io/tag).
func (c *cacheContext) InjectorRevisions() ([]string, bool) {
	revs, known, _ := c.injectorRevisions()
	return revs, known
}

func (c *cacheContext) injectorRevisions() ([]string, bool, error) {
	configs, err := c.injectorConfigs()
	if err != nil {
		return nil, false, err
	}
	revs, known := rules.RevisionsFromWebhooks(configs)
	return revs, known, nil
}

// InjectorVersions implements rules.InjectorVersions from the cached
// MutatingWebhookConfigurations' labels.
func (c *cacheContext) InjectorVersions() map[string]string {
	configs, _ := c.injectorConfigs()
	return rules.VersionsFromWebhooks(configs)
}

// IstiodDeployments implements rules.IstiodDeployments from istiod's
// cached Deployments (none until their cache has synced).
func (c *cacheContext) IstiodDeployments() []rules.Object { return c.istiods.objects() }

// injectorConfigs returns the cached MutatingWebhookConfigurations as
// objects holding only their labels (all the revision and version lookups read).
func (c *cacheContext) injectorConfigs() ([]rules.Object, error) {
	var ml admissionregistrationv1.MutatingWebhookConfigurationList
	if err := c.reader.List(context.Background(), &ml, client.UnsafeDisableDeepCopy); err != nil {
		return nil, c.fail("MutatingWebhookConfiguration", err)
	}
	configs := make([]rules.Object, 0, len(ml.Items))
	for i := range ml.Items {
		l := make(map[string]any, len(ml.Items[i].Labels))
		for k, v := range ml.Items[i].Labels {
			l[k] = v
		}
		configs = append(configs, rules.Object{"kind": "MutatingWebhookConfiguration", "metadata": map[string]any{"labels": l}})
	}
	return configs, nil
}

// WebhookBackends resolves the cluster's webhook configurations to the pod
// ports the API server calls in a namespace (see rules.WebhookBackends).
func (c *cacheContext) WebhookBackends(namespace string) []rules.WebhookBackend {
	b, _ := c.webhookBackends(namespace)
	return b
}

func (c *cacheContext) webhookBackends(namespace string) ([]rules.WebhookBackend, error) {
	ctx := context.Background()
	var configs []rules.Object
	var vl admissionregistrationv1.ValidatingWebhookConfigurationList
	if err := c.reader.List(ctx, &vl, client.UnsafeDisableDeepCopy); err != nil {
		return nil, c.fail("ValidatingWebhookConfiguration", err)
	}
	for i := range vl.Items {
		configs = append(configs, webhookConfigObject(vl.Items[i].Name, validatingRefs(vl.Items[i].Webhooks)))
	}
	var ml admissionregistrationv1.MutatingWebhookConfigurationList
	if err := c.reader.List(ctx, &ml, client.UnsafeDisableDeepCopy); err != nil {
		return nil, c.fail("MutatingWebhookConfiguration", err)
	}
	for i := range ml.Items {
		configs = append(configs, webhookConfigObject(ml.Items[i].Name, mutatingRefs(ml.Items[i].Webhooks)))
	}
	var firstErr error
	backends := rules.ResolveWebhookBackends(configs, namespace, func(ns, name string) rules.Object {
		var svc corev1.Service
		if err := c.reader.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &svc); err != nil {
			// A Service that does not exist has no backends; any other
			// failure leaves the backends unknown.
			if !apierrors.IsNotFound(err) && firstErr == nil {
				firstErr = c.fail("Service", err)
			}
			return nil
		}
		ports := make([]any, 0, len(svc.Spec.Ports))
		for _, p := range svc.Spec.Ports {
			var target any = float64(p.TargetPort.IntVal)
			if p.TargetPort.StrVal != "" {
				target = p.TargetPort.StrVal
			}
			ports = append(ports, map[string]any{"port": float64(p.Port), "targetPort": target})
		}
		sel := make(map[string]any, len(svc.Spec.Selector))
		for k, v := range svc.Spec.Selector {
			sel[k] = v
		}
		return rules.Object{"spec": map[string]any{"selector": sel, "ports": ports}}
	})
	if firstErr != nil {
		return nil, firstErr
	}
	return backends, nil
}

func validatingRefs(whs []admissionregistrationv1.ValidatingWebhook) []*admissionregistrationv1.ServiceReference {
	out := make([]*admissionregistrationv1.ServiceReference, 0, len(whs))
	for i := range whs {
		out = append(out, whs[i].ClientConfig.Service)
	}
	return out
}

func mutatingRefs(whs []admissionregistrationv1.MutatingWebhook) []*admissionregistrationv1.ServiceReference {
	out := make([]*admissionregistrationv1.ServiceReference, 0, len(whs))
	for i := range whs {
		out = append(out, whs[i].ClientConfig.Service)
	}
	return out
}

// webhookConfigObject renders the parts of a webhook configuration that
// rules.ResolveWebhookBackends reads.
func webhookConfigObject(name string, refs []*admissionregistrationv1.ServiceReference) rules.Object {
	var whs []any
	for _, r := range refs {
		if r == nil {
			continue
		}
		ref := map[string]any{"namespace": r.Namespace, "name": r.Name}
		if r.Port != nil {
			ref["port"] = float64(*r.Port)
		}
		whs = append(whs, map[string]any{"clientConfig": map[string]any{"service": ref}})
	}
	return rules.Object{"metadata": map[string]any{"name": name}, "webhooks": whs}
}

func (c *cacheContext) Namespace(name string) (rules.Namespace, bool) {
	ns, ok, _ := c.namespace(name)
	return ns, ok
}

// namespace reads a namespace; one that does not exist is not known, which
// is no error.
func (c *cacheContext) namespace(name string) (rules.Namespace, bool, error) {
	if name == "" {
		return rules.Namespace{}, false, nil
	}
	var ns corev1.Namespace
	if err := c.reader.Get(context.Background(), client.ObjectKey{Name: name}, &ns); err != nil {
		if apierrors.IsNotFound(err) {
			return rules.Namespace{}, false, nil
		}
		return rules.Namespace{}, false, c.fail("Namespace", err)
	}
	return rules.Namespace{
		Name:        ns.Name,
		Labels:      ns.Labels,
		Annotations: ns.Annotations,
		Terminating: ns.DeletionTimestamp != nil,
	}, true, nil
}

// listIstio lists an Istio policy kind in a namespace: nothing while the
// Istio security API is not served, an error while it is not known whether it
// is (discovery has not answered yet) or its cache has not synced.
func (c *cacheContext) listIstio(gvk schema.GroupVersionKind, namespace string) ([]rules.Object, error) {
	api := c.istio
	if gvk.Group == gvkServiceEntry.Group {
		api = c.istioNet
	}
	kind := strings.TrimSuffix(gvk.Kind, "List")
	if api == nil {
		return nil, nil
	}
	served, err := api.readable()
	if err != nil {
		return nil, c.fail(kind, err)
	}
	if !served {
		return nil, nil
	}
	var l unstructured.UnstructuredList
	l.SetGroupVersionKind(gvk)
	if err := c.reader.List(context.Background(), &l, client.InNamespace(namespace), client.UnsafeDisableDeepCopy); err != nil {
		return nil, c.fail(kind, err)
	}
	out := make([]rules.Object, 0, len(l.Items))
	for i := range l.Items {
		out = append(out, l.Items[i].Object)
	}
	return out, nil
}

func (c *cacheContext) PeerAuthentications(namespace string) []rules.Object {
	l, _ := c.listIstio(gvkPeerAuthentication, namespace)
	return l
}

func (c *cacheContext) AuthorizationPolicies(namespace string) []rules.Object {
	l, _ := c.listIstio(gvkAuthorizationPolicy, namespace)
	return l
}

// ServiceEntries implements rules.ServiceEntries: every ServiceEntry of the
// cluster, from the cache (none while the Istio networking API is not served).
func (c *cacheContext) ServiceEntries() []rules.Object {
	l, _ := c.listIstio(gvkServiceEntry, "")
	return l
}

// DestinationRules implements rules.DestinationRules: every DestinationRule
// of the cluster, from the cache (none while the Istio networking API is not
// served).
func (c *cacheContext) DestinationRules() []rules.Object {
	l, _ := c.listIstio(gvkDestinationRule, "")
	return l
}

// Pods implements rules.NamespacePods from the pod cache (trimmed by
// trimPod). Until the caches have synced the pods are unknown (readiness is
// false then); a failed read is an error.
func (c *cacheContext) Pods(namespace string) ([]rules.Object, bool) {
	l, ok, _ := c.pods(namespace)
	return l, ok
}

func (c *cacheContext) pods(namespace string) ([]rules.Object, bool, error) {
	if !c.synced.Load() {
		return nil, false, nil
	}
	var l corev1.PodList
	if err := c.reader.List(context.Background(), &l, client.InNamespace(namespace), client.UnsafeDisableDeepCopy); err != nil {
		return nil, false, c.fail("Pod", err)
	}
	out := make([]rules.Object, 0, len(l.Items))
	for i := range l.Items {
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&l.Items[i])
		if err != nil {
			return nil, false, c.fail("Pod", err)
		}
		m["apiVersion"], m["kind"] = "v1", "Pod"
		rules.JSONNumbers(m)
		out = append(out, m)
	}
	return out, true, nil
}

// trimPod drops what no rule reads from a cached pod: managed fields and all
// of the status but the phase.
func trimPod(obj any) (any, error) {
	if p, ok := obj.(*corev1.Pod); ok {
		p.ManagedFields = nil
		p.Status = corev1.PodStatus{Phase: p.Status.Phase}
	}
	return obj, nil
}
