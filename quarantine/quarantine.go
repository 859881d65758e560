// Package quarantine cuts a compromised workload off at both layers at once
// (`meshguard quarantine`) and reverses it exactly (`meshguard release`).
//
// A quarantine of workload W (ID "<kind>-<name>", lower case):
//
//   - labels W, its pod template and its running pods
//     meshguard.io/quarantined=ID, and records who, when and why on W
//     (meshguard.io/quarantine-by, -at, -reason);
//   - creates the AuthorizationPolicy meshguard-quarantine-ID (DENY, one
//     empty rule: every request to the selected pods' proxies is refused; a
//     DENY wins over every ALLOW) and the NetworkPolicy meshguard-quarantine-ID
//     (Ingress and Egress, no rule: no traffic in or out at L3/4), both
//     selecting the label, labelled meshguard.io/managed=true (MESH0025 and
//     MESH0215 keep tenants from removing them) and meshguard.io/quarantine=ID
//     (the default-deny controller leaves them alone);
//   - meshguard's managed allow policies already exclude pods with the label
//     (webhook/netpol.ExcludeQuarantined); every other NetworkPolicy that
//     still admits traffic to or from the pods is reported, since
//     NetworkPolicies are additive and a deny-all cannot override them;
//   - records a Warning Event on W.
//
// MESH0108 keeps non-admins from removing the label or the record. Release
// removes exactly what the quarantine added, so W and its pods are what they
// were before, byte for byte (their status and server-set fields aside).
package quarantine

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/meshguard/meshguard/webhook/netpol"
)

// Keys written on the quarantined objects.
const (
	LabelQuarantined = netpol.LabelQuarantined
	LabelQuarantine  = netpol.LabelQuarantine
	AnnotationBy     = "meshguard.io/quarantine-by"
	AnnotationAt     = "meshguard.io/quarantine-at"
	AnnotationReason = "meshguard.io/quarantine-reason"
	// PolicyPrefix names the quarantine's AuthorizationPolicy and NetworkPolicy.
	PolicyPrefix = "meshguard-quarantine-"
	// ReasonQuarantined and ReasonReleased are the Events' reasons.
	ReasonQuarantined = "MeshguardQuarantined"
	ReasonReleased    = "MeshguardReleased"
)

// kinds are the workloads that can be quarantined, by the names kubectl
// users type.
var kinds = map[string]schema.GroupVersionResource{
	"deployment":  {Group: "apps", Version: "v1", Resource: "deployments"},
	"statefulset": {Group: "apps", Version: "v1", Resource: "statefulsets"},
	"daemonset":   {Group: "apps", Version: "v1", Resource: "daemonsets"},
	"replicaset":  {Group: "apps", Version: "v1", Resource: "replicasets"},
	"pod":         {Version: "v1", Resource: "pods"},
}

var aliases = map[string]string{
	"deploy": "deployment", "deployments": "deployment", "deployment.apps": "deployment",
	"sts": "statefulset", "statefulsets": "statefulset", "statefulset.apps": "statefulset",
	"ds": "daemonset", "daemonsets": "daemonset", "daemonset.apps": "daemonset",
	"rs": "replicaset", "replicasets": "replicaset", "replicaset.apps": "replicaset",
	"po": "pod", "pods": "pod",
}

var (
	gvrAuthz = schema.GroupVersionResource{Group: "security.istio.io", Version: "v1", Resource: "authorizationpolicies"}
	gvrNS    = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
)

// Target is the workload to quarantine: Kind is one of deployment,
// statefulset, daemonset, replicaset, pod.
type Target struct {
	Kind, Namespace, Name string
}

// ParseTarget reads "kind/name" as kubectl spells it.
func ParseTarget(s, namespace string) (Target, error) {
	kind, name, ok := strings.Cut(s, "/")
	if !ok || kind == "" || name == "" {
		return Target{}, fmt.Errorf("%q: want KIND/NAME, for example deployment/cart", s)
	}
	kind = strings.ToLower(kind)
	if a, ok := aliases[kind]; ok {
		kind = a
	}
	if _, ok := kinds[kind]; !ok {
		return Target{}, fmt.Errorf("%q: cannot quarantine a %s (want deployment, statefulset, daemonset, replicaset or pod)", s, kind)
	}
	if namespace == "" {
		return Target{}, fmt.Errorf("-n/--namespace is required")
	}
	return Target{Kind: kind, Namespace: namespace, Name: name}, nil
}

func (t Target) String() string { return t.Kind + "/" + t.Name + " in namespace " + t.Namespace }

