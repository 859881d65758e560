package rules

import (
	"strconv"
	"sync"
)

// The $facts of a Pod or pod template, as typed Go structs split by concern.
// The json tags are the names the policies read; Map builds the
// map[string]any the policies see (JMESPath reads maps), by hand and without
// reflection, reusing the object's own boxed strings where the facts repeat
// them. TestFactsUnchanged proves that map unchanged over every catalog
// fixture and the structs' JSON equal to it; TestTypedFactsDocumented
// checks each Map against its struct's json tags.
//
// The facts tables of catalog/README.md are generated from these definitions
// (`make docs`, hack/factsdoc): a field's doc comment is its row, its json
// tag the fact's name and its Go type the fact's type. A `facts` tag
// overrides the type shown. Keep the comments plain English for readers of
// policies, not of Go. Unexported fields hold the object's own boxed values
// for Map and are not facts.

// WorkloadFacts are the facts of a Pod or pod template.
type WorkloadFacts struct {
	WorkloadObject
	WorkloadMesh
	WorkloadHost
	WorkloadIdentity
	WorkloadCapture
	WorkloadProxyChanges
	WorkloadQuarantine
}

// workloadFactsPool recycles WorkloadFacts with the arrays of their
// container and capability lists: the typed facts cost no allocation beyond
// the maps Map builds, which hold no reference into them.
var workloadFactsPool = sync.Pool{New: func() any { return new(WorkloadFacts) }}

// getWorkloadFacts returns empty facts from the pool.
func getWorkloadFacts() *WorkloadFacts { return workloadFactsPool.Get().(*WorkloadFacts) }

// putWorkloadFacts empties f, keeping its list arrays, and returns it to the
// pool. f must not be used afterwards.
func putWorkloadFacts(f *WorkloadFacts) {
	containers, capAdds := f.Containers, f.CapAdds
	clear(containers[:cap(containers)])
	clear(capAdds[:cap(capAdds)])
	*f = WorkloadFacts{}
	f.Containers, f.CapAdds = containers[:0], capAdds[:0]
	workloadFactsPool.Put(f)
}

// WorkloadObject: what is judged and where its pod template lies.
type WorkloadObject struct {
	// The object's kind.
	Kind string `json:"kind"`
	// A Pod (not a template).
	IsPod bool `json:"isPod"`
	// A Pod seen after injection (the webhook's Pod CREATE, a live cluster).
	PostInjection bool `json:"postInjection"`
	// `metadata` for a Pod, `spec.template.metadata` etc. for templates.
	MetadataPath string `json:"metadataPath"`
	// `spec` for a Pod, `spec.template.spec` etc. for templates.
	SpecPath string `json:"specPath"`
	// The pod's (template's) labels (their string values: the object's own map when all are strings).
	Labels map[string]any `json:"labels" facts:"object of strings"`
	// The pod's (template's) annotations (their string values, as for labels).
	Annotations map[string]any `json:"annotations" facts:"object of strings"`

	kindBox any // the object's own kind, boxed
}

// WorkloadMesh: how the pod takes part in the mesh.
type WorkloadMesh struct {
	// The pod's data plane: `sidecar` (the injector will inject / has injected it: a webhook selector matches and
	// `injection` does not opt out), `ambient`, `none` (also hostNetwork pods and system namespaces), `unknown`
	// (namespace not known).
	Mode string `json:"mode"`
	// The namespace's mode (`unknown` when not known).
	NamespaceMode string `json:"namespaceMode"`
	// `sidecar.istio.io/inject` as the injector's `injectRequired` reads it.
	Injection InjectionFacts `json:"injection"`
	// Pod label `istio.io/dataplane-mode: none`.
	AmbientOptOut bool `json:"ambientOptOut"`
	// MESH0127: the ambient capture annotations as ztunnel/istio-cni parse them.
	AmbientCapture AmbientCaptureFacts `json:"ambientCapture"`
	// MESH0103, MESH0113: the pod's `istio.io/rev` label when the namespace does not decide injection itself (`""`
	// when the known namespace has an `istio-injection` or `istio.io/rev` label).
	Revision string `json:"revision"`
	// True/false when the context lists the injector revisions, null when it cannot or `revision` is empty.
	RevisionKnown NullBool `json:"revisionKnown"`
	// `inject.istio.io/templates` as the injector's `selectTemplates` reads it.
	InjectTemplates InjectTemplatesFacts `json:"injectTemplates"`
	// MESH0129: `sidecar.istio.io/status` judged as the injector writes it.
	SidecarStatus SidecarStatusFacts `json:"sidecarStatus"`
	// An `istio-proxy` container (or native sidecar) is present.
	HasProxy bool `json:"hasProxy"`
	// The `istio-proxy` container's image is not an allowed proxy image.
	ProxyImageBad bool `json:"proxyImageBad"`
	// Every container (init and ephemeral included) is Istio's own exempt `istio-proxy`, or (Istio 1.29 and later) an
	// `agentgateway` container in the shape istiod deploys for agentgateway Gateways (an `agentgateway` image from
	// the proxy registries, no `command`, args `--config {}` or none, no added capability, not privileged; then
	// exempt too): a gateway or waypoint pod, which istiod labels `sidecar.istio.io/inject: "false"` and
	// `istio.io/dataplane-mode: none` because it is a proxy itself.
	ProxyOnly bool `json:"proxyOnly"`
	// An init container named `istio-init` or `istio-validation` is present (in `initContainers`; its shape is
	// MESH0157's business).
	HasCaptureInit bool `json:"hasCaptureInit"`
	// A non-ephemeral container not named `istio-proxy`, `istio-init` or `istio-validation` exists: the pod runs an
	// application, it is not a gateway.
	AppContainers bool `json:"appContainers"`
}

