package rules

import (
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

// KindInfo describes a kind the catalog can apply to: its group, the versions
// the API server serves for it, its plural resource name (for webhook
// registration) and where its pod template lives, if it has one.
type KindInfo struct {
	Group    string
	Kind     string
	Versions []string
	Resource string
	// Namespaced is false for cluster-scoped kinds.
	Namespaced bool
	// PodTemplate is the path of the pod template's parent: "" for a Pod,
	// "spec.template" for a Deployment. Nil when the kind carries no pod.
	PodTemplate []string
}

// GroupKind returns the kind's group and kind.
func (k KindInfo) GroupKind() schema.GroupKind { return schema.GroupKind{Group: k.Group, Kind: k.Kind} }

// HasPod reports whether the kind carries a pod spec.
func (k KindInfo) HasPod() bool { return k.PodTemplate != nil }

// knownKinds lists every kind a rule may name, with the versions served for it
// (RULES.md section 1.3; storage version first).
var knownKinds = []KindInfo{
	{Kind: "Pod", Versions: []string{"v1"}, Resource: "pods", Namespaced: true, PodTemplate: []string{}},
	{Kind: "ReplicationController", Versions: []string{"v1"}, Resource: "replicationcontrollers", Namespaced: true, PodTemplate: []string{"spec", "template"}},
	{Kind: "PodTemplate", Versions: []string{"v1"}, Resource: "podtemplates", Namespaced: true, PodTemplate: []string{"template"}},
	{Group: "apps", Kind: "Deployment", Versions: []string{"v1"}, Resource: "deployments", Namespaced: true, PodTemplate: []string{"spec", "template"}},
	{Group: "apps", Kind: "ReplicaSet", Versions: []string{"v1"}, Resource: "replicasets", Namespaced: true, PodTemplate: []string{"spec", "template"}},
	{Group: "apps", Kind: "StatefulSet", Versions: []string{"v1"}, Resource: "statefulsets", Namespaced: true, PodTemplate: []string{"spec", "template"}},
	{Group: "apps", Kind: "DaemonSet", Versions: []string{"v1"}, Resource: "daemonsets", Namespaced: true, PodTemplate: []string{"spec", "template"}},
	{Group: "batch", Kind: "Job", Versions: []string{"v1"}, Resource: "jobs", Namespaced: true, PodTemplate: []string{"spec", "template"}},
	{Group: "batch", Kind: "CronJob", Versions: []string{"v1"}, Resource: "cronjobs", Namespaced: true, PodTemplate: []string{"spec", "jobTemplate", "spec", "template"}},
	// Argo Rollouts and OpenShift's DeploymentConfig run pods from their
	// spec.template like a Deployment. A Rollout with spec.workloadRef has
	// no template: the Deployment it refers to is judged.
	{Group: "argoproj.io", Kind: "Rollout", Versions: []string{"v1alpha1"}, Resource: "rollouts", Namespaced: true, PodTemplate: []string{"spec", "template"}},
	{Group: "apps.openshift.io", Kind: "DeploymentConfig", Versions: []string{"v1"}, Resource: "deploymentconfigs", Namespaced: true, PodTemplate: []string{"spec", "template"}},
	{Kind: "Namespace", Versions: []string{"v1"}, Resource: "namespaces"},
	// A Binding reaches the webhook as the pods/binding subresource (or the
	// legacy bindings resource): the API server copies its labels and
	// annotations onto the pod.
	{Kind: "Binding", Versions: []string{"v1"}, Resource: "bindings", Namespaced: true},
	// Istio's mesh configuration and injector values (RULES.md 5.3); the
	// webhook is sent only Istio's ConfigMaps (a matchCondition).
	{Kind: "ConfigMap", Versions: []string{"v1"}, Resource: "configmaps", Namespaced: true},
	{Kind: "Service", Versions: []string{"v1"}, Resource: "services", Namespaced: true},
	// Hand-written Endpoints and EndpointSlices point a selector-less
	// Service at any pod and port (MESH0200); the controllers' own writes
	// are kept off the webhook by a matchCondition.
	{Kind: "Endpoints", Versions: []string{"v1"}, Resource: "endpoints", Namespaced: true},
	{Group: "discovery.k8s.io", Kind: "EndpointSlice", Versions: []string{"v1"}, Resource: "endpointslices", Namespaced: true},
	{Group: "networking.k8s.io", Kind: "NetworkPolicy", Versions: []string{"v1"}, Resource: "networkpolicies", Namespaced: true},
	{Group: "security.istio.io", Kind: "PeerAuthentication", Versions: []string{"v1", "v1beta1"}, Resource: "peerauthentications", Namespaced: true},
	{Group: "security.istio.io", Kind: "AuthorizationPolicy", Versions: []string{"v1", "v1beta1"}, Resource: "authorizationpolicies", Namespaced: true},
	{Group: "security.istio.io", Kind: "RequestAuthentication", Versions: []string{"v1", "v1beta1"}, Resource: "requestauthentications", Namespaced: true},
	{Group: "networking.istio.io", Kind: "DestinationRule", Versions: []string{"v1", "v1alpha3", "v1beta1"}, Resource: "destinationrules", Namespaced: true},
	{Group: "networking.istio.io", Kind: "Sidecar", Versions: []string{"v1", "v1alpha3", "v1beta1"}, Resource: "sidecars", Namespaced: true},
	{Group: "networking.istio.io", Kind: "EnvoyFilter", Versions: []string{"v1alpha3"}, Resource: "envoyfilters", Namespaced: true},
	// extensions.istio.io: v1alpha1 is the only version served by the CRDs of
	// the pinned istio.io/api module (kubernetes/customresourcedefinitions.gen.yaml).
	{Group: "extensions.istio.io", Kind: "WasmPlugin", Versions: []string{"v1alpha1"}, Resource: "wasmplugins", Namespaced: true},
	{Group: "extensions.istio.io", Kind: "TrafficExtension", Versions: []string{"v1alpha1"}, Resource: "trafficextensions", Namespaced: true},
	{Group: "networking.istio.io", Kind: "Gateway", Versions: []string{"v1", "v1alpha3", "v1beta1"}, Resource: "gateways", Namespaced: true},
	{Group: "networking.istio.io", Kind: "VirtualService", Versions: []string{"v1", "v1alpha3", "v1beta1"}, Resource: "virtualservices", Namespaced: true},
	{Group: "gateway.networking.k8s.io", Kind: "Gateway", Versions: []string{"v1", "v1beta1"}, Resource: "gateways", Namespaced: true},
	// Routes and the grants that let them reach other namespaces: read by the
	// NetworkPolicy intent (gateway-to-service allows), named by no rule.
	{Group: "gateway.networking.k8s.io", Kind: "HTTPRoute", Versions: []string{"v1", "v1beta1"}, Resource: "httproutes", Namespaced: true},
	{Group: "gateway.networking.k8s.io", Kind: "ReferenceGrant", Versions: []string{"v1beta1", "v1", "v1alpha2"}, Resource: "referencegrants", Namespaced: true},
	{Group: "networking.istio.io", Kind: "ServiceEntry", Versions: []string{"v1", "v1alpha3", "v1beta1"}, Resource: "serviceentries", Namespaced: true},
	{Group: "authentication.istio.io", Kind: "Policy", Versions: []string{"v1alpha1"}, Resource: "policies", Namespaced: true},
	{Group: "authentication.istio.io", Kind: "MeshPolicy", Versions: []string{"v1alpha1"}, Resource: "meshpolicies"},
	// The legacy RBAC API (istio/api rbac/v1alpha1, removed 2020-05-18; istiod
	// stopped reading it in Istio 1.6): judged so that config that looks like
	// protection but is ignored does not pass silently.
	{Group: "rbac.istio.io", Kind: "ClusterRbacConfig", Versions: []string{"v1alpha1"}, Resource: "clusterrbacconfigs"},
	{Group: "rbac.istio.io", Kind: "RbacConfig", Versions: []string{"v1alpha1"}, Resource: "rbacconfigs", Namespaced: true},
	{Group: "rbac.istio.io", Kind: "ServiceRole", Versions: []string{"v1alpha1"}, Resource: "serviceroles", Namespaced: true},
	{Group: "rbac.istio.io", Kind: "ServiceRoleBinding", Versions: []string{"v1alpha1"}, Resource: "servicerolebindings", Namespaced: true},
}

var kindsByGK = func() map[schema.GroupKind]*KindInfo {
	m := make(map[schema.GroupKind]*KindInfo, len(knownKinds))
	for i := range knownKinds {
		m[knownKinds[i].GroupKind()] = &knownKinds[i]
	}
	return m
}()

// LookupKind returns what meshguard knows about a group and kind.
func LookupKind(gk schema.GroupKind) (KindInfo, bool) {
	k, ok := kindsByGK[gk]
	if !ok {
		return KindInfo{}, false
	}
	return *k, true
}

// PodTemplateKinds returns every known kind that carries a pod spec.
func PodTemplateKinds() []KindInfo {
	var out []KindInfo
	for _, k := range knownKinds {
		if k.HasPod() {
			out = append(out, k)
		}
	}
	return out
}

// parseKindRef parses a kind reference as written in a rule's
// meshguard.io/kinds annotation: "Kind" for the core group or "group/Kind".
// The special reference "workloads" names every pod-template kind.
func parseKindRefs(s string) ([]schema.GroupKind, error) {
	var out []schema.GroupKind
	seen := map[schema.GroupKind]bool{}
	for _, raw := range strings.Split(s, ",") {
		ref := strings.TrimSpace(raw)
		if ref == "" {
			continue
		}
		var gks []schema.GroupKind
		if ref == "workloads" {
			for _, k := range PodTemplateKinds() {
				gks = append(gks, k.GroupKind())
			}
		} else {
			gk := schema.GroupKind{Kind: ref}
			if i := strings.LastIndex(ref, "/"); i >= 0 {
				gk = schema.GroupKind{Group: ref[:i], Kind: ref[i+1:]}
			}
			if _, ok := kindsByGK[gk]; !ok {
				return nil, fmt.Errorf("unknown kind %q (known: %s)", ref, strings.Join(knownKindNames(), ", "))
			}
			gks = []schema.GroupKind{gk}
		}
		for _, gk := range gks {
			if !seen[gk] {
				seen[gk] = true
				out = append(out, gk)
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no kinds listed")
	}
	return out, nil
}

func knownKindNames() []string {
	var names []string
	for _, k := range knownKinds {
		if k.Group == "" {
			names = append(names, k.Kind)
		} else {
			names = append(names, k.Group+"/"+k.Kind)
		}
	}
	sort.Strings(names)
	return names
}