// ID is the quarantine's ID: "<kind>-<name>", or, when that is longer than
// a label value's 63 characters, its first 52 characters and 10 hex digits
// of its SHA-256, so two long names never share an ID.
func (t Target) ID() string { return netpol.BoundedName(t.Kind+"-"+t.Name, 63) }

// Options of a quarantine or release.
type Options struct {
	// Reason is why (required for a quarantine).
	Reason string
	// Actor is who, as the API server knows them (SelfSubjectReview).
	Actor string
	// DryRun computes and reports the changes without making them.
	DryRun bool
	// Now stamps the record; zero is time.Now().
	Now time.Time
}

// Clients are the API clients a quarantine uses.
type Clients struct {
	Kube    kubernetes.Interface
	Dynamic dynamic.Interface
}

// Result says what a quarantine or release changed (or would change, in a
// dry run) and what it can and cannot guarantee.
type Result struct {
	Target  Target   `json:"target"`
	ID      string   `json:"id"`
	DryRun  bool     `json:"dryRun"`
	Changes []string `json:"changes"`
	// StillAdmitting are NetworkPolicies (not meshguard's) that still admit
	// traffic to or from the quarantined pods.
	StillAdmitting []string `json:"stillAdmitting,omitempty"`
	// Guarantees and Limits say what holds and what does not.
	Guarantees []string `json:"guarantees,omitempty"`
	Limits     []string `json:"limits,omitempty"`
}

// Quarantine isolates the target.
func Quarantine(ctx context.Context, c Clients, t Target, o Options) (*Result, error) {
	if strings.TrimSpace(o.Reason) == "" {
		return nil, fmt.Errorf("--reason is required: say why the workload is quarantined")
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	res := &Result{Target: t, ID: t.ID(), DryRun: o.DryRun}
	w, err := c.Dynamic.Resource(kinds[t.Kind]).Namespace(t.Namespace).Get(ctx, t.Name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", t, err)
	}
	if v := w.GetLabels()[LabelQuarantined]; v != "" {
		return nil, fmt.Errorf("%s is already quarantined (%s=%s); `meshguard release` it first", t, LabelQuarantined, v)
	}
	podLabels, selector, err := podIdentity(w, t.Kind)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", t, err)
	}
	id := res.ID

	// 1. The workload: label, record, and the pod template's label.
	patch := map[string]any{"metadata": map[string]any{
		"labels":      map[string]any{LabelQuarantined: id},
		"annotations": map[string]any{AnnotationBy: o.Actor, AnnotationAt: o.Now.UTC().Format(time.RFC3339), AnnotationReason: o.Reason},
	}}
	what := fmt.Sprintf("label %s %s=%s and record who, when and why", t, LabelQuarantined, id)
	if t.Kind != "pod" {
		patch["spec"] = map[string]any{"template": map[string]any{"metadata": map[string]any{"labels": map[string]any{LabelQuarantined: id}}}}
		what += "; label its pod template (new pods start quarantined)"
	}
	res.Changes = append(res.Changes, what)
	// 2. The running pods (a quarantined Pod is the workload itself).
	var podNames []string
	if t.Kind != "pod" {
		pods, err := c.Kube.CoreV1().Pods(t.Namespace).List(ctx, metav1.ListOptions{LabelSelector: selector.String()})
		if err != nil {
			return nil, fmt.Errorf("list the pods of %s: %w", t, err)
		}
		for _, p := range pods.Items {
			if ownedBy(ctx, c, t.Namespace, p.OwnerReferences, w.GetUID(), t.Kind) {
				podNames = append(podNames, p.Name)
			}
		}
	}
	sort.Strings(podNames)
	if len(podNames) > 0 {
		res.Changes = append(res.Changes, fmt.Sprintf("label its running pods %s=%s: %s", LabelQuarantined, id, strings.Join(podNames, ", ")))
	}
	// 3. The policies.
	ap := authorizationPolicy(t, id, o)
	np := networkPolicy(t, id, o)
	res.Changes = append(res.Changes,
		fmt.Sprintf("create AuthorizationPolicy %s/%s: DENY every request to pods labelled %s=%s", t.Namespace, ap.GetName(), LabelQuarantined, id),
		fmt.Sprintf("create NetworkPolicy %s/%s: no ingress and no egress for those pods", t.Namespace, np.Name))

	sel := labels.Merge(podLabels, labels.Set{LabelQuarantined: id})
	if res.StillAdmitting, err = stillAdmitting(ctx, c, t.Namespace, sel); err != nil {
		return nil, err
	}
	if err := guarantees(ctx, c, t, w, res); err != nil {
		return nil, err
	}
	if o.DryRun {
		return res, nil
	}

	if _, err := c.Dynamic.Resource(gvrAuthz).Namespace(t.Namespace).Create(ctx, ap, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("create AuthorizationPolicy %s (is Istio's security API installed?): %w", ap.GetName(), err)
	}
	if _, err := c.Kube.NetworkingV1().NetworkPolicies(t.Namespace).Create(ctx, np, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("create NetworkPolicy %s: %w", np.Name, err)
	}
	body, _ := json.Marshal(patch)
	if _, err := c.Dynamic.Resource(kinds[t.Kind]).Namespace(t.Namespace).Patch(ctx, t.Name, types.MergePatchType, body, metav1.PatchOptions{}); err != nil {
		return nil, fmt.Errorf("label %s: %w", t, err)
	}
	podPatch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]any{LabelQuarantined: id}}})
	for _, p := range podNames {
		if _, err := c.Kube.CoreV1().Pods(t.Namespace).Patch(ctx, p, types.MergePatchType, podPatch, metav1.PatchOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("label pod %s: %w", p, err)
		}
	}
	event(ctx, c, t, w, corev1.EventTypeWarning, ReasonQuarantined, fmt.Sprintf("quarantined by %s: %s", o.Actor, o.Reason))
	return res, nil
}