// InjectionFacts: `sidecar.istio.io/inject` as the injector's `injectRequired` reads it. A present label beats the
// annotation (even when empty). The webhook's pod-label selectors compare exact strings: in an unlabelled namespace
// only the label `true` selects injection.
type InjectionFacts struct {
	// `"true"`, `"false"` or `""` (the namespace default). Up to Istio 1.26 `y`/`yes`/`true`/`on` in any case are
	// `"true"`, empty is `""`, any other value (`false`, `False`, `no`, `disabled`) is `"false"`; since 1.27 only
	// exactly `true` and `false` count and any other value is `""`.
	Value string `json:"value"`
	// `label`, `annotation`, or `""` when neither is set.
	Source string `json:"source"`
	// The value as written.
	Raw string `json:"raw"`
	// `value` is `"false"`.
	OptOut bool `json:"optOut"`
	// E.g. `label sidecar.istio.io/inject is "False"` when it opts out, else `""`.
	Text string `json:"text"`
	// MESH0118: describes a value other than exactly `true`, `false` or empty, whose meaning depends on the Istio
	// release whose semantics apply (`--istio-version`, else detected from istiod); `""` when unambiguous.
	Ambiguous string `json:"ambiguous"`
}

// AmbientCaptureFacts: the ambient capture annotations as ztunnel/istio-cni parse them (`strconv.ParseBool`), only
// in the releases that read them.
type AmbientCaptureFacts struct {
	// `ambient.istio.io/bypass-inbound-capture` parses as true (Istio 1.24 and later).
	BypassInbound bool `json:"bypassInbound"`
	// That annotation as written (`""` when absent).
	BypassInboundRaw string `json:"bypassInboundRaw"`
	// `ambient.istio.io/dns-capture` is present and parses as false (Istio 1.25 and later).
	DNSCaptureOff bool `json:"dnsCaptureOff"`
	// That annotation as written (`""` when absent).
	DNSCaptureRaw string `json:"dnsCaptureRaw"`
}

// InjectTemplatesFacts: `inject.istio.io/templates` as the injector's `selectTemplates` reads it (comma-separated,
// trimmed).
type InjectTemplatesFacts struct {
	// The annotation is present.
	Set bool `json:"set"`
	// The annotation as written.
	Raw string `json:"raw"`
	// `sidecar` (the only template that installs capture) is in the list.
	Sidecar bool `json:"sidecar"`
	// `gateway`, `kube-gateway`, `waypoint` in the list.
	ProxyOnly []string `json:"proxyOnly"`
	// `grpc-agent`, `grpc-simple` in the list.
	Proxyless []string `json:"proxyless"`
	// The other names, sorted.
	Unknown []string `json:"unknown"`
}

// SidecarStatusFacts: `sidecar.istio.io/status` judged as the injector writes it for every template
// (`getInjectionStatus`): a JSON object whose `initContainers`, `containers`, `volumes` and `imagePullSecrets` are
// lists of names.
type SidecarStatusFacts struct {
	// The annotation is present.
	Present bool `json:"present"`
	// It is not such an object, names a container or init container the pod does not have, or the pod has no Istio
	// `istio-proxy` while its templates (`inject.istio.io/templates`, `sidecar` when absent) add one or the status
	// names it (`grpc-simple` and custom templates add none).
	Forged bool `json:"forged"`
	// Why it is forged; `""` when consistent or absent.
	Text string `json:"text"`
}

