package rules

import (
	"fmt"
	"slices"
)

// EndpointControllers are the identities of Kubernetes' own endpoint
// controllers (kube-controller-manager with per-controller service
// accounts, or its own identity without them) and of the API server, whose
// loopback client (system:apiserver, k8s.io/apiserver pkg/server/config.go)
// writes the Endpoints and EndpointSlice of the default/kubernetes Service
// (k8s.io/kubernetes pkg/controlplane/controller/kubernetesservice, through
// pkg/controlplane/reconcilers/endpointsadapter.go). Their Endpoints and
// EndpointSlices follow a Service's selector, which MESH0200 judged on the
// Service; only hand-written ones are judged (and the webhook's
// matchCondition keeps the controllers' writes off it).
func EndpointControllers() []string {
	return []string{
		"system:serviceaccount:kube-system:endpoint-controller",
		"system:serviceaccount:kube-system:endpointslice-controller",
		"system:serviceaccount:kube-system:endpointslicemirroring-controller",
		"system:kube-controller-manager",
		"system:apiserver",
	}
}

// Offline hints that an object was written by the controllers: forgeable in a
// manifest, so they count only where no requester is known (audit).
const (
	labelEndpointSliceManagedBy   = "endpointslice.kubernetes.io/managed-by"
	annEndpointsLastChangeTrigger = "endpoints.kubernetes.io/last-change-trigger-time"
)

// endpointsFacts lists the ports of an Endpoints or EndpointSlice that are
// pod-internal Envoy ports, and whether the object is the controllers' own.
func endpointsFacts(obj Object, kind string, req *Request) (map[string]any, error) {
	f, err := endpointsFactsTyped(obj, kind, req)
	if err != nil {
		return nil, err
	}
	return f.Map(), nil
}

func endpointsFactsTyped(obj Object, kind string, req *Request) (EndpointsFacts, error) {
	var f EndpointsFacts
	meta := mapAt(obj, "metadata")
	controller := false
	if req != nil && req.User != nil {
		controller = slices.Contains(EndpointControllers(), req.User.Username)
	} else {
		by := str(mapAt(meta, "labels"), labelEndpointSliceManagedBy)
		_, trig := mapAt(meta, "annotations")[annEndpointsLastChangeTrigger]
		controller = by == "endpointslice-controller.k8s.io" || by == "endpointslicemirroring-controller.k8s.io" || kind == "Endpoints" && trig
	}
	// add judges one ports entry (subsets[i].ports[j] of Endpoints, ports[j]
	// of an EndpointSlice: i < 0), typed as the API types it (port an
	// int32), so a malformed manifest is an error naming the field; the path
	// is built only for an error or a finding.
	add := func(i, j int, p any) error {
		at := func() string {
			if i < 0 {
				return fmt.Sprintf("ports[%d]", j)
			}
			return fmt.Sprintf("subsets[%d].ports[%d]", i, j)
		}
		pm, ok := p.(map[string]any)
		if !ok && p != nil {
			return fmt.Errorf("%s: expected object, got %s", at(), jsonType(p))
		}
		for _, c := range [...]struct{ k, t string }{{"port", "integer"}, {"protocol", "string"}} {
			if v, bad := wrongType(pm, c.k, c.t); bad {
				return typeError(at(), c.k, c.t, v)
			}
		}
		n, ok := intAt(pm, "port")
		if !ok {
			return nil
		}
		if what, bad := envoyInternalPorts[n]; bad {
			f.EnvoyInternalPorts = append(f.EnvoyInternalPorts, EndpointPortFacts{
				Port: float64(n),
				Text: fmt.Sprintf("%s sends port %d (%s) straight to the endpoints' pods", at(), n, what),
			})
		}
		return nil
	}
	if kind == "Endpoints" {
		if err := checkType(obj, "", "subsets", "array"); err != nil {
			return f, err
		}
		for i, s := range listAt(obj, "subsets") {
			sm, ok := s.(map[string]any)
			if !ok && s != nil {
				return f, fmt.Errorf("subsets[%d]: expected object, got %s", i, jsonType(s))
			}
			if v, bad := wrongType(sm, "ports", "array"); bad {
				return f, typeError(fmt.Sprintf("subsets[%d]", i), "ports", "array", v)
			}
			for j, p := range listAt(sm, "ports") {
				if err := add(i, j, p); err != nil {
					return f, err
				}
			}
		}
	} else {
		if err := checkType(obj, "", "ports", "array"); err != nil {
			return f, err
		}
		for j, p := range listAt(obj, "ports") {
			if err := add(-1, j, p); err != nil {
				return f, err
			}
		}
	}
	f.ControllerWritten = controller
	return f, nil
}