// Release lifts the target's quarantine, removing exactly what Quarantine added.
func Release(ctx context.Context, c Clients, t Target, o Options) (*Result, error) {
	res := &Result{Target: t, ID: t.ID(), DryRun: o.DryRun}
	w, err := c.Dynamic.Resource(kinds[t.Kind]).Namespace(t.Namespace).Get(ctx, t.Name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", t, err)
	}
	id := w.GetLabels()[LabelQuarantined]
	if id == "" {
		return nil, fmt.Errorf("%s is not quarantined (no label %s)", t, LabelQuarantined)
	}
	res.ID = id
	remove := map[string]any{"metadata": map[string]any{
		"labels":      map[string]any{LabelQuarantined: nil},
		"annotations": map[string]any{AnnotationBy: nil, AnnotationAt: nil, AnnotationReason: nil},
	}}
	if t.Kind != "pod" {
		remove["spec"] = map[string]any{"template": map[string]any{"metadata": map[string]any{"labels": map[string]any{LabelQuarantined: nil}}}}
	}
	res.Changes = append(res.Changes, fmt.Sprintf("remove the quarantine label and record from %s", t))
	pods, err := c.Kube.CoreV1().Pods(t.Namespace).List(ctx, metav1.ListOptions{LabelSelector: LabelQuarantined + "=" + id})
	if err != nil {
		return nil, fmt.Errorf("list the quarantined pods: %w", err)
	}
	var podNames []string
	for _, p := range pods.Items {
		if t.Kind == "pod" && p.Name == t.Name {
			continue
		}
		podNames = append(podNames, p.Name)
	}
	if len(podNames) > 0 {
		res.Changes = append(res.Changes, "remove the quarantine label from pods "+strings.Join(podNames, ", "))
	}
	name := PolicyPrefix + id
	res.Changes = append(res.Changes, fmt.Sprintf("delete AuthorizationPolicy %s/%s and NetworkPolicy %s/%s", t.Namespace, name, t.Namespace, name))
	if o.DryRun {
		return res, nil
	}
	// Reconnect in the reverse order: the pods lose the label before the
	// policies go, so no pod is ever both labelled and unprotected.
	podPatch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]any{LabelQuarantined: nil}}})
	for _, p := range podNames {
		if _, err := c.Kube.CoreV1().Pods(t.Namespace).Patch(ctx, p, types.MergePatchType, podPatch, metav1.PatchOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("unlabel pod %s: %w", p, err)
		}
	}
	body, _ := json.Marshal(remove)
	if _, err := c.Dynamic.Resource(kinds[t.Kind]).Namespace(t.Namespace).Patch(ctx, t.Name, types.MergePatchType, body, metav1.PatchOptions{}); err != nil {
		return nil, fmt.Errorf("unlabel %s: %w", t, err)
	}
	if err := c.Dynamic.Resource(gvrAuthz).Namespace(t.Namespace).Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("delete AuthorizationPolicy %s: %w", name, err)
	}
	if err := c.Kube.NetworkingV1().NetworkPolicies(t.Namespace).Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("delete NetworkPolicy %s: %w", name, err)
	}
	event(ctx, c, t, w, corev1.EventTypeNormal, ReasonReleased, "quarantine released by "+o.Actor)
	return res, nil
}