// WorkloadHost: what the pod shares with its node.
type WorkloadHost struct {
	// The pod spec flag.
	HostNetwork bool `json:"hostNetwork"`
	// The pod spec flag.
	HostPID bool `json:"hostPID"`
	// The pod spec flag.
	HostIPC bool `json:"hostIPC"`
	// The pod spec flag.
	ShareProcessNamespace bool `json:"shareProcessNamespace"`
	// A static-pod mirror: annotation `kubernetes.io/config.mirror`, counted at admission only when a node
	// (`system:node:*`) creates the pod, since any pod creator can write it.
	Mirror bool `json:"mirror"`
	// Every hostPath volume.
	HostPaths []HostPathFacts `json:"hostPaths"`
	// Every non-zero hostPort.
	HostPorts []HostPortFacts `json:"hostPorts"`
}

// HostPathFacts: a hostPath volume.
type HostPathFacts struct {
	// The volume's name.
	Volume string `json:"volume"`
	// The host path as written.
	Path string `json:"path"`
	// The Istio node-agent path (`/var/run/ztunnel`, `/var/run/istio-cni`, `/etc/cni/net.d`, `/opt/cni/bin`,
	// `/var/run/netns`, `/proc`) the cleaned path equals, lies under or contains (`/` contains them all), reading
	// `/run` as `/var/run`; `""` when none.
	NodePath string `json:"nodePath"`
	// E.g. `volume "zt" mounts host path "/var/run/ztunnel/ztunnel.sock" (under /var/run/ztunnel)`.
	Text string `json:"text"`
}

// HostPortFacts: a container port bound on the node.
type HostPortFacts struct {
	// The container, e.g. `container "app"`.
	Ref string `json:"ref"`
	// The hostPort.
	HostPort float64 `json:"hostPort"`
	// Its containerPort.
	ContainerPort float64 `json:"containerPort"`
	// Either port is one of the ports Istio uses in the pod (15000, 15001, 15004, 15006, 15008, 15020, 15021, 15053,
	// 15090).
	IstioPort bool `json:"istioPort"`
	// E.g. `container "app" binds host port 15001 (container port 15001)`.
	Text string `json:"text"`

	refBox any
}

// WorkloadIdentity: the IDs the pod's containers run as, and the proxy's.
type WorkloadIdentity struct {
	// 1337, or the OpenShift SCC-derived UID of the namespace (top of `openshift.io/sa.scc.uid-range`); 1337 again
	// when the pod's interception mode is TPROXY.
	ProxyUID float64 `json:"proxyUID"`
	// 1337, or the GID from the first `openshift.io/sa.scc.supplemental-groups` block; 1337 again under TPROXY.
	ProxyGID float64 `json:"proxyGID"`
	// The pod `securityContext` value (null when unset).
	FSGroup NullNumber `json:"fsGroup"`
	// The pod `securityContext` value.
	SupplementalGroups []float64 `json:"supplementalGroups"`
	// Every container, init container and ephemeral container.
	Containers []ContainerFacts `json:"containers"`
	// Every `capabilities.add` entry.
	CapAdds []CapAddFacts `json:"capAdds"`
}

