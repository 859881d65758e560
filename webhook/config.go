package webhook

import (
	"sort"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshguard/meshguard/rules"
)

// ConfigOptions shape the webhook configurations meshguard registers.
type ConfigOptions struct {
	// Name of both configurations. Default "meshguard".
	Name string
	// Service reaches the webhook inside the cluster; URL is used when Service is nil.
	Service *admissionregistrationv1.ServiceReference
	URL     string
	// CABundle is the PEM CA that signed the serving certificate.
	CABundle []byte
	// FailurePolicy is Fail (default: a guard that is down blocks instead of
	// letting weakening changes through) or Ignore.
	FailurePolicy admissionregistrationv1.FailurePolicyType
	// TimeoutSeconds per call. Default 5.
	TimeoutSeconds int32
	// ExcludeNamespaces are never sent to the workload webhook (the system
	// namespaces and meshguard's own), matched by kubernetes.io/metadata.name.
	ExcludeNamespaces []string
	// Enroll registers the namespace-enrollment mutating webhook.
	Enroll bool
	// JudgeUnchangedUpdates sends every UPDATE to meshguard. By default
	// (false) a matchCondition skips an UPDATE that changes none of what the
	// rules read (spec, a PodTemplate's template, labels, annotations): finalizer,
	// owner-reference and managed-field writes, such as garbage collection of
	// an object being deleted, never wait on meshguard.
	JudgeUnchangedUpdates bool
	// JudgeOwnedWorkloads sends ReplicaSets controlled by a Deployment or a
	// Rollout, Jobs controlled by a CronJob and ReplicationControllers
	// controlled by a DeploymentConfig to meshguard. By default (false) they are
	// skipped: the owner was judged, and every Pod they create is judged at
	// CREATE after injection, so a forged owner reference gets nothing past
	// meshguard that reaches a running pod.
	JudgeOwnedWorkloads bool
	// ProtectNetworkPolicies adds the netpol-guard webhook: UPDATE and DELETE
	// of NetworkPolicies labelled meshguard.io/managed=true (an objectSelector
	// matches when the old or the new object carries the label), for MESH0215.
	ProtectNetworkPolicies bool
}

func (o *ConfigOptions) defaults() {
	if o.Name == "" {
		o.Name = "meshguard"
	}
	if o.FailurePolicy == "" {
		o.FailurePolicy = admissionregistrationv1.Fail
	}
	if o.TimeoutSeconds == 0 {
		o.TimeoutSeconds = 5
	}
}

func (o *ConfigOptions) clientConfig(path string) admissionregistrationv1.WebhookClientConfig {
	cc := admissionregistrationv1.WebhookClientConfig{CABundle: o.CABundle}
	if o.Service != nil {
		s := *o.Service
		s.Path = &path
		cc.Service = &s
	} else {
		u := o.URL + path
		cc.URL = &u
	}
	return cc
}

