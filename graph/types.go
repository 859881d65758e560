package graph

import (
	"encoding/json"
	"fmt"
)

// APIVersion and Kind identify the graph's JSON document.
const (
	APIVersion = "meshguard.io/v1alpha1"
	Kind       = "AllowedTrafficGraph"
)

// NodeKind says what a node stands for.
type NodeKind string

// Node kinds.
const (
	// NodeWorkload is a workload: the pod template of a Deployment,
	// StatefulSet, DaemonSet, ReplicationController, ReplicaSet or Job without
	// owner, CronJob, or a bare Pod; in a cluster, its live Pods.
	NodeWorkload NodeKind = "workload"
	// NodeGateway is an Istio ingress gateway (pods labelled istio:
	// ingressgateway or deployed for a Gateway of class istio). It is a
	// source only: it is where outside traffic enters.
	NodeGateway NodeKind = "gateway"
	// NodeOutside stands for every client without a mesh identity that the
	// input does not describe: pods of other namespaces, nodes and host
	// traffic, and addresses outside the cluster. It is a source only.
	NodeOutside NodeKind = "outside"
	// NodeNamespace stands for the workloads of one namespace in a collapsed graph.
	NodeNamespace NodeKind = "namespace"
)

// OutsideID is the ID of the outside node.
const OutsideID = "outside"

// Node is a vertex of the graph.
type Node struct {
	// ID is unique in the graph: "Kind/namespace/name" for a workload or a
	// gateway found in the input ("Deployment/bookinfo/productpage-v1"),
	// "gateway:namespace/serviceaccount" for an assumed gateway, "outside",
	// "namespace:NAME" for a collapsed namespace.
	ID string `json:"id"`
	// Kind says what the node stands for.
	Kind NodeKind `json:"kind"`
	// Name is the workload's (or namespace's) name, for display.
	Name string `json:"name"`
	// Namespace is the node's namespace ("" for outside).
	Namespace string `json:"namespace,omitempty"`
	// Workload is the controller's kind ("Deployment"), "Pod" for a bare pod.
	Workload string `json:"workload,omitempty"`
	// ServiceAccount is the pods' service account and Identity its SPIFFE ID
	// (spiffe://<trust domain>/ns/NS/sa/SA), present when the pods can present
	// it (a sidecar whose outbound traffic is captured, ambient, a gateway).
	ServiceAccount string `json:"serviceAccount,omitempty"`
	Identity       string `json:"identity,omitempty"`
	// MeshMode is sidecar, ambient, none or unknown (the namespace is not in
	// the input and no default mode is configured).
	MeshMode string `json:"meshMode,omitempty"`
	// Services are the Services that select the pods, with their ports.
	Services []ServicePort `json:"services,omitempty"`
	// Ports are the pods' target ports that edges lead to.
	Ports []int `json:"ports,omitempty"`
	// Pods is the number of live pods grouped into the node (cluster input).
	Pods int `json:"pods,omitempty"`
	// Findings counts the audit findings of the workload (and its pods) by severity.
	Findings map[string]int `json:"findings,omitempty"`
	// Assumed is true for a gateway the input does not hold, assumed from
	// Options.AssumedGateways so that policies naming it can be judged.
	Assumed bool `json:"assumed,omitempty"`
	// Notes say what else matters about the node (its outbound traffic skips
	// the sidecar; its mesh mode is unknown).
	Notes []string `json:"notes,omitempty"`
	// Members is the number of workload nodes a namespace node stands for.
	Members int `json:"members,omitempty"`
	// Quarantined is the id of a `meshguard quarantine` (the pods' label
	// meshguard.io/quarantined), "" when the workload is not quarantined.
	Quarantined string `json:"quarantined,omitempty"`
	// PodLabels are the labels that select the workload's pods and stay the
	// same across its pods and rollouts: the pod labels without those
	// controllers, the injector and meshguard add per pod or per revision
	// (pod-template-hash, controller-revision-hash, Istio's canonical-name
	// labels, the quarantine label). Not part of the JSON document; derived
	// NetworkPolicies select callers by them.
	PodLabels map[string]string `json:"-"`
}

// volatileLabels are pod labels that differ between pods of one workload
// or between its revisions, or are added by the injector after admission.
var volatileLabels = map[string]bool{
	"pod-template-hash": true, "controller-revision-hash": true, "pod-template-generation": true,
	"statefulset.kubernetes.io/pod-name": true, "apps.kubernetes.io/pod-index": true,
	"controller-uid": true, "job-name": true, "batch.kubernetes.io/controller-uid": true,
	"batch.kubernetes.io/job-name": true, "batch.kubernetes.io/job-completion-index": true,
	"security.istio.io/tlsMode": true, "service.istio.io/canonical-name": true,
	"service.istio.io/canonical-revision": true, LabelQuarantined: true,
}