// ContainerFacts: one container, init container or ephemeral container.
type ContainerFacts struct {
	// The container's name.
	Name string `json:"name"`
	// `containers`, `initContainers` or `ephemeralContainers`.
	List string `json:"list"`
	// `container "app"`, `init container "istio-init"`, `ephemeral container "debug"`.
	Ref string `json:"ref"`
	// E.g. `spec.template.spec.containers[0]`.
	Path string `json:"path"`
	// The container's image.
	Image string `json:"image"`
	// Named istio-init/istio-validation/istio-proxy, not ephemeral.
	IstioName bool `json:"istioName"`
	// An allowed proxyv2 image; for `istio-proxy` also `auto`, or no image before injection.
	ImageAllowed bool `json:"imageAllowed"`
	// Istio's own container: name, image and exact injected shape, RULES.md 1.6: the right list, no `command`,
	// `args[0]` `istio-iptables` for istio-init and istio-validation and `proxy` for istio-proxy (or no args, which
	// the injector fills in; the capture the arguments set up is judged separately, in `capture.initArgs`), added
	// capabilities spelled exactly as the injector writes them, not privileged unless `--proxy-privileged`; and
	// istiod's `agentgateway` container in its deployed shape (see `proxyOnly`).
	Exempt bool `json:"exempt"`
	// Why an Istio-named container is not exempt, e.g. `init container "istio-init" is named like Istio's but adds
	// capability "SYS_ADMIN" beyond the injected shape`; empty when it is.
	InfraText string `json:"infraText"`
	// Effective UID: the container's, else the pod's; null when unset.
	RunAsUser NullNumber `json:"runAsUser"`
	// Effective GID: the container's, else the pod's; null when unset.
	RunAsGroup NullNumber `json:"runAsGroup"`
	// E.g. `container "app" runs as UID 1337 (inherited from the pod securityContext)`; empty when unset.
	UIDText string `json:"uidText"`
	// E.g. `container "app" runs with GID 1337`; empty when unset.
	GIDText string `json:"gidText"`
	// The container runs as a UID that an Istio init container exempts from capture beyond the proxy's, e.g.
	// `container "app" runs as UID 1000, which istio-init argument -u "1337,1000" exempts from capture`; empty when
	// not.
	InitUIDText string `json:"initUIDText"`
	// The same for the GID.
	InitGIDText string `json:"initGIDText"`
	// The container is privileged.
	Privileged bool `json:"privileged"`
	// `container "app" is privileged`.
	PrivText string `json:"privText"`
	// MESH0144: no `runAsUser` in the container or pod.
	UIDUnset bool `json:"uidUnset"`
	// `container "app" sets no runAsUser (neither does the pod securityContext), so its image's USER decides`; empty
	// when set.
	UIDUnsetText string `json:"uidUnsetText"`
	// MESH0143: why the container can switch to the proxy's UID or GID: root, or no `runAsUser` without
	// `runAsNonRoot: true`, keeping SETUID/SETGID, or `allowPrivilegeEscalation` not false; empty when it cannot.
	BecomeProxyText string `json:"becomeProxyText"`
	// Explicitly root (`runAsUser: 0`) with SETUID or SETGID kept.
	BecomeProxyExplicit bool `json:"becomeProxyExplicit"`

	nameBox, imageBox, listBox, refBox any // the object's own strings (and the ref), boxed once
}

// CapAddFacts: one `capabilities.add` entry.
type CapAddFacts struct {
	// The container's name.
	Container string `json:"container"`
	// The container, e.g. `container "app"`.
	Ref string `json:"ref"`
	// The capability as written.
	Raw string `json:"raw"`
	// Normalised: upper-case, no `CAP_`.
	Cap string `json:"cap"`
	// `raw == cap`.
	Canonical bool `json:"canonical"`
	// The container is exempt (Istio's own).
	Exempt bool `json:"exempt"`
	// E.g. `container "app" adds capability "NET_ADMIN"`.
	Text string `json:"text"`

	containerBox, refBox, rawBox, capBox any
}

// WorkloadCapture: how the pod's traffic is captured.
type WorkloadCapture struct {
	// MESH0128: the pod itself asks for TPROXY interception (the `sidecar.istio.io/interceptionMode` annotation,
	// `interceptionMode` in `proxy.istio.io/config`, or `-m TPROXY` of Istio's own istio-init or istio-validation:
	// an allowed proxy image, no `command`), not the mesh default.
	TProxyDeclared bool `json:"tproxyDeclared"`
	// Traffic-capture annotations and init-container arguments.
	Capture CaptureFacts `json:"capture"`
	// MESH0202: each container port that is one of Envoy's pod-internal ports (15000, 15001, 15002, 15004, 15006,
	// 15053).
	EnvoyPortDecls []EnvoyPortDeclFacts `json:"envoyPortDecls"`
}

// EnvoyPortDeclFacts: a container port that is one of Envoy's pod-internal ports.
type EnvoyPortDeclFacts struct {
	// The container, e.g. `container "app"`.
	Ref string `json:"ref"`
	// The port.
	ContainerPort float64 `json:"containerPort"`
	// E.g. `container "app" declares containerPort 15000 named "admin" (Envoy admin)`.
	Text string `json:"text"`

	refBox any
}