// ValidatingConfiguration returns the ValidatingWebhookConfiguration for every
// kind the catalog covers, in every served version, plus pods/ephemeralcontainers
// (so `kubectl debug` cannot add a privileged container to a meshed pod) and
// the status, finalize and binding subresources through which labels and
// annotations change (a webhook of their own whose matchConditions send only
// the requests that change them). Istio
// configuration is judged in every namespace (istio-system is the root
// namespace); workloads, Services, NetworkPolicies and Namespaces skip the
// excluded namespaces.
func ValidatingConfiguration(cat *rules.Catalog, o ConfigOptions) *admissionregistrationv1.ValidatingWebhookConfiguration {
	o.defaults()
	var workload, istio []admissionregistrationv1.RuleWithOperations
	byGroup := map[string]map[string][]string{} // group -> resource -> versions
	istioGroups := map[string]bool{}
	for _, k := range cat.Kinds() {
		if k.Kind == "Binding" && k.Group == "" {
			// Bindings are subresource requests (pods/binding): the
			// subresources webhook receives them.
			continue
		}
		if byGroup[k.Group] == nil {
			byGroup[k.Group] = map[string][]string{}
		}
		byGroup[k.Group][k.Resource] = k.Versions
		if k.Group != "" && k.Group != "apps" && k.Group != "batch" && k.Group != "networking.k8s.io" && k.Group != "discovery.k8s.io" && !k.HasPod() {
			istioGroups[k.Group] = true
		}
		if k.Kind == "Pod" {
			byGroup[k.Group]["pods/ephemeralcontainers"] = k.Versions
		}
	}
	groups := make([]string, 0, len(byGroup))
	for g := range byGroup {
		groups = append(groups, g)
	}
	sort.Strings(groups)
	ops := []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update}
	scope := admissionregistrationv1.AllScopes
	for _, g := range groups {
		// One rule per distinct version set keeps the registration exact.
		byVersions := map[string][]string{}
		verOf := map[string][]string{}
		for res, vers := range byGroup[g] {
			key := joinSorted(vers)
			byVersions[key] = append(byVersions[key], res)
			verOf[key] = vers
		}
		keys := make([]string, 0, len(byVersions))
		for k := range byVersions {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, key := range keys {
			res := byVersions[key]
			sort.Strings(res)
			vers := append([]string(nil), verOf[key]...)
			sort.Strings(vers)
			r := admissionregistrationv1.RuleWithOperations{
				Operations: ops,
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{g}, APIVersions: vers, Resources: res, Scope: &scope},
			}
			if istioGroups[g] {
				istio = append(istio, r)
			} else {
				workload = append(workload, r)
			}
		}
	}
	// NoneOnDryRun: with --admission-events a decision records an Event, but
	// never for a dry run (events.go).
	none := admissionregistrationv1.SideEffectClassNoneOnDryRun
	equivalent := admissionregistrationv1.Equivalent
	fp := o.FailurePolicy
	timeout := o.TimeoutSeconds
	exclude := &metav1.LabelSelector{}
	if len(o.ExcludeNamespaces) > 0 {
		ex := append([]string(nil), o.ExcludeNamespaces...)
		sort.Strings(ex)
		exclude.MatchExpressions = []metav1.LabelSelectorRequirement{{
			Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: ex,
		}}
	}
	hook := func(name string, rs []admissionregistrationv1.RuleWithOperations, sel *metav1.LabelSelector) admissionregistrationv1.ValidatingWebhook {
		return admissionregistrationv1.ValidatingWebhook{
			Name:                    name,
			ClientConfig:            o.clientConfig(ValidatePath),
			Rules:                   rs,
			FailurePolicy:           &fp,
			MatchPolicy:             &equivalent,
			NamespaceSelector:       sel,
			SideEffects:             &none,
			TimeoutSeconds:          &timeout,
			AdmissionReviewVersions: []string{"v1"},
		}
	}
	whs := []admissionregistrationv1.ValidatingWebhook{
		hook("workloads.meshguard.io", workload, exclude),
		hook("istio-config.meshguard.io", istio, &metav1.LabelSelector{}),
	}
	if !o.JudgeUnchangedUpdates {
		for i := range whs {
			whs[i].MatchConditions = append(whs[i].MatchConditions, MatchChangesWhatRulesRead)
		}
	}
	if !o.JudgeOwnedWorkloads {
		whs[0].MatchConditions = append(whs[0].MatchConditions, MatchNotOwnedWorkload)
	}
	whs[0].MatchConditions = append(whs[0].MatchConditions, MatchNotEndpointController, MatchIstioConfigMaps)
	if sub := subresourceRules(cat); len(sub) > 0 {
		// Status, finalize and binding requests that can change labels and
		// annotations (see subresources.go), only when they do.
		h := hook("subresources.meshguard.io", sub, exclude)
		h.MatchConditions = append([]admissionregistrationv1.MatchCondition(nil), subresourceMatchConditions...)
		whs = append(whs, h)
	}
	if o.ProtectNetworkPolicies {
		nsScope := admissionregistrationv1.NamespacedScope
		guard := hook("netpol-guard.meshguard.io", []admissionregistrationv1.RuleWithOperations{{
			Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Update, admissionregistrationv1.Delete},
			Rule:       admissionregistrationv1.Rule{APIGroups: []string{"networking.k8s.io"}, APIVersions: []string{"v1"}, Resources: []string{"networkpolicies"}, Scope: &nsScope},
		}}, exclude)
		guard.ObjectSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"meshguard.io/managed": "true"}}
		whs = append(whs, guard)
	}
	if judgesKind(cat, "security.istio.io", "AuthorizationPolicy") {
		// DELETE (and UPDATE) of meshguard's managed AuthorizationPolicies
		// (MESH0025): a quarantine's DENY, an allow-nothing baseline. Only
		// labelled policies reach it, so it costs nothing otherwise.
		nsScope := admissionregistrationv1.NamespacedScope
		guard := hook("authz-guard.meshguard.io", []admissionregistrationv1.RuleWithOperations{{
			Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Update, admissionregistrationv1.Delete},
			Rule:       admissionregistrationv1.Rule{APIGroups: []string{"security.istio.io"}, APIVersions: []string{"v1", "v1beta1"}, Resources: []string{"authorizationpolicies"}, Scope: &nsScope},
		}}, exclude)
		guard.ObjectSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"meshguard.io/managed": "true"}}
		whs = append(whs, guard)
	}
	return &admissionregistrationv1.ValidatingWebhookConfiguration{
		TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "ValidatingWebhookConfiguration"},
		ObjectMeta: metav1.ObjectMeta{Name: o.Name, Labels: map[string]string{"app.kubernetes.io/name": "meshguard"}},
		Webhooks:   whs,
	}
}

