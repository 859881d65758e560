package rules

// The $facts of Services, Endpoints/EndpointSlices and pods/binding, typed
// as the workload facts are (facts_workload_types.go): json tags are the
// names policies read, Map the map they see, and their tables in
// catalog/README.md are generated from the doc comments. Services and
// endpoints share the names rules read of both (external, exposure,
// envoyInternalPorts, controllerWritten).

// ServiceFacts are the facts of a Service.
type ServiceFacts struct {
	// LoadBalancer, NodePort or externalIPs.
	External bool `json:"external"`
	// Why it is external, e.g. `type NodePort` or `externalIPs 203.0.113.10`; empty when not.
	Exposure string `json:"exposure"`
	// MESH0200: target ports 15000, 15001, 15002, 15004, 15006 and 15053 (Envoy's pod-internal ports). An absent, `0`
	// or `""` targetPort means the port itself; a named targetPort resolves, as the endpoints controllers resolve it,
	// on each pod of the context (the webhook's caches, the cluster, the input) that the selector matches, one entry
	// per distinct port it resolves to.
	EnvoyInternalPorts []ServicePortFacts `json:"envoyInternalPorts"`
	// `spec.selector` has `app: istiod` or `istio: pilot`.
	SelectsIstiod bool `json:"selectsIstiod"`
	// MESH0201: target ports 15010, 15014, 15020, 15090, and 8080 only when `selectsIstiod`, resolved as for
	// `envoyInternalPorts`.
	ControlPlanePorts []ControlPlanePortFacts `json:"controlPlanePorts"`
	// Always false for a Service (the name is shared with endpoints).
	ControllerWritten bool `json:"controllerWritten"`
}

// ServicePortFacts: a Service port that targets one of Envoy's pod-internal ports.
type ServicePortFacts struct {
	// The Service port.
	Port float64 `json:"port"`
	// The pod port it targets.
	Target float64 `json:"target"`
	// E.g. `port 15000 targets 15000 (Envoy admin)`, or for a named targetPort `port 80 targets "admin",
	// containerPort 15000 of pod "web-1" (Envoy admin)`.
	Text string `json:"text"`
}

// ControlPlanePortFacts: a Service port that targets a control-plane or proxy metrics port.
type ControlPlanePortFacts struct {
	// The Service port.
	Port float64 `json:"port"`
	// The pod port it targets.
	Target float64 `json:"target"`
	// An istiod port: 15010, 15014 or 8080.
	Istiod bool `json:"istiod"`
	// E.g. `port 15010 targets 15010 (istiod plaintext xDS)`.
	Text string `json:"text"`
}

// EndpointsFacts are the facts of an Endpoints or EndpointSlice.
type EndpointsFacts struct {
	// MESH0200: each port that is one of Envoy's pod-internal ports.
	EnvoyInternalPorts []EndpointPortFacts `json:"envoyInternalPorts"`
	// The endpoints or endpoint-slice controllers wrote it: at admission the requester is one of
	// `rules.EndpointControllers()`; offline, where nobody is asking, the `endpointslice.kubernetes.io/managed-by`
	// label of the two slice controllers or, on Endpoints, the `endpoints.kubernetes.io/last-change-trigger-time`
	// annotation.
	ControllerWritten bool `json:"controllerWritten"`
	// Always false (the name is shared with Services).
	External bool `json:"external"`
	// Always `""` (the name is shared with Services).
	Exposure string `json:"exposure"`
}

// EndpointPortFacts: an endpoints port that is one of Envoy's pod-internal ports.
type EndpointPortFacts struct {
	// The port.
	Port float64 `json:"port"`
	// E.g. `ports[0] sends port 15000 (Envoy admin) straight to the endpoints' pods`.
	Text string `json:"text"`
}

// BindingFacts are the facts of a pods/binding.
type BindingFacts struct {
	// Each label or annotation under `istio.io`, one of its subdomains or `meshguard.io` that the API server would
	// copy onto the pod, e.g. `sets label istio.io/dataplane-mode="none"`.
	MeshMetadata []string `json:"meshMetadata"`
}

// Map returns the facts as the policies see them.
func (f *ServiceFacts) Map() map[string]any {
	internal := make([]any, len(f.EnvoyInternalPorts))
	for i, p := range f.EnvoyInternalPorts {
		internal[i] = map[string]any{"port": p.Port, "target": p.Target, "text": p.Text}
	}
	cp := make([]any, len(f.ControlPlanePorts))
	for i, p := range f.ControlPlanePorts {
		cp[i] = map[string]any{"port": p.Port, "target": p.Target, "istiod": p.Istiod, "text": p.Text}
	}
	return map[string]any{
		"external": f.External, "exposure": f.Exposure, "envoyInternalPorts": internal,
		"controllerWritten": f.ControllerWritten, "selectsIstiod": f.SelectsIstiod, "controlPlanePorts": cp,
	}
}

// Map returns the facts as the policies see them.
func (f *EndpointsFacts) Map() map[string]any {
	internal := make([]any, len(f.EnvoyInternalPorts))
	for i, p := range f.EnvoyInternalPorts {
		internal[i] = map[string]any{"port": p.Port, "text": p.Text}
	}
	return map[string]any{
		"controllerWritten": f.ControllerWritten, "envoyInternalPorts": internal, "external": f.External, "exposure": f.Exposure,
	}
}

// Map returns the facts as the policies see them.
func (f *BindingFacts) Map() map[string]any {
	return map[string]any{"meshMetadata": anySlice(f.MeshMetadata)}
}