// CaptureFacts: the traffic-capture annotations and what Istio init containers set up. On an injected Pod the
// injector writes the install defaults onto every pod, so only deviations from them count.
type CaptureFacts struct {
	// `sidecar.istio.io/interceptionMode`.
	InterceptionMode string `json:"interceptionMode"`
	// `interceptionMode` in `proxy.istio.io/config`.
	ProxyConfigInterceptionMode string `json:"proxyConfigInterceptionMode"`
	// `traffic.sidecar.istio.io/includeInboundPorts`, present only when set and not `*`.
	IncludeInboundPorts *string `json:"includeInboundPorts,omitempty"`
	// `traffic.sidecar.istio.io/excludeInboundPorts` without the implicit 15090/15021/15020.
	ExcludeInboundPorts []string `json:"excludeInboundPorts"`
	// All listed ports are admin-allowed (`--allowed-excluded-inbound-ports`).
	ExcludeInboundPortsAllowed bool `json:"excludeInboundPortsAllowed"`
	// `traffic.sidecar.istio.io/includeOutboundIPRanges`, present only when set, not `*`, and not the install
	// default on an injected pod.
	IncludeOutboundIPRanges *string `json:"includeOutboundIPRanges,omitempty"`
	// `traffic.sidecar.istio.io/excludeOutboundIPRanges` without install defaults on injected pods.
	ExcludeOutboundIPRanges []string `json:"excludeOutboundIPRanges"`
	// A range wider than /8 (/16 for IPv6), or `*`.
	ExcludeOutboundIPRangesWide bool `json:"excludeOutboundIPRangesWide"`
	// Every listed range lies in 169.254.0.0/16 or fe80::/10, e.g. the cloud metadata server.
	ExcludeOutboundIPRangesLinkLocal bool `json:"excludeOutboundIPRangesLinkLocal"`
	// `traffic.sidecar.istio.io/excludeOutboundPorts`.
	ExcludeOutboundPorts []string `json:"excludeOutboundPorts"`
	// The annotation, else `proxy.istio.io/config`, else the mesh default.
	EffectiveInterceptionMode string `json:"effectiveInterceptionMode"`
	// The capture an Istio init container really sets up.
	InitArgs []InitArgFacts `json:"initArgs"`
}

// InitArgFacts: one way the capture an Istio init container sets up goes beyond what the injector writes from the
// pod's annotations. The arguments of `istio-init`/`istio-validation` (in `initContainers`, running
// `istio-iptables`) are parsed as istio-iptables' cobra/pflag command parses them (`rules/iptables.go`: `--x=y`,
// `--x y`, `-x y`, `-xy`, `-x=y`, empty values, the last repeated value wins, bool flags, `--`), with its env
// (`flag.BindEnv` names such as `ISTIO_SERVICE_CIDR`, `DRY_RUN`; the env-only `ENVOY_USER` and
// `ISTIO_OUTBOUND_OWNER_GROUPS[_EXCLUDE]`) and the pod's `proxy.istio.io/config` `proxyMetadata`, which the injector
// writes as env of istio-init. A template or pre-injection Pod that declares no istio-init is judged as the
// injector's own istio-init with that `proxyMetadata`. An argument equal to its annotation is reported once, as the
// annotation.
type InitArgFacts struct {
	// `noRules` (nothing applied in the pod: `--skip-rule-apply`, `-n`, `--cleanup-only`, `--network-namespace`,
	// `-h`, no args after injection), `redirectPort` (`-p`/`-z` not 15001/15006), `inboundOff`/`inboundNarrowed`
	// (`-b`), `inboundExcluded` (`-d` beyond 15090, 15021, the status port and the annotation; `-e`),
	// `outboundOff`/`outboundNarrowed` (`-i`), `outboundRanges` (`-x`), `outboundPorts` (`-o`), `interfaces` (`-c`),
	// `rerouted` (`-k`), `shape` (everything else the injector never writes: `-m` unlike the pod's mode, `-u`/`-g`
	// beyond the proxy's IDs, owner-group filters, arguments istio-iptables rejects, an `istio-validation` without
	// `--run-validation`/`--skip-rule-apply`, a setting read from an env `valueFrom`).
	Kind string `json:"kind"`
	// The init container's name.
	Container string `json:"container"`
	// Which argument did it, e.g. `istio-init argument -i "" captures no outbound traffic`.
	Text string `json:"text"`
	// `inboundExcluded`: every port is admin-allowed.
	Allowed bool `json:"allowed"`
	// `outboundRanges`: a range wider than /8 (/16 for IPv6).
	Wide bool `json:"wide"`
	// `outboundRanges`: every range is link-local.
	LinkLocal bool `json:"linkLocal"`
}

