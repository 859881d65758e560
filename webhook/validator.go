package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/meshguard/meshguard/rules"
)

// MaxObjectBytes bounds the objects the webhook decodes. The API server limits
// request bodies to 3 MiB; anything larger is refused with an error.
const MaxObjectBytes = 3 << 20

// Validator is the validating admission handler.
type Validator struct {
	evaluator rules.Evaluator
	context   rules.Context
	policy    atomic.Pointer[Policy]
	metrics   *Metrics
	now       func() time.Time
	// events receives denials and warnings as Kubernetes Events; nil records none.
	events EventSink
}

var _ admission.Handler = (*Validator)(nil)

// NewValidator returns a validating handler. ctx supplies cluster state (an
// informer-backed context in the server); metrics may be nil.
func NewValidator(ev rules.Evaluator, ctx rules.Context, p *Policy, m *Metrics) *Validator {
	if p == nil {
		p = DefaultPolicy()
	}
	if m == nil {
		m = NewMetrics()
	}
	v := &Validator{evaluator: ev, context: ctx, metrics: m, now: time.Now}
	v.policy.Store(p)
	return v
}

// SetEventSink makes the validator hand every denial and warning (not of dry
// runs) to sink, which must not block. Call it before serving.
func (v *Validator) SetEventSink(sink EventSink) { v.events = sink }

// SetPolicy replaces the policy (for example after its ConfigMap changed).
func (v *Validator) SetPolicy(p *Policy) { v.policy.Store(p) }

// decided is one finding with its action and why that action was chosen.
type decided struct {
	rules.Finding
	Action Action
	Note   string // "grandfathered", "exemption x", "namespace mode warn", ...
	// softened is true when a mode (global or namespace) turned a denial into
	// this action; the warning then says "would deny".
	softened bool
}

// Handle implements admission.Handler. It never panics on input and never
// allows what it could not evaluate.
func (v *Validator) Handle(ctx context.Context, req admission.Request) (resp admission.Response) {
	start := v.now()
	pol := v.policy.Load()
	kind := req.Kind.Kind
	op := string(req.Operation)
	decision := "allow"
	defer func() {
		if r := recover(); r != nil {
			log.FromContext(ctx).Error(fmt.Errorf("%v", r), "panic while deciding", "uid", req.UID)
			resp = admission.Errored(http.StatusInternalServerError, fmt.Errorf("meshguard could not decide this request: internal error"))
			decision = "error"
		}
		dry := "false"
		if req.DryRun != nil && *req.DryRun {
			dry = "true"
		}
		v.metrics.Requests.WithLabelValues(kind, op, decision, string(pol.Mode), dry).Inc()
		v.metrics.Duration.WithLabelValues(kind, op).Observe(time.Since(start).Seconds())
	}()

	resp, decision = v.decide(ctx, req, pol)
	return resp
}

