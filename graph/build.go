package graph

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/meshguard/meshguard/rules"
)

// DefaultAssumedGateways is the ingress gateway assumed when the input holds
// none: the service account Istio's gateway chart creates for a release named
// istio-ingressgateway in the istio-ingress namespace.
func DefaultAssumedGateways() []string { return []string{"istio-ingress/istio-ingressgateway"} }

// DefaultTrustDomain is Istio's default trust domain.
const DefaultTrustDomain = "cluster.local"

// Options tune Compute.
type Options struct {
	// Engine supplies the mesh configuration (root namespace, cluster domain,
	// injector settings) and the rules' semantics. Required.
	Engine *rules.Engine
	// TrustDomain of the SPIFFE identities. Default DefaultTrustDomain.
	TrustDomain string
	// DefaultNamespace is the namespace of objects that name none. Default "default".
	DefaultNamespace string
	// Live says the objects are a live cluster's: Pods are seen after
	// injection (their sidecar is the container they run) and are grouped
	// into the workload that owns them. Default false: manifests, judged
	// before injection.
	Live bool
	// Findings, when given, are counted by severity on the nodes of the
	// objects they are about.
	Findings []rules.Finding
	// AssumedGateways are ingress gateways ("namespace/serviceaccount")
	// added as sources when the input holds no gateway pods. Default
	// DefaultAssumedGateways; an empty non-nil list assumes none.
	AssumedGateways []string
	// VerdictsOnly skips the reasons: Edge.Why holds only Allowing and
	// Conditions (the derivation of NetworkPolicies reads nothing else). It
	// saves most of the cost of a graph with many NetworkPolicies.
	VerdictsOnly bool
}

// workloadKinds are the kinds a workload node is made of.
var workloadKinds = map[schema.GroupKind]bool{
	{Kind: "Pod"}: true, {Kind: "ReplicationController"}: true,
	{Group: "apps", Kind: "Deployment"}: true, {Group: "apps", Kind: "ReplicaSet"}: true,
	{Group: "apps", Kind: "StatefulSet"}: true, {Group: "apps", Kind: "DaemonSet"}: true,
	{Group: "batch", Kind: "Job"}: true, {Group: "batch", Kind: "CronJob"}: true,
}

// Kinds are the kinds Compute reads; other objects are ignored. A cluster
// graph lists these.
func Kinds() []rules.KindInfo {
	var out []rules.KindInfo
	for _, gk := range []schema.GroupKind{
		{Kind: "Namespace"}, {Kind: "Service"}, {Kind: "Pod"}, {Kind: "ReplicationController"},
		{Group: "apps", Kind: "Deployment"}, {Group: "apps", Kind: "ReplicaSet"}, {Group: "apps", Kind: "StatefulSet"},
		{Group: "apps", Kind: "DaemonSet"}, {Group: "batch", Kind: "Job"}, {Group: "batch", Kind: "CronJob"},
		{Group: "networking.k8s.io", Kind: "NetworkPolicy"},
		{Group: "security.istio.io", Kind: "PeerAuthentication"}, {Group: "security.istio.io", Kind: "AuthorizationPolicy"},
		{Group: "networking.istio.io", Kind: "DestinationRule"},
	} {
		if k, ok := rules.LookupKind(gk); ok {
			out = append(out, k)
		}
	}
	return out
}

// endpoint is a node as the computation sees it.
type endpoint struct {
	node      Node
	refs      []string // object references ("Kind/ns/name") grouped into the node
	labels    map[string]string
	nsLabels  map[string]string
	mesh      rules.PodMesh
	named     map[string]int
	ips       []netip.Addr
	caller    int32 // index into identities; 0 is anonymous
	proxy     bool  // sends mTLS through a proxy (auto mTLS)
	ambient   bool
	dest      bool // receives edges
	services  map[int][]ServicePort
	nsIdx     int32 // index of the namespace among the endpoints'
	waypoint  string
	policyKey string
}

// group is one workload's objects before it becomes an endpoint.
type group struct {
	ns, kind, name string
	controller     rules.Object
	pods           []rules.Object
	refs           []string
}

type inputs struct {
	opts       Options
	cfg        rules.Config
	snap       *rules.Snapshot
	namespaces map[string]rules.Namespace
	services   map[string][]rules.Object
	netpols    []*networkingv1.NetworkPolicy
	aps        map[string][]*rules.AuthzPolicy
	drs        map[string][]rules.Object
	groups     map[string]*group
}

func str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

func mapAt(m map[string]any, path ...string) map[string]any {
	for _, p := range path {
		if m == nil {
			return nil
		}
		m, _ = m[p].(map[string]any)
	}
	return m
}

