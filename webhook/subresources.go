package webhook

import (
	"sort"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"

	"github.com/meshguard/meshguard/rules"
)

// Subresources and what they can change, checked against kube-apiserver
// 1.36's registry strategies (pkg/registry/.../strategy.go):
//
//   - status: every status strategy resets the spec but keeps the object's
//     labels and annotations (Deployment's keeps annotations only), so a
//     pods/status or namespaces/status patch can set istio.io/dataplane-mode,
//     meshguard.io/mode or remove istio-injection without a normal UPDATE.
//     Judged, with the labels and annotations as the only change.
//   - namespaces/finalize: resets status only; labels, annotations and the
//     rest of the namespace can change. Judged.
//   - pods/binding (and the legacy bindings resource): the API server copies
//     the Binding's annotations (and labels) onto the pod without admitting
//     a Pod UPDATE. Judged as a Binding (MESH0117).
//   - pods/ephemeralcontainers: adds containers. Judged.
//   - */scale: the Scale object carries replicas only. pods/resize keeps
//     only container resources. pods/eviction, exec, attach, portforward,
//     proxy and log change no object. Custom resources' status (Istio's
//     kinds) reset everything but status. None of them can change what the
//     rules read, so none is registered.

// judgedSubresources are the subresources the validator judges; requests for
// any other subresource are allowed without evaluation.
var judgedSubresources = map[string]bool{"": true, "ephemeralcontainers": true, "status": true, "finalize": true, "binding": true}

// JudgedSubresource reports whether the validator judges requests for a
// subresource ("" is the object itself).
func JudgedSubresource(sub string) bool { return judgedSubresources[sub] }

// metadataOnlySubresource reports a subresource whose updates can change an
// object's labels and annotations but nothing else a rule reads.
func metadataOnlySubresource(sub string) bool { return sub == "status" || sub == "finalize" }

// statusKinds are the catalog kinds with a status subresource through which
// labels or annotations can change.
var statusKinds = map[string]bool{
	"Pod": true, "ReplicationController": true, "Deployment": true, "ReplicaSet": true, "StatefulSet": true,
	"DaemonSet": true, "Job": true, "CronJob": true, "Namespace": true, "Service": true,
}

// subresourceRules lists, per API group, the subresources the
// subresources.meshguard.io webhook receives for the catalog's kinds.
func subresourceRules(cat *rules.Catalog) []admissionregistrationv1.RuleWithOperations {
	byGroup := map[string][]string{}
	versions := map[string][]string{}
	for _, k := range cat.Kinds() {
		switch {
		case k.Kind == "Binding" && k.Group == "":
			byGroup[""] = append(byGroup[""], "bindings", "pods/binding")
		case statusKinds[k.Kind]:
			byGroup[k.Group] = append(byGroup[k.Group], k.Resource+"/status")
			if k.Kind == "Namespace" {
				byGroup[k.Group] = append(byGroup[k.Group], "namespaces/finalize")
			}
		default:
			continue
		}
		versions[k.Group] = k.Versions
	}
	groups := make([]string, 0, len(byGroup))
	for g := range byGroup {
		groups = append(groups, g)
	}
	sort.Strings(groups)
	scope := admissionregistrationv1.AllScopes
	var out []admissionregistrationv1.RuleWithOperations
	for _, g := range groups {
		res := byGroup[g]
		sort.Strings(res)
		vers := append([]string(nil), versions[g]...)
		sort.Strings(vers)
		out = append(out, admissionregistrationv1.RuleWithOperations{
			Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
			Rule:       admissionregistrationv1.Rule{APIGroups: []string{g}, APIVersions: vers, Resources: res, Scope: &scope},
		})
	}
	return out
}

// subresourceMatchConditions keep the kubelet's and the scheduler's constant
// status updates and bindings away from the webhook: only an UPDATE that
// changes labels or annotations, or a Binding that carries annotations or
// labels other than the topology labels the API server's PodTopologyLabels
// admission adds, is sent. (A call never made costs nothing and cannot fail.)
var subresourceMatchConditions = []admissionregistrationv1.MatchCondition{{
	Name: "changes-labels-or-annotations",
	Expression: "request.operation == 'CREATE' ? " +
		"(has(object.metadata.annotations) && size(object.metadata.annotations) > 0) || " +
		"(has(object.metadata.labels) && object.metadata.labels.exists(k, !k.startsWith('topology.kubernetes.io/') && !k.startsWith('topology.k8s.io/'))) : " +
		"(has(object.metadata.labels) ? object.metadata.labels : {}) != (has(oldObject.metadata.labels) ? oldObject.metadata.labels : {}) || " +
		"(has(object.metadata.annotations) ? object.metadata.annotations : {}) != (has(oldObject.metadata.annotations) ? oldObject.metadata.annotations : {})",
}}