// MutatingConfiguration returns the namespace-enrollment webhook configuration.
func MutatingConfiguration(o ConfigOptions) *admissionregistrationv1.MutatingWebhookConfiguration {
	o.defaults()
	none := admissionregistrationv1.SideEffectClassNone
	equivalent := admissionregistrationv1.Equivalent
	// Enrollment is a convenience: a guard that is down must not block namespace creation.
	fp := admissionregistrationv1.Ignore
	timeout := o.TimeoutSeconds
	never := admissionregistrationv1.NeverReinvocationPolicy
	scope := admissionregistrationv1.ClusterScope
	sel := &metav1.LabelSelector{}
	if len(o.ExcludeNamespaces) > 0 {
		ex := append([]string(nil), o.ExcludeNamespaces...)
		sort.Strings(ex)
		sel.MatchExpressions = []metav1.LabelSelectorRequirement{{Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: ex}}
	}
	return &admissionregistrationv1.MutatingWebhookConfiguration{
		TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "MutatingWebhookConfiguration"},
		ObjectMeta: metav1.ObjectMeta{Name: o.Name, Labels: map[string]string{"app.kubernetes.io/name": "meshguard"}},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:         "enroll-namespaces.meshguard.io",
			ClientConfig: o.clientConfig(MutatePath),
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"namespaces"}, Scope: &scope},
			}},
			FailurePolicy:           &fp,
			MatchPolicy:             &equivalent,
			NamespaceSelector:       sel,
			SideEffects:             &none,
			TimeoutSeconds:          &timeout,
			ReinvocationPolicy:      &never,
			AdmissionReviewVersions: []string{"v1"},
		}},
	}
}

func joinSorted(s []string) string {
	c := append([]string(nil), s...)
	sort.Strings(c)
	out := ""
	for i, v := range c {
		if i > 0 {
			out += ","
		}
		out += v
	}
	return out
}