// stableLabels returns the labels without the volatile ones.
func stableLabels(l map[string]string) map[string]string {
	out := make(map[string]string, len(l))
	for k, v := range l {
		if !volatileLabels[k] {
			out[k] = v
		}
	}
	return out
}

// LabelQuarantined is the label `meshguard quarantine` puts on the pods.
const LabelQuarantined = "meshguard.io/quarantined"

// ServicePort is one port of a Service that selects a workload.
type ServicePort struct {
	// Service is the Service's name (in the node's namespace).
	Service string `json:"service"`
	// Port is the Service port; TargetPort the pod port it leads to.
	Port       int    `json:"port"`
	TargetPort int    `json:"targetPort"`
	Name       string `json:"name,omitempty"`
}

// Verdict is an edge's outcome: the first that applies of the denials, then
// conditional, then the allowances from weakest to strongest.
type Verdict uint8

// Verdicts, in the order they are decided.
const (
	// DeniedNetpol: a NetworkPolicy (ingress on the destination or egress on
	// the source) drops the connection, whatever Istio would allow.
	DeniedNetpol Verdict = iota + 1
	// RejectedMTLS: the destination requires mTLS (STRICT) and the source
	// sends plaintext (no proxy, or a DestinationRule disables TLS).
	RejectedMTLS
	// DeniedAuthz: AuthorizationPolicies deny every request.
	DeniedAuthz
	// Conditional: some requests are allowed, depending on what only the
	// request carries (path, method, host, token, address, an external
	// authorizer); Edge.Conditions list them.
	Conditional
	// AllowedPlaintext: allowed, and the traffic is not mTLS.
	AllowedPlaintext
	// AllowedByDefault: allowed over mTLS only because no ALLOW policy
	// applies to the destination (or nothing enforces authorization on it).
	AllowedByDefault
	// AllowedMTLS: allowed over mTLS by an explicit ALLOW policy.
	AllowedMTLS
)

var verdictNames = [...]string{"", "denied-netpol", "rejected-mtls", "denied-authz", "conditional", "allowed-plaintext", "allowed-by-default", "allowed-mtls"}

// Verdicts lists every verdict, in decision order.
func Verdicts() []Verdict {
	return []Verdict{DeniedNetpol, RejectedMTLS, DeniedAuthz, Conditional, AllowedPlaintext, AllowedByDefault, AllowedMTLS}
}

// String returns the verdict's name ("allowed-mtls").
func (v Verdict) String() string {
	if int(v) < len(verdictNames) && v > 0 {
		return verdictNames[v]
	}
	return fmt.Sprintf("Verdict(%d)", uint8(v))
}

// Allowed reports whether some traffic passes.
func (v Verdict) Allowed() bool { return v >= Conditional }

// MarshalText writes the verdict's name.
func (v Verdict) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

// UnmarshalText reads a verdict's name.
func (v *Verdict) UnmarshalText(b []byte) error {
	for i, n := range verdictNames {
		if i > 0 && n == string(b) {
			*v = Verdict(i)
			return nil
		}
	}
	return fmt.Errorf("unknown verdict %q", b)
}

// Transport is how the connection is protected.
type Transport uint8

// Transports.
const (
	// TransportMTLS: Istio mutual TLS, the source's identity proven.
	TransportMTLS Transport = iota + 1
	// TransportPlaintext: no Istio mTLS (plaintext, or TLS without a mesh identity).
	TransportPlaintext
	// TransportRejected: the destination requires mTLS and the source does not send it.
	TransportRejected
)

var transportNames = [...]string{"", "mtls", "plaintext", "rejected"}

// String returns "mtls", "plaintext" or "rejected".
func (t Transport) String() string {
	if int(t) < len(transportNames) && t > 0 {
		return transportNames[t]
	}
	return fmt.Sprintf("Transport(%d)", uint8(t))
}

// MarshalText writes the name.
func (t Transport) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText reads a name.
func (t *Transport) UnmarshalText(b []byte) error {
	for i, n := range transportNames {
		if i > 0 && n == string(b) {
			*t = Transport(i)
			return nil
		}
	}
	return fmt.Errorf("unknown transport %q", b)
}

// Edge is what the policies decide for connections from one node to one port
// of another. Edges sharing an explanation share its pointer.
type Edge struct {
	// From and To index Graph.Nodes.
	From, To int32
	// Port is the destination pods' port (the Services' target port).
	Port int32
	// Count is the number of workload edges a collapsed edge stands for (0
	// in an uncollapsed graph).
	Count int32
	// Verdict is the outcome; Transport the protection.
	Verdict   Verdict
	Transport Transport
	// Why explains the verdict. Never nil in a computed graph; without
	// reasons under Options.VerdictsOnly.
	Why *Explanation
}

