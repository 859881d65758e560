package rules

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// envoyInternalPorts are "pod-internal only" proxy ports (RULES.md 1.4, MESH0200).
var envoyInternalPorts = map[int64]string{15000: "Envoy admin", 15001: "outbound capture", 15002: "failure detection", 15004: "debug", 15006: "inbound capture", 15053: "DNS proxy"}

// controlPlanePorts are istiod and telemetry ports that must not leave the
// cluster (RULES.md MESH0201); 8080 counts only on Services selecting istiod.
var controlPlanePorts = map[int64]string{15010: "istiod plaintext xDS", 15014: "control-plane metrics", 8080: "istiod debug", 15020: "proxy merged metrics", 15090: "Envoy Prometheus stats"}

// objectFacts computes the $facts binding for an object of a known kind.
func (e *engine) objectFacts(obj Object, info KindInfo, req *Request, ns Namespace, nsKnown bool) (map[string]any, error) {
	nsName := ns.Name
	switch {
	case info.HasPod():
		wf := getWorkloadFacts()
		defer putWorkloadFacts(wf)
		if err := e.computeWorkloadFacts(wf, obj, info, req, ns, nsKnown); err != nil {
			return nil, err
		}
		wf.QuarantineTamper = quarantineTamper(obj, info, req)
		wf.QuarantineByMeshguard = e.quarantineByMeshguard(req)
		return wf.Map(), nil
	case info.Group == "" && info.Kind == "Namespace":
		return e.namespaceFacts(obj, req)
	case info.Group == "" && info.Kind == "Service":
		// Pods are listed only for a named targetPort: converting a
		// namespace's cached pods costs more than judging the Service.
		return serviceFactsWithPods(obj, func() []Object { return e.namespacePods(nsName) })
	case info.Group == "" && info.Kind == "Endpoints",
		info.Group == "discovery.k8s.io" && info.Kind == "EndpointSlice":
		return endpointsFacts(obj, info.Kind, req)
	case info.Group == "networking.istio.io" && info.Kind == "ServiceEntry":
		f := seFactsPool.Get().(*ServiceEntryFacts)
		defer putServiceEntryFacts(f)
		if err := e.computeServiceEntryFacts(f, obj, req, nsName); err != nil {
			return nil, err
		}
		return f.Map(), nil
	case info.Group == "" && info.Kind == "Binding":
		return bindingFacts(obj)
	case info.Group == "" && info.Kind == "ConfigMap":
		return e.configMapFacts(obj)
	case info.Group == "networking.k8s.io" && info.Kind == "NetworkPolicy":
		f := npFactsPool.Get().(*NetworkPolicyFacts)
		defer putNetworkPolicyFacts(f)
		if err := e.computeNetworkPolicyFacts(f, obj, req, ns); err != nil {
			return nil, err
		}
		return f.Map(), nil
	case info.Group == "security.istio.io" && info.Kind == "PeerAuthentication":
		return e.peerAuthenticationFacts(obj, nsName)
	case info.Group == "security.istio.io" && info.Kind == "AuthorizationPolicy":
		f := apFactsPool.Get().(*AuthorizationPolicyFacts)
		defer putAuthorizationPolicyFacts(f)
		if err := e.computeAuthorizationPolicyFacts(f, obj, nsName); err != nil {
			return nil, err
		}
		e.managedPolicyFacts(&f.ManagedPolicy, obj, req, ns)
		return f.Map(), nil
	case info.Group == "security.istio.io" && info.Kind == "RequestAuthentication":
		return e.requestAuthenticationFacts(obj, nsName)
	case info.Group == "networking.istio.io" && info.Kind == "DestinationRule":
		return e.destinationRuleFacts(obj, nsName)
	case info.Kind == "Gateway" && (info.Group == "networking.istio.io" || info.Group == "gateway.networking.k8s.io"):
		return e.gatewayFacts(obj, info.Group, nsName)
	case info.Group == "networking.istio.io" && info.Kind == "EnvoyFilter":
		return e.envoyFilterFacts(obj, nsName)
	case info.Group == "extensions.istio.io" && (info.Kind == "WasmPlugin" || info.Kind == "TrafficExtension"):
		return e.extensionFacts(obj, info.Kind, nsName)
	}
	if err := checkType(obj, "", "spec", "object"); err != nil {
		return nil, err
	}
	return map[string]any{}, nil
}