func (v *Validator) decide(ctx context.Context, req admission.Request, pol *Policy) (admission.Response, string) {
	// The request's log fields, built only when a line is logged: a logger
	// cloned with WithValues on every request costs an allocation-heavy copy of
	// the JSON encoder even when nothing is logged (see BENCHMARKS.md).
	logInfo := func(msg string, kv ...any) {
		log.FromContext(ctx).Info(msg, append([]any{"uid", req.UID, "kind", req.Kind.Kind, "namespace", req.Namespace, "name", req.Name, "operation", req.Operation}, kv...)...)
	}
	if !JudgedSubresource(req.SubResource) {
		return admission.Allowed(fmt.Sprintf("meshguard does not judge the %s subresource", req.SubResource)), "allow"
	}
	ext := &req.Object
	if req.Operation == admissionv1.Delete {
		ext = &req.OldObject
	}
	raw := ext.Raw
	if len(raw) == 0 {
		if req.Operation == admissionv1.Delete {
			// Older API servers send no oldObject on DELETE; nothing to judge.
			return admission.Allowed("no object to judge"), "allow"
		}
		return admission.Errored(http.StatusBadRequest, errors.New("meshguard: the request carries no object")), "error"
	}
	if len(raw) > MaxObjectBytes || len(req.OldObject.Raw) > MaxObjectBytes {
		return admission.Errored(http.StatusRequestEntityTooLarge, fmt.Errorf("meshguard: object larger than %d bytes", MaxObjectBytes)), "error"
	}
	obj, err := objectOf(ext)
	if err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("meshguard: decode object: %w", err)), "error"
	}
	var old rules.Object
	if req.Operation == admissionv1.Update && len(req.OldObject.Raw) > 0 {
		if old, err = objectOf(&req.OldObject); err != nil {
			return admission.Errored(http.StatusBadRequest, fmt.Errorf("meshguard: decode oldObject: %w", err)), "error"
		}
	}
	if beingDeleted(obj, old) {
		// Garbage collection and finalizer removal update objects that are
		// already being deleted; denying them (a Critical finding is never
		// grandfathered) would leave the object stuck terminating.
		return admission.Allowed("meshguard: the object is being deleted and nothing the rules read changed"), "allow"
	}
	if metadataOnlySubresource(req.SubResource) && old != nil && sameLabelsAndAnnotations(obj, old) {
		// A status or finalize update whose labels and annotations are
		// unchanged cannot change what the rules read (the API server resets
		// the spec of a status update); the kubelet's status updates of a pod
		// with a Critical finding must not be refused.
		return admission.Allowed("meshguard: the " + req.SubResource + " update changes no label or annotation"), "allow"
	}
	user := &rules.User{Username: req.UserInfo.Username, Groups: req.UserInfo.Groups, Admin: pol.IsAdmin(req.UserInfo.Username, req.UserInfo.Groups)}
	// A context read the rules needed and could not make is an error
	// response, never a decision on empty context (contexterr.go).
	rctx, contextErr := requestContext(v.context)
	rreq := &rules.Request{
		Object:           obj,
		OldObject:        old,
		Operation:        string(req.Operation),
		DefaultNamespace: req.Namespace,
		PostInjection:    req.Kind.Kind == "Pod" && req.Kind.Group == "" && req.Operation == admissionv1.Create,
		Context:          rctx,
		User:             user,
		Admission:        true,
	}
	findings, err := v.evaluator.Evaluate(ctx, rreq)
	if cerr := contextErr(); cerr != nil {
		logInfo("context unavailable: answered with an error", "error", cerr.Error())
		return admission.Errored(http.StatusServiceUnavailable, fmt.Errorf("meshguard cannot decide this request now: %w; retry shortly", cerr)), "error"
	}
	if err != nil {
		logInfo("object could not be evaluated", "error", err.Error())
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("meshguard could not evaluate this object: %w", err)), "error"
	}
	if len(findings) == 0 {
		return admission.Allowed(""), "allow"
	}
	var before []rules.Finding
	if old != nil {
		oldReq := *rreq
		oldReq.Object, oldReq.OldObject = old, nil
		if before, err = v.evaluator.Evaluate(ctx, &oldReq); err != nil {
			// The old object no longer evaluates: judge the new one in full.
			before = nil
		}
	}
	ds, expired := v.actions(pol, findings, before, obj, req.Namespace)
	for _, d := range ds {
		v.metrics.Findings.WithLabelValues(d.Code, string(d.Action)).Inc()
	}
	for _, name := range expired {
		v.metrics.Expired.WithLabelValues(name).Inc()
	}
	resp := respond(ds, expired, pol)
	decision := "allow"
	switch {
	case !resp.Allowed:
		decision = "deny"
	case len(resp.Warnings) > 0:
		decision = "warn"
	}
	dryRun := req.DryRun != nil && *req.DryRun
	logInfo("decided", "decision", decision, "findings", len(ds), "dryRun", dryRun)
	if v.events != nil && decision != "allow" {
		ref := rules.ObjectRefOf(obj, req.Namespace)
		note := ""
		if resp.Result != nil {
			note = resp.Result.Message
		}
		if decision == "warn" {
			note = warningsNote(string(req.Operation), ref.String(), resp.Warnings)
		}
		var uid types.UID
		meta, _ := obj["metadata"].(map[string]any)
		if s, _ := meta["uid"].(string); req.Operation != admissionv1.Create {
			uid = types.UID(s)
		}
		apiVersion := req.Kind.Version
		if req.Kind.Group != "" {
			apiVersion = req.Kind.Group + "/" + req.Kind.Version
		}
		evNS := ref.Namespace
		if info, known := rules.LookupKind(schema.GroupKind{Group: req.Kind.Group, Kind: req.Kind.Kind}); known && !info.Namespaced {
			evNS = "" // a cluster-scoped object's events go to the default namespace
		}
		if ev, ok := admissionEventOf(req.Kind.Kind, apiVersion, evNS, ref.Name, string(req.Operation), req.UserInfo.Username, uid, dryRun, !resp.Allowed, ds, note); ok {
			v.events.Admission(ev)
		}
	}
	return resp, decision
}

// objectOf returns the object of a request: the map ReviewHandler decoded
// (as *unstructured.Unstructured), or else the JSON in Raw, decoded here (the
// request came through controller-runtime's admission.Webhook).
func objectOf(ext *runtime.RawExtension) (rules.Object, error) {
	if u, ok := ext.Object.(*unstructured.Unstructured); ok && u != nil && u.Object != nil {
		return u.Object, nil
	}
	return decodeObject(ext.Raw)
}