// podIdentity returns the labels of the target's pods (its template's, or
// the pod's own) and the selector that finds them.
func podIdentity(w *unstructured.Unstructured, kind string) (labels.Set, labels.Selector, error) {
	if kind == "pod" {
		return labels.Set(w.GetLabels()), labels.Nothing(), nil
	}
	tl, _, err := unstructured.NestedStringMap(w.Object, "spec", "template", "metadata", "labels")
	if err != nil {
		return nil, nil, fmt.Errorf("spec.template.metadata.labels: %w", err)
	}
	raw, ok, err := unstructured.NestedMap(w.Object, "spec", "selector")
	if err != nil || !ok {
		return nil, nil, fmt.Errorf("spec.selector: missing or malformed")
	}
	var ls metav1.LabelSelector
	b, _ := json.Marshal(raw)
	if err := json.Unmarshal(b, &ls); err != nil {
		return nil, nil, fmt.Errorf("spec.selector: %w", err)
	}
	sel, err := metav1.LabelSelectorAsSelector(&ls)
	if err != nil {
		return nil, nil, fmt.Errorf("spec.selector: %w", err)
	}
	return labels.Set(tl), sel, nil
}

// ownedBy reports whether a pod belongs to the workload: owned by it, or by
// a ReplicaSet it owns (a Deployment's).
func ownedBy(ctx context.Context, c Clients, ns string, refs []metav1.OwnerReference, uid types.UID, kind string) bool {
	for _, r := range refs {
		if r.UID == uid {
			return true
		}
		if kind == "deployment" && r.Kind == "ReplicaSet" {
			rs, err := c.Kube.AppsV1().ReplicaSets(ns).Get(ctx, r.Name, metav1.GetOptions{})
			if err == nil {
				for _, o := range rs.OwnerReferences {
					if o.UID == uid {
						return true
					}
				}
			}
		}
	}
	return false
}

func policyMeta(t Target, id string, o Options) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name: PolicyPrefix + id, Namespace: t.Namespace,
		Labels: map[string]string{netpol.LabelManaged: "true", netpol.LabelManagedBy: "meshguard", LabelQuarantine: id},
		Annotations: map[string]string{AnnotationBy: o.Actor, AnnotationAt: o.Now.UTC().Format(time.RFC3339), AnnotationReason: o.Reason,
			"meshguard.io/quarantine-target": t.Kind + "/" + t.Name},
	}
}

func authorizationPolicy(t Target, id string, o Options) *unstructured.Unstructured {
	m := policyMeta(t, id, o)
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
		"spec": map[string]any{
			"selector": map[string]any{"matchLabels": map[string]any{LabelQuarantined: id}},
			"action":   "DENY",
			"rules":    []any{map[string]any{}},
		},
	}}
	u.SetName(m.Name)
	u.SetNamespace(m.Namespace)
	u.SetLabels(m.Labels)
	u.SetAnnotations(m.Annotations)
	return u
}

func networkPolicy(t Target, id string, o Options) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		ObjectMeta: policyMeta(t, id, o),
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{LabelQuarantined: id}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
		},
	}
}