// WorkloadProxyChanges: annotations and containers that replace parts of Istio's proxy.
type WorkloadProxyChanges struct {
	// MESH0115: annotation `sidecar.istio.io/proxyImage` naming an image that is not an allowed proxy image
	// (`source: annotation`; an empty value changes nothing), and each `istio-proxy` in `containers` or
	// `initContainers` whose image is not one (`source: container`). `auto` and an absent image are the injector's
	// placeholders only while it will still inject (templates, Pod manifests); on a Pod after admission and on every
	// Pod UPDATE they are literal. On a Pod UPDATE the annotation is ignored (the injector runs only on CREATE) and a
	// changed image reads `container "istio-proxy" changes image from "…" to "…" on a running pod`; an unchanged
	// one reads as it did when admitted, so the webhook grandfathers it.
	ProxyImageOverrides []ProxyImageOverrideFacts `json:"proxyImageOverrides"`
	// MESH0116: `sidecar.istio.io/bootstrapOverride` (`text` names the ConfigMap), each volume of
	// `sidecar.istio.io/userVolume` and each mount of `sidecar.istio.io/userVolumeMount` (a JSON object keyed by
	// volume name, or an array; a value that is neither is one entry saying so; `{}` adds nothing). Empty on a Pod
	// UPDATE.
	ProxyCustomizations []ProxyCustomizationFacts `json:"proxyCustomizations"`
}

// ProxyImageOverrideFacts: an image that replaces the proxy's.
type ProxyImageOverrideFacts struct {
	// `annotation` or `container`.
	Source string `json:"source"`
	// `annotation sidecar.istio.io/proxyImage`, or the container, e.g. `init container "istio-proxy"`.
	Ref string `json:"ref"`
	// The image.
	Image string `json:"image"`
	// What replaces the image, and why that matters.
	Text string `json:"text"`
}

// ProxyCustomizationFacts: a bootstrap override, user volume or user volume mount.
type ProxyCustomizationFacts struct {
	// The annotation.
	Annotation string `json:"annotation"`
	// A `hostPath` volume, matched ignoring case as the injector's encoding/json does.
	HostPath bool `json:"hostPath"`
	// E.g. `annotation sidecar.istio.io/userVolume adds hostPath volume "host" with host path "/"`.
	Text string `json:"text"`
}

// WorkloadQuarantine: the quarantine `meshguard quarantine` puts on the workload.
type WorkloadQuarantine struct {
	// MESH0108: on an UPDATE of a workload that was quarantined (`meshguard.io/quarantined` on the old object), what
	// the request does to the quarantine label (on the object or its pod template) and the
	// `meshguard.io/quarantine-*` annotations, e.g. `removes pod template label meshguard.io/quarantined`; empty
	// otherwise.
	QuarantineTamper []string `json:"quarantineTamper"`
	// MESH0108: the request comes from meshguard's own identity (`--controller-username`).
	QuarantineByMeshguard bool `json:"quarantineByMeshguard"`
}

// NullNumber is a JSON number or null.
type NullNumber struct {
	Value float64
	Valid bool
}

// MarshalJSON writes the number, or null when not Valid.
func (n NullNumber) MarshalJSON() ([]byte, error) {
	if !n.Valid {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, n.Value, 'g', -1, 64), nil
}

func (n NullNumber) value() any {
	if !n.Valid {
		return nil
	}
	return n.Value
}

// NullBool is a JSON boolean or null.
type NullBool struct {
	Value bool
	Valid bool
}

// MarshalJSON writes the boolean, or null when not Valid.
func (b NullBool) MarshalJSON() ([]byte, error) {
	if !b.Valid {
		return []byte("null"), nil
	}
	return strconv.AppendBool(nil, b.Value), nil
}

func (b NullBool) value() any {
	if !b.Valid {
		return nil
	}
	return b.Value
}

// boxedOr returns box, the object's own boxed copy of s, when there is one,
// else s: a fact that repeats an object's string costs no allocation.
func boxedOr(box any, s string) any {
	if box != nil {
		return box
	}
	return s
}

