package netpol

import (
	"context"
	"fmt"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// Readiness tells the pod gate whether a namespace's policy set is in place.
type Readiness interface {
	Prepared(ctx context.Context, namespace string) (bool, string)
}

// PodGate refuses Pod creation in a namespace whose managed NetworkPolicies
// are not in place yet, then hands every other request to Next. Controllers
// (ReplicaSet, Job, ...) retry refused creations with backoff, so pods start
// as soon as the namespace is prepared, never before.
type PodGate struct {
	Next      admission.Handler
	Readiness Readiness
	Metrics   *Metrics
}

var _ admission.Handler = (*PodGate)(nil)

// Handle implements admission.Handler.
func (g *PodGate) Handle(ctx context.Context, req admission.Request) admission.Response {
	if req.Kind.Group == "" && req.Kind.Kind == "Pod" && req.Operation == admissionv1.Create && req.SubResource == "" {
		if ok, why := g.Readiness.Prepared(ctx, req.Namespace); !ok {
			if g.Metrics != nil {
				g.Metrics.GateRefusals.Inc()
			}
			resp := admission.Denied(fmt.Sprintf("meshguard: namespace %q is being prepared: %s. Pods are admitted once its NetworkPolicies exist, usually within seconds; controllers retry by themselves, a Pod created by hand can be created again", req.Namespace, why))
			resp.Result.Reason = metav1.StatusReasonForbidden
			resp.Result.Code = http.StatusForbidden
			return resp
		}
	}
	return g.Next.Handle(ctx, req)
}
