package rules

import "k8s.io/apimachinery/pkg/runtime/schema"

// FactsOf returns the $facts binding the engine computes for a request
// (nil when no rule applies to the object's kind), for the facts
// equivalence test of package rules_test.
func (e *Engine) FactsOf(req *Request) (map[string]any, error) {
	p, err := e.prepare(req)
	if err != nil || p == nil {
		return nil, err
	}
	return p.facts, nil
}

// WorkloadFactsOf returns the typed facts of a pod or pod template as
// prepare computes them (false for other kinds).
func (e *Engine) WorkloadFactsOf(req *Request) (*WorkloadFacts, bool, error) {
	obj := req.Object
	apiVersion, _ := obj["apiVersion"].(string)
	kind, _ := obj["kind"].(string)
	info, ok := LookupKind(schema.GroupKind{Group: apiGroup(apiVersion), Kind: kind})
	if !ok || !info.HasPod() || len(e.byKind[info.GroupKind()]) == 0 {
		return nil, false, nil
	}
	defNS := req.DefaultNamespace
	if defNS == "" {
		defNS = "default"
	}
	ref := ObjectRefOf(obj, defNS)
	ctxt := req.Context
	if ctxt == nil {
		ctxt = emptyContext{}
	}
	ns, nsKnown := ctxt.Namespace(ref.Namespace)
	if !nsKnown {
		ns = Namespace{Name: ref.Namespace}
	}
	st := &engine{cfg: e.cfg, ctx: ctxt, eng: e}
	var wf WorkloadFacts
	if err := st.computeWorkloadFacts(&wf, obj, info, req, ns, nsKnown); err != nil {
		return nil, true, err
	}
	wf.QuarantineTamper = quarantineTamper(obj, info, req)
	wf.QuarantineByMeshguard = st.quarantineByMeshguard(req)
	return &wf, true, nil
}

// NamespaceFactsOf returns the typed facts of a Namespace as prepare
// computes them (false for other kinds).
func (e *Engine) NamespaceFactsOf(req *Request) (*NamespaceFacts, bool, error) {
	if req.Object["kind"] != "Namespace" || req.Object["apiVersion"] != "v1" || len(e.byKind[schema.GroupKind{Kind: "Namespace"}]) == 0 {
		return nil, false, nil
	}
	ctxt := req.Context
	if ctxt == nil {
		ctxt = emptyContext{}
	}
	st := &engine{cfg: e.cfg, ctx: ctxt, eng: e}
	var f NamespaceFacts
	if err := st.computeNamespaceFacts(&f, req.Object, req); err != nil {
		return nil, true, err
	}
	return &f, true, nil
}

// OtherTypedFactsOf returns the typed facts of a Service, Endpoints,
// EndpointSlice or pods/binding as prepare computes them (false for other
// kinds).
func (e *Engine) OtherTypedFactsOf(req *Request) (any, bool, error) {
	obj := req.Object
	apiVersion, _ := obj["apiVersion"].(string)
	kind, _ := obj["kind"].(string)
	gk := schema.GroupKind{Group: apiGroup(apiVersion), Kind: kind}
	if len(e.byKind[gk]) == 0 {
		return nil, false, nil
	}
	ctxt := req.Context
	if ctxt == nil {
		ctxt = emptyContext{}
	}
	st := &engine{cfg: e.cfg, ctx: ctxt, eng: e}
	ns := ObjectRefOf(obj, "default").Namespace
	switch {
	case gk == schema.GroupKind{Kind: "Service"}:
		f, err := serviceFactsTyped(obj, func() []Object { return st.namespacePods(ns) })
		return &f, true, err
	case gk == schema.GroupKind{Kind: "Endpoints"}, gk == schema.GroupKind{Group: "discovery.k8s.io", Kind: "EndpointSlice"}:
		f, err := endpointsFactsTyped(obj, kind, req)
		return &f, true, err
	case gk == schema.GroupKind{Kind: "Binding"}:
		f, err := bindingFactsTyped(obj)
		return &f, true, err
	case gk == schema.GroupKind{Group: "security.istio.io", Kind: "PeerAuthentication"}:
		var f PeerAuthenticationFacts
		err := st.computePeerAuthenticationFacts(&f, obj, ns)
		return &f, true, err
	case gk == schema.GroupKind{Group: "networking.k8s.io", Kind: "NetworkPolicy"}:
		var f NetworkPolicyFacts
		err := st.computeNetworkPolicyFacts(&f, obj, req, nsOf(ctxt, ns))
		return &f, true, err
	case gk == schema.GroupKind{Group: "security.istio.io", Kind: "AuthorizationPolicy"}:
		var f AuthorizationPolicyFacts
		err := st.computeAuthorizationPolicyFacts(&f, obj, ns)
		if err == nil {
			st.managedPolicyFacts(&f.ManagedPolicy, obj, req, nsOf(ctxt, ns))
		}
		return &f, true, err
	case gk == schema.GroupKind{Group: "security.istio.io", Kind: "RequestAuthentication"}:
		var f RequestAuthenticationFacts
		err := st.computeRequestAuthenticationFacts(&f, obj, ns)
		return &f, true, err
	case gk == schema.GroupKind{Group: "networking.istio.io", Kind: "DestinationRule"}:
		var f DestinationRuleFacts
		err := st.computeDestinationRuleFacts(&f, obj, ns)
		return &f, true, err
	case gk == schema.GroupKind{Group: "networking.istio.io", Kind: "ServiceEntry"}:
		var f ServiceEntryFacts
		err := st.computeServiceEntryFacts(&f, obj, req, ns)
		return &f, true, err
	case gk == schema.GroupKind{Group: "networking.istio.io", Kind: "EnvoyFilter"}:
		var f EnvoyFilterFacts
		err := st.computeEnvoyFilterFacts(&f, obj, ns)
		return &f, true, err
	case gk.Group == "extensions.istio.io" && (kind == "WasmPlugin" || kind == "TrafficExtension"):
		f, err := st.extensionFactsTyped(obj, kind, ns)
		return &f, true, err
	case gk == schema.GroupKind{Kind: "ConfigMap"}:
		var f ConfigMapFacts
		_, err := st.computeConfigMapFacts(&f, obj)
		return &f, true, err
	case kind == "Gateway" && (gk.Group == "networking.istio.io" || gk.Group == "gateway.networking.k8s.io"):
		f, err := st.gatewayFactsTyped(obj, gk.Group, ns)
		return &f, true, err
	}
	return nil, false, nil
}

// nsOf is the Namespace prepare judges an object of namespace name with.
func nsOf(ctxt Context, name string) Namespace {
	ns, ok := ctxt.Namespace(name)
	if !ok {
		ns = Namespace{Name: name}
	}
	return ns
}