// Map returns the facts as the policies see them.
func (f *WorkloadFacts) Map() map[string]any {
	m := make(map[string]any, 41)
	o := &f.WorkloadObject
	m["kind"] = boxedOr(o.kindBox, o.Kind)
	m["isPod"] = o.IsPod
	m["postInjection"] = o.PostInjection
	m["metadataPath"] = o.MetadataPath
	m["specPath"] = o.SpecPath
	m["labels"] = o.Labels
	m["annotations"] = o.Annotations

	w := &f.WorkloadMesh
	m["mode"] = modeValue(w.Mode)
	m["namespaceMode"] = modeValue(w.NamespaceMode)
	m["injection"] = w.Injection.Map()
	m["ambientOptOut"] = w.AmbientOptOut
	m["ambientCapture"] = w.AmbientCapture.Map()
	m["revision"] = w.Revision
	m["revisionKnown"] = w.RevisionKnown.value()
	m["injectTemplates"] = w.InjectTemplates.Map()
	m["sidecarStatus"] = w.SidecarStatus.Map()
	m["hasProxy"] = w.HasProxy
	m["proxyImageBad"] = w.ProxyImageBad
	m["proxyOnly"] = w.ProxyOnly
	m["hasCaptureInit"] = w.HasCaptureInit
	m["appContainers"] = w.AppContainers

	h := &f.WorkloadHost
	m["hostNetwork"] = h.HostNetwork
	m["hostPID"] = h.HostPID
	m["hostIPC"] = h.HostIPC
	m["shareProcessNamespace"] = h.ShareProcessNamespace
	m["mirror"] = h.Mirror
	hostPaths := make([]any, len(h.HostPaths))
	for i := range h.HostPaths {
		hostPaths[i] = h.HostPaths[i].Map()
	}
	m["hostPaths"] = hostPaths
	hostPorts := make([]any, len(h.HostPorts))
	for i := range h.HostPorts {
		hostPorts[i] = h.HostPorts[i].Map()
	}
	m["hostPorts"] = hostPorts

	id := &f.WorkloadIdentity
	m["proxyUID"] = id.ProxyUID
	m["proxyGID"] = id.ProxyGID
	m["fsGroup"] = id.FSGroup.value()
	groups := make([]any, len(id.SupplementalGroups))
	for i, g := range id.SupplementalGroups {
		groups[i] = g
	}
	m["supplementalGroups"] = groups
	containers := make([]any, len(id.Containers))
	for i := range id.Containers {
		containers[i] = id.Containers[i].Map()
	}
	m["containers"] = containers
	capAdds := make([]any, len(id.CapAdds))
	for i := range id.CapAdds {
		capAdds[i] = id.CapAdds[i].Map()
	}
	m["capAdds"] = capAdds

	c := &f.WorkloadCapture
	m["tproxyDeclared"] = c.TProxyDeclared
	m["capture"] = c.Capture.Map()
	decls := make([]any, len(c.EnvoyPortDecls))
	for i := range c.EnvoyPortDecls {
		decls[i] = c.EnvoyPortDecls[i].Map()
	}
	m["envoyPortDecls"] = decls

	p := &f.WorkloadProxyChanges
	overrides := make([]any, len(p.ProxyImageOverrides))
	for i := range p.ProxyImageOverrides {
		overrides[i] = p.ProxyImageOverrides[i].Map()
	}
	m["proxyImageOverrides"] = overrides
	custom := make([]any, len(p.ProxyCustomizations))
	for i := range p.ProxyCustomizations {
		custom[i] = p.ProxyCustomizations[i].Map()
	}
	m["proxyCustomizations"] = custom

	q := &f.WorkloadQuarantine
	m["quarantineTamper"] = anySlice(q.QuarantineTamper)
	m["quarantineByMeshguard"] = q.QuarantineByMeshguard
	return m
}

// Map returns the facts as the policies see them.
func (f *InjectionFacts) Map() map[string]any {
	return map[string]any{
		"value": f.Value, "source": f.Source, "raw": f.Raw, "optOut": f.OptOut, "text": f.Text, "ambiguous": f.Ambiguous,
	}
}

// Map returns the facts as the policies see them.
func (f *AmbientCaptureFacts) Map() map[string]any {
	return map[string]any{
		"bypassInbound": f.BypassInbound, "bypassInboundRaw": f.BypassInboundRaw,
		"dnsCaptureOff": f.DNSCaptureOff, "dnsCaptureRaw": f.DNSCaptureRaw,
	}
}

// Map returns the facts as the policies see them.
func (f *InjectTemplatesFacts) Map() map[string]any {
	return map[string]any{
		"set": f.Set, "raw": f.Raw, "sidecar": f.Sidecar,
		"proxyOnly": anySlice(f.ProxyOnly), "proxyless": anySlice(f.Proxyless), "unknown": anySlice(f.Unknown),
	}
}

// Map returns the facts as the policies see them.
func (f *SidecarStatusFacts) Map() map[string]any {
	return map[string]any{"present": f.Present, "forged": f.Forged, "text": f.Text}
}