// computeServiceEntryFacts fills f (empty, its list arrays maybe reused
// from the pool).
func (e *engine) computeServiceEntryFacts(f *ServiceEntryFacts, obj Object, req *Request, ns string) error {
	if err := e.serviceEntryFacts(f, obj, ns); err != nil {
		return err
	}
	return e.serviceEntryAliasFacts(f, obj, req, ns)
}

func (e *engine) namespaceFacts(obj Object, req *Request) (map[string]any, error) {
	var f NamespaceFacts
	if err := e.computeNamespaceFacts(&f, obj, req); err != nil {
		return nil, err
	}
	return f.Map(), nil
}

// computeNamespaceFacts fills f with the facts of a Namespace.
func (e *engine) computeNamespaceFacts(f *NamespaceFacts, obj Object, req *Request) error {
	meta := mapAt(obj, "metadata")
	if err := checkType(meta, "metadata", "labels", "object"); err != nil {
		return err
	}
	cur := Namespace{Name: str(meta, "name"), Labels: stringMap(meta["labels"])}
	f.Mode = namespaceMode(cur, e.cfg)
	f.Labels = stringAnyMap(cur.Labels)
	f.Enrollment = enrollmentText(cur.Labels)
	var oldLabels, oldAnn map[string]string
	oldProfile, hadProfile := "", false
	if req.OldObject != nil {
		oldMeta := mapAt(req.OldObject, "metadata")
		old := Namespace{Name: str(oldMeta, "name"), Labels: stringMap(oldMeta["labels"])}
		f.OldMode = NullString{Value: namespaceMode(old, e.cfg), Valid: true}
		oldProfile, hadProfile = old.Labels[labelNetpolProfile]
		f.OldEnrollment = OptString{Value: enrollmentText(old.Labels), Set: true}
		oldLabels, oldAnn = old.Labels, stringMap(oldMeta["annotations"])
	}
	changes := guardKeyChanges("label", oldLabels, cur.Labels)
	curAnn := stringMap(meta["annotations"])
	changes = append(changes, guardKeyChanges("annotation", oldAnn, curAnn)...)
	// The SCC annotations set the proxy's UID and GID on OpenShift: a tenant
	// who set them could run an app as the proxy's UID, outside capture
	// (MESH0140). Guarded on every platform (an unused annotation costs
	// nothing to guard, and the platform may be mis-set); the platform's own
	// allocation controller may write them.
	if req.User == nil || !e.cfg.platformWriter(req.User.Username) {
		changes = append(changes, sccKeyChanges(oldAnn, curAnn)...)
	}
	f.GuardChanges, f.guardBoxed = anyStrings(changes), changes
	if req.OldObject != nil && f.OldMode.Value != f.Mode {
		stranded, err := e.strandedPods(cur, Namespace{Name: cur.Name, Labels: oldLabels, Annotations: oldAnn})
		if err != nil {
			return err
		}
		f.StrandedPods = stranded
	}
	f.NetpolOptOut = netpolOptOut(cur.Labels, oldProfile, hadProfile)
	// The namespace's effective mTLS and whether its authorization is
	// default-deny, for compliance rules (the platform team's custom rules).
	mt := e.eng.NamespaceMTLS(e.ctx, cur.Name)
	f.MTLS = NamespaceMTLSFacts{Mode: mt.Mode, Source: mt.Source, Level: mt.Level}
	az := e.eng.NamespaceAuthz(e.ctx, cur.Name)
	f.Authz = NamespaceAuthzFacts{DefaultDeny: az.DefaultDeny, Source: az.Source, Level: az.Level}
	f.Netpol = e.netpolFacts(cur, meta["deletionTimestamp"] != nil)
	f.Revision = cur.Labels[labelRev]
	// istio-injection beats istio.io/rev, so the revision matters only without it.
	if _, legacy := cur.Labels[labelInjection]; !legacy {
		f.RevisionKnown = e.revisionKnownFact(f.Revision)
	}
	return nil
}