// MatchChangesWhatRulesRead skips UPDATEs that change nothing a rule reads:
// every kind the catalog covers keeps what its rules read in spec (a
// PodTemplate in template, Endpoints in subsets, an EndpointSlice in ports and endpoints (its
// addresses), a
// ConfigMap in data), labels and annotations (TestRulesReadOnlyMatchedFields
// keeps it so). Metadata bookkeeping (finalizers, owner references, managed
// fields) and status are not read.
var MatchChangesWhatRulesRead = admissionregistrationv1.MatchCondition{
	Name: "changes-what-rules-read",
	Expression: "request.operation != 'UPDATE' || " +
		"(has(object.spec) ? object.spec : {}) != (has(oldObject.spec) ? oldObject.spec : {}) || " +
		"(has(object.template) ? object.template : {}) != (has(oldObject.template) ? oldObject.template : {}) || " +
		"(has(object.subsets) ? object.subsets : []) != (has(oldObject.subsets) ? oldObject.subsets : []) || " +
		"(has(object.ports) ? object.ports : []) != (has(oldObject.ports) ? oldObject.ports : []) || " +
		"(has(object.endpoints) ? object.endpoints : []) != (has(oldObject.endpoints) ? oldObject.endpoints : []) || " +
		"(has(object.data) ? object.data : {}) != (has(oldObject.data) ? oldObject.data : {}) || " +
		"(has(object.metadata.labels) ? object.metadata.labels : {}) != (has(oldObject.metadata.labels) ? oldObject.metadata.labels : {}) || " +
		"(has(object.metadata.annotations) ? object.metadata.annotations : {}) != (has(oldObject.metadata.annotations) ? oldObject.metadata.annotations : {})",
}

// MatchNotEndpointController keeps Kubernetes' own endpoint controllers'
// writes of Endpoints and EndpointSlices off the webhook: they follow a
// Service's selector (judged on the Service) and are frequent. Only
// hand-written ones are judged (MESH0200).
var MatchNotEndpointController = admissionregistrationv1.MatchCondition{
	Name: "not-endpoint-controller",
	Expression: "!(request.resource.resource in ['endpoints', 'endpointslices'] && request.userInfo.username in [" +
		quotedCEL(rules.EndpointControllers()) + "])",
}

// MatchIstioConfigMaps sends only Istio's ConfigMaps: the mesh
// configuration (istio, istio-<rev>: those with a mesh key) and the injector's
// (istio-sidecar-injector[-<rev>]). ConfigMaps are written often and by
// everything; Istio's root certificate (istio-ca-root-cert, in every
// namespace) has no mesh key.
var MatchIstioConfigMaps = admissionregistrationv1.MatchCondition{
	Name: "istio-configmaps-only",
	Expression: "request.resource.resource != 'configmaps' || object.metadata.name == 'istio' || " +
		"object.metadata.name.startsWith('istio-sidecar-injector') || " +
		"(object.metadata.name.startsWith('istio-') && has(object.data) && 'mesh' in object.data)",
}

// quotedCEL renders strings as a CEL list's elements.
func quotedCEL(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = "'" + s + "'"
	}
	return strings.Join(q, ", ")
}

// MatchNotOwnedWorkload skips ReplicaSets controlled by a Deployment or an Argo
// Rollout, Jobs controlled by a CronJob and ReplicationControllers controlled
// by an OpenShift DeploymentConfig: their owner was judged, and their pods are
// judged when they are created.
var MatchNotOwnedWorkload = admissionregistrationv1.MatchCondition{
	Name: "not-owned-workload",
	Expression: "!((request.kind.group == 'apps' && request.kind.kind == 'ReplicaSet' || request.kind.group == 'batch' && request.kind.kind == 'Job' || " +
		"request.kind.group == '' && request.kind.kind == 'ReplicationController') && " +
		"has(object.metadata.ownerReferences) && object.metadata.ownerReferences.exists(r, has(r.controller) && r.controller && " +
		"(request.kind.kind == 'ReplicaSet' && (r.kind == 'Deployment' && r.apiVersion.startsWith('apps/') || r.kind == 'Rollout' && r.apiVersion.startsWith('argoproj.io/')) || " +
		"request.kind.kind == 'Job' && r.kind == 'CronJob' && r.apiVersion.startsWith('batch/') || " +
		"request.kind.kind == 'ReplicationController' && r.kind == 'DeploymentConfig' && r.apiVersion.startsWith('apps.openshift.io/'))))",
}

// judgesKind reports whether some catalog rule judges the kind.
func judgesKind(cat *rules.Catalog, group, kind string) bool {
	for _, k := range cat.Kinds() {
		if k.Group == group && k.Kind == kind {
			return true
		}
	}
	return false
}