// Map returns the facts as the policies see them.
func (f *HostPathFacts) Map() map[string]any {
	return map[string]any{"volume": f.Volume, "path": f.Path, "nodePath": f.NodePath, "text": f.Text}
}

// Map returns the facts as the policies see them.
func (f *HostPortFacts) Map() map[string]any {
	return map[string]any{
		"ref": boxedOr(f.refBox, f.Ref), "hostPort": f.HostPort, "containerPort": f.ContainerPort,
		"istioPort": f.IstioPort, "text": f.Text,
	}
}

// Map returns the facts as the policies see them.
func (f *ContainerFacts) Map() map[string]any {
	return map[string]any{
		"name": boxedOr(f.nameBox, f.Name), "list": boxedOr(f.listBox, f.List), "ref": boxedOr(f.refBox, f.Ref),
		"path": f.Path, "image": boxedOr(f.imageBox, f.Image),
		"istioName": f.IstioName, "imageAllowed": f.ImageAllowed, "exempt": f.Exempt, "infraText": f.InfraText,
		"runAsUser": f.RunAsUser.value(), "runAsGroup": f.RunAsGroup.value(), "uidText": f.UIDText, "gidText": f.GIDText,
		"initUIDText": f.InitUIDText, "initGIDText": f.InitGIDText,
		"privileged": f.Privileged, "privText": f.PrivText,
		"uidUnset": f.UIDUnset, "uidUnsetText": f.UIDUnsetText,
		"becomeProxyText": f.BecomeProxyText, "becomeProxyExplicit": f.BecomeProxyExplicit,
	}
}

// Map returns the facts as the policies see them.
func (f *CapAddFacts) Map() map[string]any {
	return map[string]any{
		"container": boxedOr(f.containerBox, f.Container), "ref": boxedOr(f.refBox, f.Ref),
		"raw": boxedOr(f.rawBox, f.Raw), "cap": boxedOr(f.capBox, f.Cap), "exempt": f.Exempt,
		"canonical": f.Canonical, "text": f.Text,
	}
}

// Map returns the facts as the policies see them.
func (f *EnvoyPortDeclFacts) Map() map[string]any {
	return map[string]any{"ref": boxedOr(f.refBox, f.Ref), "containerPort": f.ContainerPort, "text": f.Text}
}

// Map returns the facts as the policies see them.
func (f *CaptureFacts) Map() map[string]any {
	m := make(map[string]any, 13)
	m["interceptionMode"] = f.InterceptionMode
	m["proxyConfigInterceptionMode"] = f.ProxyConfigInterceptionMode
	if f.IncludeInboundPorts != nil {
		m["includeInboundPorts"] = *f.IncludeInboundPorts
	}
	m["excludeInboundPorts"] = anySlice(f.ExcludeInboundPorts)
	m["excludeInboundPortsAllowed"] = f.ExcludeInboundPortsAllowed
	if f.IncludeOutboundIPRanges != nil {
		m["includeOutboundIPRanges"] = *f.IncludeOutboundIPRanges
	}
	m["excludeOutboundIPRanges"] = anySlice(f.ExcludeOutboundIPRanges)
	m["excludeOutboundIPRangesWide"] = f.ExcludeOutboundIPRangesWide
	m["excludeOutboundIPRangesLinkLocal"] = f.ExcludeOutboundIPRangesLinkLocal
	m["excludeOutboundPorts"] = anySlice(f.ExcludeOutboundPorts)
	m["effectiveInterceptionMode"] = f.EffectiveInterceptionMode
	args := make([]any, len(f.InitArgs))
	for i := range f.InitArgs {
		args[i] = f.InitArgs[i].Map()
	}
	m["initArgs"] = args
	return m
}

// Map returns the facts as the policies see them.
func (f *InitArgFacts) Map() map[string]any {
	return map[string]any{
		"kind": f.Kind, "container": f.Container, "text": f.Text, "allowed": f.Allowed, "wide": f.Wide, "linkLocal": f.LinkLocal,
	}
}

// Map returns the facts as the policies see them.
func (f *ProxyImageOverrideFacts) Map() map[string]any {
	return map[string]any{"source": f.Source, "ref": f.Ref, "image": f.Image, "text": f.Text}
}

// Map returns the facts as the policies see them.
func (f *ProxyCustomizationFacts) Map() map[string]any {
	return map[string]any{"annotation": f.Annotation, "hostPath": f.HostPath, "text": f.Text}
}