// Explanation is why an edge has its verdict.
type Explanation struct {
	// Reasons name the policies and facts that decided, e.g.
	// "AuthorizationPolicy bookinfo/reviews-from-productpage allows".
	Reasons []string `json:"reasons"`
	// Conditions list what a conditional edge depends on.
	Conditions []string `json:"conditions,omitempty"`
	// Allowing are the ALLOW AuthorizationPolicies ("namespace/name") that
	// allow all or some of the edge's requests: set only when the verdict
	// rests on an explicit ALLOW (allowed-mtls, allowed-plaintext or
	// conditional), empty when traffic is allowed by default or by a CUSTOM
	// provider alone. Policies derived from the mesh's intent read it.
	Allowing []string `json:"-"`
}

// Graph is the allowed-traffic graph.
type Graph struct {
	// Nodes are sorted: workloads by ID, then gateways, then outside.
	Nodes []Node
	// Edges are sorted by destination, port, then source.
	Edges []Edge
	// TrustDomain is the trust domain of the identities.
	TrustDomain string
	// Collapsed is set when workloads were collapsed into namespace nodes.
	Collapsed *Collapse
	// Notes say what the graph assumed or left out.
	Notes []string
}

// Collapse says how a graph was collapsed.
type Collapse struct {
	// Above is the threshold: more workload nodes than this were collapsed.
	Above int `json:"above"`
	// Workloads is the number of workload nodes before collapsing.
	Workloads int `json:"workloads"`
	// Namespaces is the number of namespace nodes after.
	Namespaces int `json:"namespaces"`
}

// Node returns the node an edge end indexes.
func (g *Graph) Node(i int32) *Node { return &g.Nodes[i] }

// NodeIndex returns the index of the node with the given ID, or -1.
func (g *Graph) NodeIndex(id string) int {
	for i := range g.Nodes {
		if g.Nodes[i].ID == id {
			return i
		}
	}
	return -1
}

// jsonEdge is an edge as the JSON document writes it.
type jsonEdge struct {
	From       string    `json:"from"`
	To         string    `json:"to"`
	Port       int32     `json:"port"`
	Verdict    Verdict   `json:"verdict"`
	Transport  Transport `json:"transport"`
	Reasons    []string  `json:"reasons"`
	Conditions []string  `json:"conditions,omitempty"`
	// Count is the number of workload edges a collapsed edge stands for.
	Count int `json:"count,omitempty"`
}

// Document is the JSON form of a graph (`meshguard graph -o json`).
type Document struct {
	APIVersion  string     `json:"apiVersion"`
	Kind        string     `json:"kind"`
	TrustDomain string     `json:"trustDomain"`
	Collapsed   *Collapse  `json:"collapsed,omitempty"`
	Notes       []string   `json:"notes,omitempty"`
	Summary     Summary    `json:"summary"`
	Nodes       []Node     `json:"nodes"`
	Edges       []jsonEdge `json:"edges"`
}

// Summary counts a graph's nodes and edges.
type Summary struct {
	Nodes int `json:"nodes"`
	Edges int `json:"edges"`
	// ByVerdict counts edges by verdict name.
	ByVerdict map[string]int `json:"byVerdict"`
}

// Summarize counts the graph's nodes and edges by verdict.
func (g *Graph) Summarize() Summary {
	s := Summary{Nodes: len(g.Nodes), Edges: len(g.Edges), ByVerdict: map[string]int{}}
	for i := range g.Edges {
		s.ByVerdict[g.Edges[i].Verdict.String()]++
	}
	return s
}

// MarshalJSON writes the graph as a Document.
func (g *Graph) MarshalJSON() ([]byte, error) {
	doc := Document{
		APIVersion: APIVersion, Kind: Kind, TrustDomain: g.TrustDomain,
		Collapsed: g.Collapsed, Notes: g.Notes, Summary: g.Summarize(),
		Nodes: g.Nodes, Edges: make([]jsonEdge, 0, len(g.Edges)),
	}
	if doc.Nodes == nil {
		doc.Nodes = []Node{}
	}
	for _, e := range g.Edges {
		je := jsonEdge{From: g.Nodes[e.From].ID, To: g.Nodes[e.To].ID, Port: e.Port, Verdict: e.Verdict, Transport: e.Transport, Reasons: []string{}, Count: int(e.Count)}
		if e.Why != nil {
			je.Reasons, je.Conditions = e.Why.Reasons, e.Why.Conditions
			if je.Reasons == nil {
				je.Reasons = []string{}
			}
		}
		doc.Edges = append(doc.Edges, je)
	}
	return json.Marshal(doc)
}
