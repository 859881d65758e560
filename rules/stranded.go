package rules

import (
	"context"
	"fmt"
	"sort"
	"strings"
)

// maxStrandedListed bounds how many pods a MESH0107 message names; the rest
// are counted.
const maxStrandedListed = 10

// strandedPods judges the pods already running in a namespace whose mesh mode
// changes (sidecar to ambient and back, enrolled to not): each pod is
// evaluated as if it were created now, once in the namespace as it was and
// once as it would be, and a pod the new mode would deny (a High or Critical
// finding it did not have before, such as an ambient pod without a proxy in a
// sidecar namespace, MESH0112, or a pod running as the proxy UID, MESH0140) is
// listed. Running pods are not re-admitted when their namespace changes, so
// without this a mode flip leaves them outside the mesh unjudged.
func (e *engine) strandedPods(cur, old Namespace) ([]string, error) {
	np, ok := e.ctx.(NamespacePods)
	if !ok || e.eng == nil {
		return nil, nil
	}
	pods, known := np.Pods(cur.Name)
	if !known || len(pods) == 0 {
		return nil, nil
	}
	type stranded struct{ name, why string }
	var out []stranded
	before := overlayContext{Context: e.ctx, ns: old}
	after := overlayContext{Context: e.ctx, ns: cur}
	for _, pod := range pods {
		meta := mapAt(pod, "metadata")
		if meta["deletionTimestamp"] != nil {
			continue
		}
		switch str(mapAt(pod, "status"), "phase") {
		case "Succeeded", "Failed":
			continue
		}
		req := &Request{Object: pod, Operation: "CREATE", PostInjection: true, DefaultNamespace: cur.Name}
		req.Context = after
		now, err := e.eng.Evaluate(context.Background(), req)
		if err != nil {
			return nil, fmt.Errorf("judge running pod %q under the new mode: %w", str(meta, "name"), err)
		}
		if len(now) == 0 {
			continue
		}
		req.Context = before
		was, err := e.eng.Evaluate(context.Background(), req)
		if err != nil {
			was = nil // judged in full under the new mode
		}
		had := map[string]Severity{}
		for _, f := range was {
			had[f.Code] = f.Severity
		}
		var whys []string
		for _, f := range now {
			if f.Severity < SeverityHigh || (had[f.Code] != 0 && had[f.Code] >= f.Severity) {
				continue
			}
			// "; " separates a message's items; inside one pod's item the
			// findings are separated by ", ".
			whys = append(whys, f.Code+" "+strings.ReplaceAll(f.Message, "; ", ", "))
		}
		if len(whys) > 0 {
			out = append(out, stranded{name: str(meta, "name"), why: strings.Join(whys, ", ")})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	items := make([]string, 0, min(len(out), maxStrandedListed+1))
	for i, s := range out {
		if i == maxStrandedListed {
			items = append(items, fmt.Sprintf("and %d more pods", len(out)-maxStrandedListed))
			break
		}
		items = append(items, fmt.Sprintf("pod %q (%s)", s.name, s.why))
	}
	return items, nil
}

// overlayContext answers for one namespace as given and defers everything
// else to the wrapped context.
type overlayContext struct {
	Context
	ns Namespace
}

func (o overlayContext) Namespace(name string) (Namespace, bool) {
	if name == o.ns.Name {
		return o.ns, true
	}
	return o.Context.Namespace(name)
}

// The overlay keeps the optional knowledge of the context it wraps; where
// the wrapped context has none, the answer is "unknown", as if the interface
// were not implemented.
var (
	_ InjectorRevisions      = overlayContext{}
	_ InjectorVersions       = overlayContext{}
	_ IstiodDeployments      = overlayContext{}
	_ WebhookBackends        = overlayContext{}
	_ ManagedNetworkPolicies = overlayContext{}
)

func (o overlayContext) InjectorRevisions() ([]string, bool) {
	if ir, ok := o.Context.(InjectorRevisions); ok {
		return ir.InjectorRevisions()
	}
	return nil, false
}

func (o overlayContext) InjectorVersions() map[string]string {
	if iv, ok := o.Context.(InjectorVersions); ok {
		return iv.InjectorVersions()
	}
	return nil
}

func (o overlayContext) IstiodDeployments() []Object {
	if id, ok := o.Context.(IstiodDeployments); ok {
		return id.IstiodDeployments()
	}
	return nil
}

func (o overlayContext) WebhookBackends(namespace string) []WebhookBackend {
	if wb, ok := o.Context.(WebhookBackends); ok {
		return wb.WebhookBackends(namespace)
	}
	return nil
}

func (o overlayContext) ManagedNetworkPolicies(namespace string) ([]string, bool) {
	if mp, ok := o.Context.(ManagedNetworkPolicies); ok {
		return mp.ManagedNetworkPolicies(namespace)
	}
	return nil, false
}
