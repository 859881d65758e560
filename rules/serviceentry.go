package rules

import (
	"fmt"
	"net"
	"sort"
	"strings"
)

// ServiceEntries is implemented by contexts that know the cluster's
// ServiceEntries (the webhook's cache; in `meshguard audit` the input or the
// cluster). A host that a ServiceEntry sends to an in-mesh Service is in-mesh
// too (MESH0010, MESH0011).
type ServiceEntries interface {
	// ServiceEntries returns every ServiceEntry of every namespace.
	ServiceEntries() []Object
}

// seAlias is a ServiceEntry that makes a DestinationRule host an alias of
// in-mesh workloads.
type seAlias struct {
	// text says why, e.g. `ServiceEntry shop/reviews-alias sends it to in-mesh
	// "reviews.shop.svc.cluster.local"`.
	text string
	// namespace is the one namespace of the in-mesh workloads, "" when
	// several or not known.
	namespace string
}

// serviceEntryAliases returns the ServiceEntries of the context whose hosts a
// DestinationRule host (in namespace drNS) names or covers, and that send
// those hosts to in-mesh workloads: an `endpoints[].address` that is an
// in-mesh host by its spelling (meshHost: a short name, <svc>.<ns>.svc[.<cluster
// domain>]), which Envoy resolves with DNS resolution, or a `workloadSelector`,
// which selects pods (and WorkloadEntries) of the ServiceEntry's namespace,
// unless that namespace is known to be outside the mesh. A ServiceEntry
// exported nowhere (`exportTo: ["~"]`) is never seen by a client.
//
// Endpoint IP addresses and `spec.addresses` are not resolved: meshguard does
// not know which addresses are pods or Service IPs. meshHost's spelling rules
// stay as they are; this only adds hosts (see destinationRuleFacts).
func (e *engine) serviceEntryAliases(host, drNS string) []seAlias {
	se, ok := e.ctx.(ServiceEntries)
	if !ok || strings.TrimSpace(host) == "" {
		return nil
	}
	var out []seAlias
	for _, obj := range se.ServiceEntries() {
		matched := ""
		for _, h := range listAt(mapAt(obj, "spec"), "hosts") {
			if hs, _ := h.(string); hs != "" && hostsOverlap(host, hs) {
				matched = hs
				break
			}
		}
		if matched == "" {
			continue
		}
		if to, ns, in := e.serviceEntryInMesh(obj); in {
			meta := mapAt(obj, "metadata")
			ref := "ServiceEntry " + str(meta, "namespace") + "/" + str(meta, "name")
			out = append(out, seAlias{text: fmt.Sprintf("%s sends %s to %s", ref, quote(matched), to), namespace: ns})
		}
	}
	return out
}

// serviceEntryInMesh reports whether a ServiceEntry sends its hosts to
// in-mesh workloads (see serviceEntryAliases), where to (`in-mesh
// "reviews.shop.svc.cluster.local"`, `the workloads its workloadSelector
// app=reviews selects in namespace shop`), and their one namespace ("" when
// several or not known).
func (e *engine) serviceEntryInMesh(obj Object) (to, namespace string, inMesh bool) {
	meta, spec := mapAt(obj, "metadata"), mapAt(obj, "spec")
	seNS := str(meta, "namespace")
	if exportedNowhere(listAt(spec, "exportTo")) {
		return "", "", false
	}
	var targets []string
	targetNS := map[string]bool{}
	for _, ep := range listAt(spec, "endpoints") {
		addr := strings.TrimSpace(str(asMap(ep), "address"))
		if addr == "" || net.ParseIP(addr) != nil || strings.HasPrefix(addr, "unix://") {
			continue
		}
		// A short endpoint name is resolved by the client proxy's DNS
		// search path: in-mesh in whichever namespace that is.
		in, _, ns := meshHost(addr, "", e.cfg.ClusterDomain)
		if in {
			targets = append(targets, quote(addr))
			targetNS[ns] = true
		}
	}
	if len(targets) > 0 {
		sort.Strings(targets)
		ns := ""
		if len(targetNS) == 1 {
			for n := range targetNS {
				ns = n
			}
		}
		return "in-mesh " + strings.Join(targets, ", "), ns, true
	}
	if sel := mapAt(spec, "workloadSelector"); sel != nil {
		if n, known := e.ctx.Namespace(seNS); known && namespaceMode(n, e.cfg) == ModeNone {
			return "", "", false
		}
		return fmt.Sprintf("the workloads its workloadSelector %s selects in namespace %s", labelsText(stringMap(sel["labels"])), seNS), seNS, true
	}
	return "", "", false
}

// exportedNowhere reports an exportTo of only "~".
func exportedNowhere(exportTo []any) bool {
	if len(exportTo) == 0 {
		return false
	}
	for _, x := range exportTo {
		if x != "~" {
			return false
		}
	}
	return true
}