// anyStrings returns the strings of a list of facts built as []any.
func anyStrings(l []any) []string {
	if len(l) == 0 {
		return nil
	}
	out := make([]string, 0, len(l))
	for _, v := range l {
		out = append(out, v.(string))
	}
	return out
}

// bindingFacts lists the Istio and meshguard labels and annotations a
// Binding would copy onto its pod (MESH0117).
func bindingFacts(obj Object) (map[string]any, error) {
	f, err := bindingFactsTyped(obj)
	if err != nil {
		return nil, err
	}
	return f.Map(), nil
}

func bindingFactsTyped(obj Object) (BindingFacts, error) {
	var f BindingFacts
	meta := mapAt(obj, "metadata")
	for _, k := range []string{"labels", "annotations"} {
		if err := checkType(meta, "metadata", k, "object"); err != nil {
			return f, err
		}
	}
	for _, kind := range []string{"label", "annotation"} {
		m := stringMap(meta[kind+"s"])
		for _, k := range sortedStringKeys(m) {
			if MeshKey(k) {
				f.MeshMetadata = append(f.MeshMetadata, fmt.Sprintf("sets %s %s=%s", kind, k, quote(m[k])))
			}
		}
	}
	return f, nil
}

// MeshKey reports whether a label or annotation key belongs to Istio
// (istio.io and its subdomains: sidecar.istio.io, traffic.sidecar.istio.io,
// ambient.istio.io, ...) or to meshguard (meshguard.io).
func MeshKey(k string) bool {
	i := strings.IndexByte(k, '/')
	if i < 0 {
		return false
	}
	domain := strings.ToLower(k[:i])
	for _, d := range []string{"istio.io", "meshguard.io"} {
		if domain == d || strings.HasSuffix(domain, "."+d) {
			return true
		}
	}
	return false
}

func sortedStringKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// guardPrefix marks meshguard's own labels and annotations.
const guardPrefix = "meshguard.io/"

// guardKeyChanges describes every meshguard.io/ key added, changed or removed
// between two maps.
func guardKeyChanges(what string, old, cur map[string]string) []any {
	return keyChanges(what, old, cur, func(k string) bool { return strings.HasPrefix(k, guardPrefix) })
}