// beingDeleted reports an UPDATE of an object that has a deletionTimestamp and
// of which nothing a rule reads changed: finalizers or owner references being
// removed. Every top-level field but status (spec, a PodTemplate's template,
// a webhook configuration's webhooks, a ConfigMap's data) and every metadata
// field but the bookkeeping ones must be equal, so a kind that keeps its pod
// outside spec cannot carry a change through this shortcut.
func beingDeleted(obj, old rules.Object) bool {
	if old == nil {
		return false
	}
	meta, _ := obj["metadata"].(map[string]any)
	if meta["deletionTimestamp"] == nil {
		return false
	}
	return sameExceptBookkeeping(obj, old)
}

// deletionBookkeeping are the metadata fields that change while an object is
// deleted (or on any write) and that no rule reads.
var deletionBookkeeping = map[string]bool{
	"finalizers": true, "ownerReferences": true, "managedFields": true, "resourceVersion": true,
	"generation": true, "deletionTimestamp": true, "deletionGracePeriodSeconds": true,
}

// sameExceptBookkeeping compares two objects ignoring status and the metadata
// bookkeeping fields.
func sameExceptBookkeeping(obj, old rules.Object) bool {
	for k, v := range obj {
		if k == "status" || k == "metadata" {
			continue
		}
		if !reflect.DeepEqual(v, old[k]) {
			return false
		}
	}
	for k := range old {
		if _, ok := obj[k]; !ok && k != "status" && k != "metadata" {
			return false
		}
	}
	meta, _ := obj["metadata"].(map[string]any)
	oldMeta, _ := old["metadata"].(map[string]any)
	for k, v := range meta {
		if !deletionBookkeeping[k] && !reflect.DeepEqual(v, oldMeta[k]) {
			return false
		}
	}
	for k := range oldMeta {
		if _, ok := meta[k]; !ok && !deletionBookkeeping[k] {
			return false
		}
	}
	return true
}

// sameLabelsAndAnnotations reports whether two objects carry the same labels
// and annotations (absent and empty are the same).
func sameLabelsAndAnnotations(obj, old rules.Object) bool {
	meta, _ := obj["metadata"].(map[string]any)
	oldMeta, _ := old["metadata"].(map[string]any)
	for _, k := range []string{"labels", "annotations"} {
		a, _ := meta[k].(map[string]any)
		b, _ := oldMeta[k].(map[string]any)
		if len(a) == 0 && len(b) == 0 {
			continue
		}
		if !reflect.DeepEqual(a, b) {
			return false
		}
	}
	return true
}

// decodeObject decodes a JSON object; anything else is an error.
func decodeObject(raw []byte) (rules.Object, error) {
	var obj rules.Object
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, err
	}
	if obj == nil {
		return nil, errors.New("not a JSON object")
	}
	return obj, nil
}

// actions decides an action for each finding.
func (v *Validator) actions(pol *Policy, findings, before []rules.Finding, obj rules.Object, namespace string) ([]decided, []string) {
	now := v.now()
	prior := make(map[string]rules.Finding, len(before))
	for _, f := range before {
		prior[f.Code] = f
	}
	nsMode := Mode("")
	if namespace != "" && matchAny(pol.NamespaceModes, namespace) && v.context != nil {
		if ns, ok := v.context.Namespace(namespace); ok {
			switch m := Mode(ns.Labels[LabelMode]); m {
			case ModeWarn, ModeAudit:
				nsMode = m
			}
		}
	}
	meta, _ := obj["metadata"].(map[string]any)
	annotations, _ := meta["annotations"].(map[string]any)
	objLabels := map[string]string{}
	if l, ok := meta["labels"].(map[string]any); ok {
		for k, v := range l {
			if s, ok := v.(string); ok {
				objLabels[k] = s
			}
		}
	}
	objExempt := map[string]bool{}
	if s, _ := annotations[AnnotationExempt].(string); s != "" && matchAny(pol.ObjectExemptions, namespace) {
		if r, _ := annotations[AnnotationExemptReason].(string); strings.TrimSpace(r) != "" {
			for _, c := range strings.Split(s, ",") {
				objExempt[strings.ToUpper(strings.TrimSpace(c))] = true
			}
		}
	}
	var out []decided
	var expired []string
	for _, f := range findings {
		d := decided{Finding: f, Action: baseAction(f.Severity)}
		if a, ok := pol.Actions[f.Code]; ok {
			d.Action = a
		}
		// Only a finding whose offending items were all present before, no
		// more severe than before, is grandfathered: rules whose severity
		// comes from feedback can escalate (Low to High) with an unchanged
		// message, and a partial fix (NET_RAW dropped from one of two
		// containers) leaves a subset of the items.
		if p, ok := prior[f.Code]; ok && itemsWerePresent(f.Items, p.Items) && f.Severity <= p.Severity && f.Severity < rules.SeverityCritical && d.Action.strength() > ActionAudit.strength() {
			d.Action, d.Note = ActionAudit, "already present before this update"
		}
		if nsMode != "" && f.Severity < rules.SeverityCritical {
			if d.Action.strength() > actionCeiling(nsMode).strength() {
				d.softened = d.softened || d.Action == ActionDeny
				d.Action, d.Note = actionCeiling(nsMode), "namespace mode "+string(nsMode)
			}
		}
		if d.Action.strength() > actionCeiling(pol.Mode).strength() {
			d.softened = d.softened || d.Action == ActionDeny
			d.Action, d.Note = actionCeiling(pol.Mode), "mode "+string(pol.Mode)
		}
		if objExempt[f.Code] && f.Severity < rules.SeverityCritical {
			d.Action, d.Note = ActionExempt, "object annotation "+AnnotationExempt
		}
		ref := f.Object
		for i := range pol.Exemptions {
			e := &pol.Exemptions[i]
			if !e.matches(f.Code, ref, objLabels) {
				continue
			}
			if e.expired(now) {
				expired = append(expired, e.Name)
				continue
			}
			d.Action, d.Note = ActionExempt, "exemption "+e.Name
			break
		}
		out = append(out, d)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Code < out[j].Code })
	return out, dedupe(expired)
}