// hostsOverlap reports whether two Istio hosts can name the same service:
// equal (ignoring case), or one a wildcard ("*" then a suffix, Istio's
// host.Name.Matches) covering the other.
func hostsOverlap(a, b string) bool {
	a, b = strings.ToLower(strings.TrimSpace(a)), strings.ToLower(strings.TrimSpace(b))
	if a == b {
		return true
	}
	covers := func(w, h string) bool {
		return strings.HasPrefix(w, "*") && strings.HasSuffix(strings.TrimPrefix(h, "*"), w[1:])
	}
	return covers(a, b) || covers(b, a)
}

// DestinationRules is implemented by contexts that know the cluster's
// DestinationRules (the webhook's cache; in `meshguard audit` the input or
// the cluster). A ServiceEntry that makes a host in-mesh is judged against
// the DestinationRules that already name that host (MESH0010, MESH0011).
type DestinationRules interface {
	// DestinationRules returns every DestinationRule of every namespace.
	DestinationRules() []Object
}

// serviceEntryAliasFacts adds to a ServiceEntry's facts f (serviceEntryFacts)
// the judgement of a ServiceEntry that sends its hosts to in-mesh
// workloads (serviceEntryInMesh) against the DestinationRules of the context
// whose host is not in-mesh by its spelling (those were judged on their own)
// and names or covers one of its hosts: each TLS setting that disables TLS
// (MESH0010) or originates non-Istio TLS (MESH0011) towards what is now an
// in-mesh host. This closes the order "DestinationRule first, ServiceEntry
// alias second"; the DestinationRule side is destinationRuleFacts. Only at
// admission (a request with a user): offline, every DestinationRule is judged
// with every ServiceEntry in its context, and carries the finding itself.
func (e *engine) serviceEntryAliasFacts(f *ServiceEntryFacts, obj Object, req *Request, ns string) error {
	if err := checkType(obj, "", "spec", "object"); err != nil {
		return err
	}
	spec := mapAt(obj, "spec")
	for _, c := range []struct{ k, t string }{{"hosts", "array"}, {"endpoints", "array"}, {"exportTo", "array"}, {"workloadSelector", "object"}} {
		if err := checkType(spec, "spec", c.k, c.t); err != nil {
			return err
		}
	}
	view := obj
	if str(mapAt(obj, "metadata"), "namespace") == "" {
		view = Object{"metadata": map[string]any{"name": str(mapAt(obj, "metadata"), "name"), "namespace": ns}, "spec": spec}
	}
	dl, ok := e.ctx.(DestinationRules)
	if !ok || req == nil || req.User == nil {
		return nil
	}
	to, targetNS, in := e.serviceEntryInMesh(view)
	if !in {
		return nil
	}
	outsideMesh := false
	if targetNS != "" {
		if n, known := e.ctx.Namespace(targetNS); known && namespaceMode(n, e.cfg) == ModeNone {
			outsideMesh = true
		}
	}
	drs := append([]Object(nil), dl.DestinationRules()...)
	sort.Slice(drs, func(i, j int) bool {
		a, b := mapAt(drs[i], "metadata"), mapAt(drs[j], "metadata")
		return str(a, "namespace")+"/"+str(a, "name") < str(b, "namespace")+"/"+str(b, "name")
	})
	for _, dr := range drs {
		meta := mapAt(dr, "metadata")
		drNS := str(meta, "namespace")
		host := str(mapAt(dr, "spec"), "host")
		if spelled, _, _ := meshHost(host, drNS, e.cfg.ClusterDomain); spelled {
			continue
		}
		matched := false
		for _, h := range listAt(spec, "hosts") {
			if hs, _ := h.(string); hs != "" && hostsOverlap(host, hs) {
				matched = true
				break
			}
		}
		if !matched {
			continue
		}
		df := drFactsPool.Get().(*DestinationRuleFacts)
		if err := e.computeDestinationRuleFacts(df, dr, drNS); err != nil {
			putDestinationRuleFacts(df)
			continue // a malformed DestinationRule was refused or reported on its own
		}
		for _, t := range df.TLS {
			item := AliasedTLSFacts{Text: fmt.Sprintf("DestinationRule %s/%s: %s towards %s, which this ServiceEntry sends to %s",
				drNS, str(meta, "name"), t.Text, quote(host), to)}
			switch t.EffectiveMode {
			case "DISABLE":
				f.AliasedTLSDisable = append(f.AliasedTLSDisable, item)
			case "SIMPLE", "MUTUAL":
				if !outsideMesh {
					f.AliasedTLSOrigination = append(f.AliasedTLSOrigination, item)
				}
			}
		}
		putDestinationRuleFacts(df)
	}
	return nil
}