func stringMap(v any) map[string]string {
	m, _ := v.(map[string]any)
	out := make(map[string]string, len(m))
	for k, x := range m {
		if s, ok := x.(string); ok {
			out[k] = s
		}
	}
	return out
}

func objGK(o rules.Object) schema.GroupKind {
	av := str(o, "apiVersion")
	g := ""
	if i := strings.Index(av, "/"); i >= 0 {
		g = av[:i]
	}
	return schema.GroupKind{Group: g, Kind: str(o, "kind")}
}

// controllerOwner returns the kind and name of an object's controlling owner
// when that owner is a workload kind.
func controllerOwner(o rules.Object) (kind, name string, ok bool) {
	refs, _ := mapAt(o, "metadata")["ownerReferences"].([]any)
	for _, r := range refs {
		rm, _ := r.(map[string]any)
		if c, _ := rm["controller"].(bool); !c {
			continue
		}
		av := str(rm, "apiVersion")
		g := ""
		if i := strings.Index(av, "/"); i >= 0 {
			g = av[:i]
		}
		if workloadKinds[schema.GroupKind{Group: g, Kind: str(rm, "kind")}] {
			return str(rm, "kind"), str(rm, "name"), true
		}
	}
	return "", "", false
}

// read sorts the objects into what the computation needs. A policy that
// cannot be read is an error naming it and the field.
func read(objs []rules.Object, opts Options) (*inputs, error) {
	in := &inputs{
		opts: opts, cfg: opts.Engine.MeshConfig(), snap: rules.NewSnapshot(),
		namespaces: map[string]rules.Namespace{}, services: map[string][]rules.Object{},
		aps: map[string][]*rules.AuthzPolicy{}, drs: map[string][]rules.Object{}, groups: map[string]*group{},
	}
	workloads := map[string]rules.Object{}
	for _, o := range objs {
		gk := objGK(o)
		meta := mapAt(o, "metadata")
		ns, name := str(meta, "namespace"), str(meta, "name")
		if ns == "" && gk.Kind != "Namespace" {
			ns = opts.DefaultNamespace
		}
		ref := gk.Kind + "/" + ns + "/" + name
		switch {
		case gk == schema.GroupKind{Kind: "Namespace"}:
			in.snap.Add(o, opts.DefaultNamespace)
			if n, ok := in.snap.Namespace(name); ok {
				in.namespaces[name] = n
			}
		case gk == schema.GroupKind{Kind: "Service"}:
			in.services[ns] = append(in.services[ns], o)
		case gk == schema.GroupKind{Group: "networking.k8s.io", Kind: "NetworkPolicy"}:
			np := &networkingv1.NetworkPolicy{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o, np); err != nil {
				return nil, fmt.Errorf("NetworkPolicy %s/%s: %w", ns, name, err)
			}
			np.Namespace = ns
			in.netpols = append(in.netpols, np)
		case gk == schema.GroupKind{Group: "security.istio.io", Kind: "AuthorizationPolicy"}:
			p, err := rules.NewAuthzPolicy(o, ns)
			if err != nil {
				return nil, fmt.Errorf("AuthorizationPolicy %s/%s: %w", ns, name, err)
			}
			in.aps[p.Namespace] = append(in.aps[p.Namespace], p)
		case gk == schema.GroupKind{Group: "security.istio.io", Kind: "PeerAuthentication"}:
			in.snap.Add(o, ns)
		case gk == schema.GroupKind{Group: "networking.istio.io", Kind: "DestinationRule"}:
			in.drs[ns] = append(in.drs[ns], o)
		case workloadKinds[gk]:
			if name == "" {
				return nil, fmt.Errorf("%s in namespace %s: metadata.name is required", gk.Kind, ns)
			}
			workloads[ref] = o
		}
	}
	// Group workloads under their top-most controller: Pods into their
	// ReplicaSet, Job, StatefulSet or DaemonSet, ReplicaSets into their
	// Deployment, Jobs into their CronJob. An owner the input does not hold
	// still names the group.
	keys := make([]string, 0, len(workloads))
	for k := range workloads {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, ref := range keys {
		o := workloads[ref]
		parts := strings.SplitN(ref, "/", 3)
		ns := parts[1]
		kind, name := parts[0], parts[2]
		top, topKind, topName := o, kind, name
		for depth := 0; depth < 4; depth++ {
			k, n, ok := controllerOwner(top)
			if !ok {
				break
			}
			topKind, topName = k, n
			owner, present := workloads[k+"/"+ns+"/"+n]
			if !present {
				top = nil
				break
			}
			top = owner
		}
		key := topKind + "/" + ns + "/" + topName
		g := in.groups[key]
		if g == nil {
			g = &group{ns: ns, kind: topKind, name: topName}
			in.groups[key] = g
		}
		g.refs = append(g.refs, ref)
		if kind == "Pod" && (opts.Live || key != ref) {
			g.pods = append(g.pods, o)
		} else if key == ref {
			g.controller = o
		}
	}
	return in, nil
}

// template returns the metadata and spec a group's node is judged by, and
// whether they are a live pod's (post-injection).
func (in *inputs) template(g *group) (meta, spec map[string]any, live bool) {
	if len(g.pods) > 0 && in.opts.Live {
		return mapAt(g.pods[0], "metadata"), mapAt(g.pods[0], "spec"), true
	}
	if g.controller != nil {
		info, _ := rules.LookupKind(objGK(g.controller))
		if len(info.PodTemplate) == 0 {
			return mapAt(g.controller, "metadata"), mapAt(g.controller, "spec"), false
		}
		t := mapAt(g.controller, info.PodTemplate...)
		return mapAt(t, "metadata"), mapAt(t, "spec"), false
	}
	if len(g.pods) > 0 {
		return mapAt(g.pods[0], "metadata"), mapAt(g.pods[0], "spec"), false
	}
	return nil, nil, false
}

// namedPorts returns the container ports of a pod spec by name, and every
// TCP container port.
func namedPorts(spec map[string]any) (map[string]int, []int) {
	named := map[string]int{}
	var ports []int
	for _, c := range listOf(spec["containers"]) {
		for _, p := range listOf(mapOf(c)["ports"]) {
			pm := mapOf(p)
			n, ok := intOf(pm["containerPort"])
			if !ok {
				continue
			}
			if proto := str(pm, "protocol"); proto != "" && proto != "TCP" {
				continue
			}
			ports = append(ports, n)
			if name := str(pm, "name"); name != "" {
				named[name] = n
			}
		}
	}
	return named, ports
}

func listOf(v any) []any {
	l, _ := v.([]any)
	return l
}

func mapOf(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func intOf(v any) (int, bool) {
	switch n := v.(type) {
	case float64:
		if n == float64(int(n)) {
			return int(n), true
		}
	case int64:
		return int(n), true
	case int:
		return n, true
	}
	return 0, false
}

// selects reports whether a Service's selector selects pods with these labels.
func selects(sel map[string]string, labels map[string]string) bool {
	if len(sel) == 0 {
		return false // a Service without selector has manual endpoints
	}
	for k, v := range sel {
		if lv, ok := labels[k]; !ok || lv != v {
			return false
		}
	}
	return true
}

// servicePorts returns the ports of the Services of ns that select the labels.
func (in *inputs) servicePorts(ns string, labels map[string]string, named map[string]int) []ServicePort {
	var out []ServicePort
	for _, s := range in.services[ns] {
		spec := mapAt(s, "spec")
		if !selects(stringMap(spec["selector"]), labels) {
			continue
		}
		for _, p := range listOf(spec["ports"]) {
			pm := mapOf(p)
			if proto := str(pm, "protocol"); proto != "" && proto != "TCP" {
				continue
			}
			port, ok := intOf(pm["port"])
			if !ok {
				continue
			}
			target := port
			switch tp := pm["targetPort"].(type) {
			case string:
				n, isNamed := named[tp]
				if !isNamed {
					if v, err := strconv.Atoi(tp); err == nil {
						n, isNamed = v, true
					}
				}
				if !isNamed {
					continue // names no container port: no endpoint
				}
				target = n
			default:
				if n, ok := intOf(tp); ok {
					target = n
				}
			}
			out = append(out, ServicePort{Service: str(mapAt(s, "metadata"), "name"), Port: port, TargetPort: target, Name: str(pm, "name")})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Service != out[j].Service {
			return out[i].Service < out[j].Service
		}
		return out[i].Port < out[j].Port
	})
	return out
}

// isGateway recognises Istio ingress gateway pods: the istio:
// ingressgateway label of Istio's charts, or a Gateway API gateway that
// Istio deploys (class istio).
func isGateway(labels map[string]string) bool {
	return labels["istio"] == "ingressgateway" || labels["gateway.networking.k8s.io/gateway-class-name"] == "istio"
}

// nsLabels returns a namespace's labels with kubernetes.io/metadata.name,
// which the API server sets on every namespace.
func (in *inputs) nsLabels(ns string) map[string]string {
	out := map[string]string{"kubernetes.io/metadata.name": ns}
	for k, v := range in.namespaces[ns].Labels {
		out[k] = v
	}
	return out
}