// itemsWerePresent reports whether every offending item of a finding was
// already an item of the earlier finding of the same rule. Items come from
// the rules as a list (rules.Finding.Items), never from splitting message
// text that may hold a user's own "; ".
func itemsWerePresent(items, before []string) bool {
	if len(items) == 0 {
		return false
	}
	old := make(map[string]bool, len(before))
	for _, it := range before {
		old[it] = true
	}
	for _, it := range items {
		if !old[it] {
			return false
		}
	}
	return true
}

func baseAction(s rules.Severity) Action {
	switch {
	case s >= rules.SeverityHigh:
		return ActionDeny
	case s == rules.SeverityMedium:
		return ActionWarn
	default:
		return ActionAudit
	}
}

// actionCeiling is the strongest action a mode allows.
func actionCeiling(m Mode) Action {
	switch m {
	case ModeWarn:
		return ActionWarn
	case ModeAudit:
		return ActionAudit
	}
	return ActionDeny
}

func dedupe(s []string) []string {
	sort.Strings(s)
	out := s[:0]
	for i, x := range s {
		if i == 0 || x != s[i-1] {
			out = append(out, x)
		}
	}
	return out
}

// maxWarning keeps each warning within the 256 characters the API server
// guarantees to pass on untruncated.
const maxWarning = 256

// respond builds the admission response: one Forbidden message listing every
// denied finding; a warning per warned finding (and per finding a weaker mode
// softened from deny, as "would deny"); an audit annotation per finding.
func respond(ds []decided, expired []string, pol *Policy) admission.Response {
	var denied []decided
	var warnings []string
	audit := map[string]string{}
	for _, d := range ds {
		line := fmt.Sprintf("%s %s (%s): %s", d.Code, d.Rule, d.Severity, d.Message)
		audit[d.Code] = truncate(fmt.Sprintf("%s: %s", d.Action, d.Message), 1024)
		switch d.Action {
		case ActionDeny:
			denied = append(denied, d)
		case ActionWarn:
			prefix := "meshguard: "
			if d.softened {
				prefix = "meshguard would deny: "
			}
			warnings = append(warnings, warning(prefix+line, d.Code))
		}
	}
	for _, name := range expired {
		warnings = append(warnings, truncate(fmt.Sprintf("meshguard: exemption %q has expired and no longer applies; renew or remove it", name), maxWarning))
	}
	if len(denied) > 0 {
		var b strings.Builder
		fmt.Fprintf(&b, "meshguard: %s violates %d %s:", denied[0].Object, len(denied), plural(len(denied), "rule", "rules"))
		for i, d := range denied {
			fmt.Fprintf(&b, " (%d) %s %s: %s. Fix: %s", i+1, d.Code, d.Rule, d.Message, d.Remediation)
		}
		b.WriteString(" (details: meshguard rules explain CODE)")
		resp := admission.Denied(b.String())
		resp.Result.Reason = metav1.StatusReasonForbidden
		resp.Warnings = warnings
		resp.AuditAnnotations = audit
		return resp
	}
	resp := admission.Allowed("")
	resp.Warnings = warnings
	resp.AuditAnnotations = audit
	return resp
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// warning fits a finding into maxWarning characters, cutting the message at
// a word boundary and pointing at `meshguard rules explain` for the rest.
func warning(s, code string) string {
	if len(s) <= maxWarning {
		return s
	}
	tail := " ... (meshguard rules explain " + code + ")"
	cut := maxWarning - len(tail)
	if i := strings.LastIndexByte(s[:cut], ' '); i > cut/2 {
		cut = i
	}
	return s[:cut] + tail
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}