// keyChanges describes, in key order, every key that guarded accepts and
// that is set, changed or removed between two maps ("removes label k=\"v\"",
// "sets annotation k=\"v\"", "changes label k from \"a\" to \"b\"").
func keyChanges(what string, old, cur map[string]string, guarded func(string) bool) []any {
	var keys []string
	seen := map[string]bool{}
	for _, m := range []map[string]string{old, cur} {
		for k := range m {
			if !seen[k] && guarded(k) {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	sort.Strings(keys)
	var out []any
	for _, k := range keys {
		ov, had := old[k]
		nv, has := cur[k]
		switch {
		case had && !has:
			out = append(out, fmt.Sprintf("removes %s %s=%s", what, k, quote(ov)))
		case !had && has:
			out = append(out, fmt.Sprintf("sets %s %s=%s", what, k, quote(nv)))
		case ov != nv:
			out = append(out, fmt.Sprintf("changes %s %s from %s to %s", what, k, quote(ov), quote(nv)))
		}
	}
	return out
}

// sccKeyChanges describes every openshift.io/sa.scc.* annotation that
// proxyIDs reads, added, changed or removed between two maps.
func sccKeyChanges(old, cur map[string]string) []any {
	var out []any
	for _, k := range []string{annSCCUIDRange, annSCCSupplementals} {
		ov, had := old[k]
		nv, has := cur[k]
		switch {
		case had && !has:
			out = append(out, fmt.Sprintf("removes annotation %s=%s", k, quote(ov)))
		case !had && has:
			out = append(out, fmt.Sprintf("sets annotation %s=%s", k, quote(nv)))
		case ov != nv:
			out = append(out, fmt.Sprintf("changes annotation %s from %s to %s", k, quote(ov), quote(nv)))
		}
	}
	return out
}

// enrollmentText describes a namespace's enrollment labels for messages.
func enrollmentText(labels map[string]string) string {
	var parts []string
	for _, k := range []string{labelInjection, labelRev, labelDataplaneMode} {
		if v, ok := labels[k]; ok {
			if v == "" {
				v = `""`
			}
			parts = append(parts, fmt.Sprintf("%s=%s", k, v))
		}
	}
	if len(parts) == 0 {
		return "no enrollment label"
	}
	s := parts[0]
	for _, p := range parts[1:] {
		s += ", " + p
	}
	return s
}

func serviceFacts(obj Object) (map[string]any, error) {
	return serviceFactsWithPods(obj, func() []Object { return nil })
}

// serviceFactsWithPods computes a Service's facts; named targetPorts are
// resolved against pods() (those of its namespace the context knows), called
// at most once and only for a named targetPort.
func serviceFactsWithPods(obj Object, pods func() []Object) (map[string]any, error) {
	f, err := serviceFactsTyped(obj, pods)
	if err != nil {
		return nil, err
	}
	return f.Map(), nil
}

func serviceFactsTyped(obj Object, pods func() []Object) (ServiceFacts, error) {
	var f ServiceFacts
	var podList []Object
	listed := false
	if err := checkType(obj, "", "spec", "object"); err != nil {
		return f, err
	}
	spec := mapAt(obj, "spec")
	if err := checkType(spec, "spec", "ports", "array"); err != nil {
		return f, err
	}
	for _, c := range [...]struct{ k, t string }{{"externalIPs", "array"}, {"type", "string"}, {"selector", "object"}} {
		if err := checkType(spec, "spec", c.k, c.t); err != nil {
			return f, err
		}
	}
	typ := str(spec, "type")
	exposure := ""
	switch {
	case typ == "LoadBalancer" || typ == "NodePort":
		exposure = "type " + typ
	case len(listAt(spec, "externalIPs")) > 0:
		var ips []string
		for _, ip := range listAt(spec, "externalIPs") {
			ips = append(ips, fmt.Sprint(ip))
		}
		exposure = "externalIPs " + strings.Join(ips, ", ")
	}
	sel := stringMap(spec["selector"])
	selectsIstiod := sel["app"] == "istiod" || sel["istio"] == "pilot"
	for i, p := range listAt(spec, "ports") {
		pm, ok := p.(map[string]any)
		if !ok {
			return f, fmt.Errorf("spec.ports[%d]: expected object, got %s", i, jsonType(p))
		}
		// The fields as the API types them (port an int32, targetPort an
		// IntOrString), so a malformed manifest is an error naming the field
		// instead of a port read as 0 or a targetPort as absent; the path is
		// built only for an error.
		for _, c := range [...]struct{ k, t string }{{"port", "integer"}, {"targetPort", "integer or string"}, {"protocol", "string"}} {
			if v, bad := wrongType(pm, c.k, c.t); bad {
				return f, typeError(fmt.Sprintf("spec.ports[%d]", i), c.k, c.t, v)
			}
		}
		port, _ := intAt(pm, "port")
		// The API server defaults an absent, 0 or "" targetPort to port.
		type resolved struct {
			target int64
			via    string // how a named target port resolved
		}
		targets := []resolved{{target: port}}
		if t, ok := intAt(pm, "targetPort"); ok && t != 0 {
			targets = []resolved{{target: t}}
		} else if name, named := pm["targetPort"].(string); named && name != "" {
			// A named target port resolves per pod: see through the name
			// with the pods the context knows.
			targets = nil
			if !listed {
				podList, listed = pods(), true
			}
			for _, h := range resolveNamedPort(podList, labelsMatch(sel), name, str(pm, "protocol")) {
				targets = append(targets, resolved{target: h.port, via: quote(name) + ", " + hitText(h)})
			}
		}
		for _, r := range targets {
			target := r.target
			if r.via == "" {
				r.via = strconv.FormatInt(target, 10)
			}
			if what, bad := envoyInternalPorts[target]; bad {
				f.EnvoyInternalPorts = append(f.EnvoyInternalPorts, ServicePortFacts{
					Port: float64(port), Target: float64(target),
					Text: fmt.Sprintf("port %d targets %s (%s)", port, r.via, what),
				})
			}
			// 8080 is istiod's debug port only on istiod; elsewhere it is an
			// ordinary application port.
			if what, cp := controlPlanePorts[target]; cp && (target != 8080 || selectsIstiod) {
				f.ControlPlanePorts = append(f.ControlPlanePorts, ControlPlanePortFacts{
					Port: float64(port), Target: float64(target), Istiod: target == 15010 || target == 15014 || target == 8080,
					Text: fmt.Sprintf("port %d targets %s (%s)", port, r.via, what),
				})
			}
		}
	}
	f.External, f.Exposure, f.SelectsIstiod = exposure != "", exposure, selectsIstiod
	return f, nil
}

// computeNetworkPolicyFacts fills f (empty, its list arrays maybe reused
// from the pool): the policy's own facts, named ports resolved on the
// namespace's pods, and the managed-policy facts.
func (e *engine) computeNetworkPolicyFacts(f *NetworkPolicyFacts, obj Object, req *Request, ns Namespace) error {
	if err := networkPolicyOwnFacts(f, obj); err != nil {
		return err
	}
	if spec := mapAt(obj, "spec"); f.IngressOn && netpolHasNamedPorts(spec) {
		if pods := e.namespacePods(ns.Name); len(pods) > 0 {
			f.IngressEnvoyInternalPorts = netpolNamedEnvoyPorts(f.IngressEnvoyInternalPorts, spec, pods)
		}
	}
	e.managedPolicyFacts(&f.ManagedPolicy, obj, req, ns)
	return nil
}

// networkPolicyFacts returns the facts of a NetworkPolicy judged alone (no
// pods, no request).
func networkPolicyFacts(obj Object) (map[string]any, error) {
	var f NetworkPolicyFacts
	if err := networkPolicyOwnFacts(&f, obj); err != nil {
		return nil, err
	}
	return f.Map(), nil
}

// networkPolicyOwnFacts fills the facts f that the policy alone decides.
func networkPolicyOwnFacts(f *NetworkPolicyFacts, obj Object) error {
	if err := checkType(obj, "", "spec", "object"); err != nil {
		return err
	}
	spec := mapAt(obj, "spec")
	for _, k := range []string{"ingress", "egress", "policyTypes"} {
		if err := checkType(spec, "spec", k, "array"); err != nil {
			return err
		}
	}
	ingressOn, egressOn := true, len(listAt(spec, "egress")) > 0
	if types := listAt(spec, "policyTypes"); len(types) > 0 {
		ingressOn, egressOn = false, false
		for _, t := range types {
			switch t {
			case "Ingress":
				ingressOn = true
			case "Egress":
				egressOn = true
			}
		}
	}
	if err := checkType(spec, "spec", "podSelector", "object"); err != nil {
		return err
	}
	// Type checks first, in both directions whether in effect or not: every
	// rule an object, its peers and ports arrays, and each peer's and port
	// entry's fields as the API types them (a port is an IntOrString, endPort
	// an int32, ipBlock.cidr a string), so a malformed manifest is an error
	// naming the field, as the API server's decoding would be, instead of a
	// port read as absent (every port) or a peer read as no ipBlock. The path
	// is built only for an error: the checks cost no allocation.
	for _, d := range [][2]string{{"ingress", "from"}, {"egress", "to"}} {
		for i, r := range listAt(spec, d[0]) {
			rm, ok := r.(map[string]any)
			if !ok && r != nil {
				return fmt.Errorf("spec.%s[%d]: expected object, got %s", d[0], i, jsonType(r))
			}
			for _, c := range []string{d[1], "ports"} {
				if v, bad := wrongType(rm, c, "array"); bad {
					return typeError(fmt.Sprintf("spec.%s[%d]", d[0], i), c, "array", v)
				}
			}
			for j, p := range listAt(rm, d[1]) {
				pm, ok := p.(map[string]any)
				if !ok && p != nil {
					return fmt.Errorf("spec.%s[%d].%s[%d]: expected object, got %s", d[0], i, d[1], j, jsonType(p))
				}
				for _, c := range [...]string{"ipBlock", "namespaceSelector", "podSelector"} {
					if v, bad := wrongType(pm, c, "object"); bad {
						return typeError(fmt.Sprintf("spec.%s[%d].%s[%d]", d[0], i, d[1], j), c, "object", v)
					}
				}
				block := mapAt(pm, "ipBlock")
				for _, c := range [...]struct{ k, t string }{{"cidr", "string"}, {"except", "array"}} {
					if v, bad := wrongType(block, c.k, c.t); bad {
						return typeError(fmt.Sprintf("spec.%s[%d].%s[%d].ipBlock", d[0], i, d[1], j), c.k, c.t, v)
					}
				}
			}
			for j, p := range listAt(rm, "ports") {
				pm, ok := p.(map[string]any)
				if !ok && p != nil {
					return fmt.Errorf("spec.%s[%d].ports[%d]: expected object, got %s", d[0], i, j, jsonType(p))
				}
				for _, c := range [...]struct{ k, t string }{{"port", "integer or string"}, {"endPort", "integer"}, {"protocol", "string"}} {
					if v, bad := wrongType(pm, c.k, c.t); bad {
						return typeError(fmt.Sprintf("spec.%s[%d].ports[%d]", d[0], i, j), c.k, c.t, v)
					}
				}
			}
		}
	}
	var err error
	f.IngressAllowAll, f.IngressAnyIP, f.IngressAllNamespaces, err = netpolPeerFacts(spec, "ingress", "from", ingressOn,
		f.IngressAllowAll, f.IngressAnyIP, f.IngressAllNamespaces)
	if err != nil {
		return err
	}
	// Egress peers matching every namespace are not facts: a scratch list.
	f.EgressAllowAll, f.EgressAnyIP, _, err = netpolPeerFacts(spec, "egress", "to", egressOn, f.EgressAllowAll, f.EgressAnyIP, nil)
	if err != nil {
		return err
	}
	sel := mapAt(spec, "podSelector")
	// NotIn and DoesNotExist requirements select every pod but a few, which
	// is every pod for the severity.
	f.SelectsAllPods = selectsEveryPod(sel)
	f.SelectsGateway = gatewaySelector(stringMap(sel["matchLabels"]))
	f.IngressEnvoyInternalPorts = netpolEnvoyPorts(f.IngressEnvoyInternalPorts, spec, ingressOn)
	f.IngressOn = ingressOn
	f.IngressGatewayOpen = gatewayOpenPorts(f.IngressGatewayOpen, spec, ingressOn)
	return nil
}

// gatewaySelector tells which Istio gateway a NetworkPolicy's podSelector
// labels select: "ingress" (ingress, east-west and Gateway API gateways),
// "egress", or "" (RULES.md MESH0212, MESH0216).
func gatewaySelector(labels map[string]string) string {
	switch {
	case labels["istio"] == "ingressgateway" || labels["app"] == "istio-ingressgateway" ||
		labels["istio"] == "eastwestgateway" || labels["app"] == "istio-eastwestgateway":
		return "ingress"
	case labels["gateway.networking.k8s.io/gateway-name"] != "":
		return "ingress"
	case labels["istio"] == "egressgateway" || labels["app"] == "istio-egressgateway":
		return "egress"
	}
	return ""
}

// netpolEnvoyInternal are the pod-internal proxy ports MESH0214 names (15002,
// failure detection, is not in its list).
var netpolEnvoyInternal = []int64{15000, 15001, 15004, 15006, 15053}

// netpolEnvoyPorts appends to out the ingress ports entries whose port, or
// port..endPort range, covers a pod-internal Envoy port. Named ports and
// entries without a port are not resolved.
func netpolEnvoyPorts(out []NetpolEnvoyPortFacts, spec map[string]any, on bool) []NetpolEnvoyPortFacts {
	if !on {
		return out
	}
	for i, r := range listAt(spec, "ingress") {
		for j, p := range listAt(asMap(r), "ports") {
			pm := asMap(p)
			port, ok := intAt(pm, "port")
			if !ok {
				continue
			}
			end := port
			if e, ok := intAt(pm, "endPort"); ok && e > port {
				end = e
			}
			var hit []string
			for _, ip := range netpolEnvoyInternal {
				if ip >= port && ip <= end {
					hit = append(hit, fmt.Sprintf("%d (%s)", ip, envoyInternalPorts[ip]))
				}
			}
			if len(hit) == 0 {
				continue
			}
			what := fmt.Sprintf("port %d", port)
			if end != port {
				what = fmt.Sprintf("ports %d-%d", port, end)
			}
			out = append(out, NetpolEnvoyPortFacts{
				At:   fmt.Sprintf("spec.ingress[%d].ports[%d]", i, j),
				Text: fmt.Sprintf("spec.ingress[%d].ports[%d] opens %s, covering %s", i, j, what, strings.Join(hit, ", ")),
			})
		}
	}
	return out
}

// namespaceBinding is the $namespace binding: what is known about the object's namespace.
func (e *engine) namespaceBinding(ns Namespace, known bool) map[string]any {
	mode := ModeUnknown
	if known {
		mode = namespaceMode(ns, e.cfg)
	} else if e.cfg.DefaultNamespaceMode != ModeUnknown {
		mode = e.cfg.DefaultNamespaceMode
	}
	return map[string]any{
		"name":   ns.Name,
		"known":  known,
		"mode":   modeValue(mode),
		"labels": stringAnyMap(ns.Labels),
		"exempt": e.cfg.exemptNamespace(ns.Name),
	}
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Managed NetworkPolicies (MESH0215) and the profile label (MESH0105).
const (
	labelNetpolManaged   = "meshguard.io/managed"
	labelNetpolManagedBy = "app.kubernetes.io/managed-by"
	labelNetpolProfile   = "meshguard.io/netpol-profile"
	annNetpolVersion     = "meshguard.io/policy-set-version"
	// The actors of namespace deletion and garbage collection.
	userNamespaceController = "system:serviceaccount:kube-system:namespace-controller"
	userGarbageCollector    = "system:serviceaccount:kube-system:generic-garbage-collector"
)

// netpolOptOut describes a request that sets or changes the namespace's
// meshguard.io/netpol-profile label to a value that leaves its application
// pods without the default-deny set (none, system, gateway); "" otherwise.
func netpolOptOut(labels map[string]string, old string, hadOld bool) string {
	v, ok := labels[labelNetpolProfile]
	if !ok || (hadOld && v == old) {
		return ""
	}
	switch v {
	case "none", "system":
		return fmt.Sprintf("sets label %s=%s (no managed default-deny NetworkPolicies)", labelNetpolProfile, quote(v))
	case "gateway":
		return fmt.Sprintf("sets label %s=%s (only the ingress gateway pods protected)", labelNetpolProfile, quote(v))
	}
	return ""
}

// managedPolicyFacts adds what MESH0215 (NetworkPolicies) and MESH0025
// (AuthorizationPolicies) need to the facts of a policy meshguard may manage:
// managed (the policy as it was before the request carries
// meshguard.io/managed: "true"), tamper[] (what the request does to it: a
// DELETE, a spec change, a change of a meshguard.io/ label or annotation or
// of app.kubernetes.io/managed-by, or of owner references, which would hand it
// to garbage collection), actor ("meshguard" for the controller's own
// identity, "namespace-deletion" for the namespace controller or garbage
// collector deleting while the namespace really terminates, else "") and
// actorNote (why a system actor is not trusted, for the message).
func (e *engine) managedPolicyFacts(f *ManagedPolicy, obj Object, req *Request, ns Namespace) {
	op := req.Operation
	before := req.OldObject
	if op == "DELETE" {
		before = obj
	}
	tamper := f.Tamper
	managed := false
	if before != nil && op != "CREATE" && op != "" {
		oldMeta := mapAt(before, "metadata")
		managed = stringMap(oldMeta["labels"])[labelNetpolManaged] == "true"
		if op == "DELETE" {
			tamper = append(tamper, "deletes it")
		} else {
			meta := mapAt(obj, "metadata")
			if !jsonEqual(before["spec"], obj["spec"]) {
				tamper = append(tamper, "changes its spec")
			}
			for _, c := range guardedKeyChanges("label", stringMap(oldMeta["labels"]), stringMap(meta["labels"])) {
				tamper = append(tamper, c.(string))
			}
			for _, c := range guardedKeyChanges("annotation", stringMap(oldMeta["annotations"]), stringMap(meta["annotations"])) {
				tamper = append(tamper, c.(string))
			}
			if !jsonEqual(oldMeta["ownerReferences"], meta["ownerReferences"]) {
				tamper = append(tamper, "changes its owner references")
			}
		}
	}
	actor, note := "", ""
	if req.User != nil {
		switch u := req.User.Username; {
		case u != "" && u == e.cfg.ControllerUsername:
			actor = "meshguard"
		case (u == userNamespaceController || u == userGarbageCollector) && op == "DELETE":
			if ns.Terminating {
				actor = "namespace-deletion"
			} else {
				note = fmt.Sprintf(" (namespace %s is not terminating)", quote(ns.Name))
			}
		}
	}
	f.Managed = managed
	// A quarantine's policy (meshguard quarantine): meshguard admins may
	// remove it (meshguard release), unlike the default-deny set.
	f.QuarantinePolicy = before != nil && stringMap(mapAt(before, "metadata")["labels"])[labelQuarantinePolicy] != ""
	f.Tamper, f.Actor, f.ActorNote = tamper, actor, note
}

// guardedKeyChanges lists the changes of meshguard's own labels or
// annotations (meshguard.io/ and app.kubernetes.io/managed-by) between old
// and cur.
func guardedKeyChanges(what string, old, cur map[string]string) []any {
	return keyChanges(what, old, cur, func(k string) bool { return strings.HasPrefix(k, guardPrefix) || k == labelNetpolManagedBy })
}

// jsonEqual compares two decoded JSON values; absent (nil) equals an empty object or list.
func jsonEqual(a, b any) bool {
	empty := func(v any) bool {
		switch x := v.(type) {
		case nil:
			return true
		case map[string]any:
			return len(x) == 0
		case []any:
			return len(x) == 0
		}
		return false
	}
	if empty(a) && empty(b) {
		return true
	}
	return reflect.DeepEqual(a, b)
}