// stillAdmitting lists the NetworkPolicies of the namespace, other than
// meshguard's managed ones, that select pods with these labels and allow
// some ingress or egress: NetworkPolicies are additive, so they keep admitting
// what they allow despite the quarantine's deny-all.
func stillAdmitting(ctx context.Context, c Clients, ns string, podLabels labels.Set) ([]string, error) {
	l, err := c.Kube.NetworkingV1().NetworkPolicies(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list the NetworkPolicies of %s: %w", ns, err)
	}
	var out []string
	for _, np := range l.Items {
		if np.Labels[netpol.LabelManaged] == "true" && np.Labels[netpol.LabelManagedBy] == "meshguard" {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err != nil || !sel.Matches(podLabels) {
			continue
		}
		var dirs []string
		if len(np.Spec.Ingress) > 0 {
			dirs = append(dirs, "ingress")
		}
		if len(np.Spec.Egress) > 0 {
			dirs = append(dirs, "egress")
		}
		if len(dirs) > 0 {
			out = append(out, fmt.Sprintf("NetworkPolicy %s/%s still allows %s: exclude the pods (podSelector matchExpressions {key: %s, operator: DoesNotExist}) or delete it", ns, np.Name, strings.Join(dirs, " and "), LabelQuarantined))
		}
	}
	sort.Strings(out)
	return out, nil
}

var sidecarImage = regexp.MustCompile(`/proxyv2(:|@|$)`)

// guarantees says what the quarantine enforces for this workload: the L7
// DENY needs a proxy in front of the pods (a sidecar, or ambient's ztunnel),
// the L3/4 isolation a CNI that enforces NetworkPolicies.
func guarantees(ctx context.Context, c Clients, t Target, w *unstructured.Unstructured, res *Result) error {
	ns, err := c.Dynamic.Resource(gvrNS).Get(ctx, t.Namespace, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("read namespace %s: %w", t.Namespace, err)
	}
	nl := ns.GetLabels()
	ambient := nl["istio.io/dataplane-mode"] == "ambient"
	sidecarNS := nl["istio-injection"] == "enabled" || nl["istio.io/rev"] != ""
	podPath := []string{"spec", "template", "metadata"}
	if t.Kind == "pod" {
		podPath = []string{"metadata"}
	}
	pl, _, _ := unstructured.NestedStringMap(w.Object, append(podPath, "labels")...)
	pa, _, _ := unstructured.NestedStringMap(w.Object, append(podPath, "annotations")...)
	optOut := pl["sidecar.istio.io/inject"] == "false" || pa["sidecar.istio.io/inject"] == "false" || pl["istio.io/dataplane-mode"] == "none"
	injected := false
	if t.Kind == "pod" {
		containers, _, _ := unstructured.NestedSlice(w.Object, "spec", "containers")
		inits, _, _ := unstructured.NestedSlice(w.Object, "spec", "initContainers")
		for _, cnt := range append(containers, inits...) {
			m, _ := cnt.(map[string]any)
			if m["name"] == "istio-proxy" {
				if img, _ := m["image"].(string); sidecarImage.MatchString(img) {
					injected = true
				}
			}
		}
	}
	switch {
	case optOut:
		res.Limits = append(res.Limits, "the workload opts out of the mesh, so no proxy enforces the DENY AuthorizationPolicy: only the NetworkPolicy isolates it")
	case ambient:
		res.Guarantees = append(res.Guarantees, "ambient namespace: ztunnel enforces the DENY at L4 for every connection to the pods")
	case sidecarNS || injected:
		res.Guarantees = append(res.Guarantees, "the sidecar refuses every request to the pods (DENY wins over every ALLOW AuthorizationPolicy)")
		res.Limits = append(res.Limits, "the DENY AuthorizationPolicy governs inbound requests only; outbound traffic is cut by the NetworkPolicy alone")
	default:
		res.Limits = append(res.Limits, fmt.Sprintf("namespace %s is not in the mesh, so no proxy enforces the DENY AuthorizationPolicy: only the NetworkPolicy isolates the workload", t.Namespace))
	}
	if nl[netpol.LabelProfile] == "none" || nl[netpol.LabelProfile] == "system" {
		res.Limits = append(res.Limits, fmt.Sprintf("namespace %s is not managed by meshguard's default-deny controller (%s=%s): other NetworkPolicies are reported, not changed", t.Namespace, netpol.LabelProfile, nl[netpol.LabelProfile]))
	}
	res.Guarantees = append(res.Guarantees, "the NetworkPolicy isolates the pods at L3/4 wherever the CNI enforces NetworkPolicies; meshguard's managed allow policies exclude quarantined pods")
	if t.Kind != "pod" {
		res.Limits = append(res.Limits, "labelling the pod template rolls the workload: new pods start labelled, the running ones are labelled in place")
	}
	return nil
}

// event records an Event on the workload; a failure is not fatal (the
// record on the object is the authoritative one).
func event(ctx context.Context, c Clients, t Target, w *unstructured.Unstructured, typ, reason, msg string) {
	now := metav1.NewTime(time.Now())
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{GenerateName: t.Name + ".", Namespace: t.Namespace},
		InvolvedObject: corev1.ObjectReference{APIVersion: w.GetAPIVersion(), Kind: w.GetKind(), Namespace: t.Namespace, Name: t.Name,
			UID: w.GetUID(), ResourceVersion: w.GetResourceVersion()},
		Reason: reason, Message: msg, Type: typ, FirstTimestamp: now, LastTimestamp: now, Count: 1,
		Source: corev1.EventSource{Component: "meshguard"},
	}
	_, _ = c.Kube.CoreV1().Events(t.Namespace).Create(ctx, ev, metav1.CreateOptions{})
}
