package rules

import (
	"fmt"
	"net/netip"
	"path"
	"sort"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// Istio's well-known names (RULES.md 1.4, 1.5).
const (
	labelInjection     = "istio-injection"
	labelRev           = "istio.io/rev"
	labelDataplaneMode = "istio.io/dataplane-mode"
	keySidecarInject   = "sidecar.istio.io/inject"

	annInterceptionMode = "sidecar.istio.io/interceptionMode"
	annProxyConfig      = "proxy.istio.io/config"
	annInclInPorts      = "traffic.sidecar.istio.io/includeInboundPorts"
	annExclInPorts      = "traffic.sidecar.istio.io/excludeInboundPorts"
	annInclOutRanges    = "traffic.sidecar.istio.io/includeOutboundIPRanges"
	annExclOutRanges    = "traffic.sidecar.istio.io/excludeOutboundIPRanges"
	annExclOutPorts     = "traffic.sidecar.istio.io/excludeOutboundPorts"
	annMirror           = "kubernetes.io/config.mirror"

	annSCCUIDRange      = "openshift.io/sa.scc.uid-range"
	annSCCSupplementals = "openshift.io/sa.scc.supplemental-groups"
)

// istioPorts are the proxy's own ports (RULES.md 1.4), flagged when bound on the host.
var istioPorts = map[int64]bool{15000: true, 15001: true, 15004: true, 15006: true, 15008: true, 15020: true, 15021: true, 15053: true, 15090: true}

// implicitExcludedInbound are excluded from inbound capture by the injector itself.
var implicitExcludedInbound = map[string]bool{"15090": true, "15021": true, "15020": true}

// namespaceMode is the data plane a namespace's labels enroll it in, following
// the injector's webhook selectors: istio-injection beats istio.io/rev, any
// istio-injection value but "enabled" turns injection off for the namespace, an
// istio.io/rev label (even an empty one, which names no revision) shuts out the
// object-selector and enableNamespacesByDefault paths, and a sidecar beats
// ambient. The system namespaces are never injected (inject.go IgnoredNamespaces).
func namespaceMode(ns Namespace, cfg *compiledConfig) string {
	if cfg.system[ns.Name] {
		return ModeNone
	}
	l := ns.Labels
	ambient := l[labelDataplaneMode] == "ambient"
	if v, ok := l[labelInjection]; ok {
		if v == "enabled" {
			return ModeSidecar
		}
		if ambient {
			return ModeAmbient
		}
		return ModeNone
	}
	rev, hasRev := l[labelRev]
	if rev != "" {
		return ModeSidecar
	}
	if ambient {
		return ModeAmbient
	}
	if cfg.EnableNamespacesByDefault && !hasRev {
		return ModeSidecar
	}
	return ModeNone
}

// injectionValue is the pod's effective sidecar.istio.io/inject setting as the
// injector's injectRequired reads it: the label beats the annotation (a label
// that is present wins even when empty), the value is compared case-insensitively
// as a YAML boolean, "y", "yes", "true" and "on" mean "true", an empty value
// means the namespace default (value ""), and every other value ("false",
// "False", "no", "off", "disabled", ...) means "false". raw is the value as written.
//
// Since Istio 1.27 (IstioVersion.ExactInjectValues) only the exact values
// "true" and "false" count and every other value means the namespace
// default ("").
func injectionValue(labels, annotations map[string]string, v IstioVersion) (value, source, raw string) {
	if raw, ok := labels[keySidecarInject]; ok {
		return injectionDecision(raw, v), "label", raw
	}
	if raw, ok := annotations[keySidecarInject]; ok {
		return injectionDecision(raw, v), "annotation", raw
	}
	return "", "", ""
}

func injectionDecision(raw string, v IstioVersion) string {
	if v.ExactInjectValues() {
		switch raw {
		case "true", "false":
			return raw
		}
		return ""
	}
	switch strings.ToLower(raw) {
	case "":
		return ""
	case "y", "yes", "true", "on":
		return "true"
	}
	return "false"
}

// injectionAmbiguous describes a sidecar.istio.io/inject value other than
// exactly "true", "false" or empty: a value whose meaning depends on the
// Istio release (MESH0118), or "" when the value is unambiguous.
func injectionAmbiguous(source, raw, value string, v IstioVersion) string {
	if source == "" || raw == "" || raw == "true" || raw == "false" {
		return ""
	}
	meaning := "reads as an opt-out"
	switch {
	case v.ExactInjectValues():
		meaning = "ignores (the namespace default applies)"
	case value == "true":
		meaning = "reads as inject"
	}
	return fmt.Sprintf("%s %s is %s, which Istio %s %s; Istio 1.27 and later read only \"true\" and \"false\", earlier releases any YAML boolean", source, keySidecarInject, quote(raw), v, meaning)
}

// podMode decides whether a pod with these labels, in a namespace of the given
// labels, gets a sidecar, is captured by ambient, or is outside the mesh.
//
// Sidecar injection needs one of the injector's webhooks to match (selectors on
// exact label strings) and then injectRequired to agree (injectionValue):
//   - namespace istio-injection=enabled, pod label inject not "false";
//   - namespace istio.io/rev=<rev> without istio-injection, pod label inject not "false";
//   - namespace without either label: pod label istio.io/rev=<rev>, or pod label
//     inject exactly "true" without a pod istio.io/rev label;
//   - with enableNamespacesByDefault, a namespace without either label and a pod
//     without either label.
//
// hostNetwork pods and the system namespaces are never injected nor captured.
func podMode(ns Namespace, nsKnown bool, labels, annotations map[string]string, hostNetwork bool, cfg *compiledConfig, v IstioVersion) string {
	if hostNetwork || cfg.system[ns.Name] {
		return ModeNone
	}
	inj, _, _ := injectionValue(labels, annotations, v)
	podRev, hasPodRev := labels[labelRev]
	injectLabel, hasInjectLabel := labels[keySidecarInject]
	// The pod's own labels select the injector in a namespace without enrollment labels.
	objectSelected := podRev != "" && inj != "false" || !hasPodRev && injectLabel == "true"
	if !nsKnown {
		if cfg.DefaultNamespaceMode == ModeUnknown {
			// The pod's own labels can still enroll it.
			if objectSelected {
				return ModeSidecar
			}
			if labels[labelDataplaneMode] == "ambient" && (cfg.AmbientInstalled || inj != "false") {
				return ModeAmbient
			}
			return ModeUnknown
		}
		ns = Namespace{Name: ns.Name, Labels: syntheticLabels(cfg.DefaultNamespaceMode)}
	}
	nsl := ns.Labels
	legacy, hasLegacy := nsl[labelInjection]
	nsRev, hasNsRev := nsl[labelRev]
	sidecar := false
	switch {
	case hasLegacy:
		sidecar = legacy == "enabled" && inj != "false"
	case hasNsRev:
		sidecar = nsRev != "" && inj != "false"
	default:
		sidecar = objectSelected ||
			cfg.EnableNamespacesByDefault && !hasPodRev && !hasInjectLabel && inj != "false"
	}
	if sidecar {
		return ModeSidecar
	}
	if labels[labelDataplaneMode] == "ambient" {
		// istio-cni's default enablement selectors enroll a pod labelled
		// ambient in any namespace, but only where ambient (ztunnel and
		// istio-cni's ambient mode) runs. A pod that opts out of the sidecar
		// its namespace mandates and claims ambient for itself is in the mesh
		// only if ambient is known to run (--ambient-installed); otherwise it
		// may be in no mesh at all.
		namespaceSidecar := hasLegacy && legacy == "enabled" || !hasLegacy && hasNsRev && nsRev != ""
		if !namespaceSidecar || cfg.AmbientInstalled {
			return ModeAmbient
		}
		return ModeNone
	}
	if nsl[labelDataplaneMode] == "ambient" && labels[labelDataplaneMode] != "none" {
		return ModeAmbient
	}
	return ModeNone
}

func syntheticLabels(mode string) map[string]string {
	switch mode {
	case ModeSidecar:
		return map[string]string{labelInjection: "enabled"}
	case ModeAmbient:
		return map[string]string{labelDataplaneMode: "ambient"}
	}
	return nil
}

// proxyIDs returns the proxy UID and GID for a namespace: 1337 (configurable), or
// on OpenShift the top of the namespace's SCC UID range and of the first
// supplemental-groups block, as Istio's injector computes them.
func proxyIDs(ns Namespace, cfg *compiledConfig) (uid, gid int64) {
	uid, gid = cfg.ProxyUID, cfg.ProxyGID
	if cfg.Platform != PlatformOpenShift {
		// Istio reads the namespace only with PLATFORM=openshift
		// (pkg/kube/inject/webhook.go); elsewhere the annotations are inert.
		return uid, gid
	}
	if v, ok := parseSCCBlockMax(ns.Annotations[annSCCUIDRange]); ok {
		uid = v
		gid = v
	}
	if v, ok := parseSCCBlockMax(ns.Annotations[annSCCSupplementals]); ok {
		gid = v
	}
	return uid, gid
}

// parseSCCBlockMax parses the first block of "start/size" or "start-end" and
// returns its largest ID.
func parseSCCBlockMax(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	first, _, _ := strings.Cut(s, ",")
	first = strings.TrimSpace(first)
	if a, b, ok := strings.Cut(first, "/"); ok {
		start, err1 := strconv.ParseInt(a, 10, 64)
		size, err2 := strconv.ParseInt(b, 10, 64)
		if err1 != nil || err2 != nil || size < 1 {
			return 0, false
		}
		return start + size - 1, true
	}
	if a, b, ok := strings.Cut(first, "-"); ok {
		start, err1 := strconv.ParseInt(a, 10, 64)
		end, err2 := strconv.ParseInt(b, 10, 64)
		if err1 != nil || err2 != nil || end < start {
			return 0, false
		}
		return end, true
	}
	return 0, false
}

// normalizeCap upper-cases a capability name and strips a leading CAP_, as
// container runtimes do.
func normalizeCap(raw string) string {
	c := strings.ToUpper(strings.TrimSpace(raw))
	return strings.TrimPrefix(c, "CAP_")
}

var containerLists = []struct {
	field, word string
	// list is field as a fact value, boxed once.
	list any
}{
	{"initContainers", "init container", "initContainers"},
	{"containers", "container", "containers"},
	{"ephemeralContainers", "ephemeral container", "ephemeralContainers"},
}

// The fields of a container, of its securityContext and of the pod's
// securityContext whose JSON type the facts depend on.
var (
	containerFieldTypes = []struct{ key, typ string }{
		{"name", "string"}, {"image", "string"}, {"securityContext", "object"}, {"args", "array"}, {"command", "array"}, {"ports", "array"},
	}
	containerSCFieldTypes = []struct{ key, typ string }{
		{"runAsUser", "integer"}, {"runAsGroup", "integer"}, {"privileged", "boolean"}, {"capabilities", "object"},
	}
	podSCFieldTypes = []struct{ key, typ string }{
		{"runAsUser", "integer"}, {"runAsGroup", "integer"}, {"fsGroup", "integer"}, {"supplementalGroups", "array"},
		{"runAsNonRoot", "boolean"},
	}
)

// workloadFacts computes the facts of a pod or pod template as the policies
// see them (without the quarantine facts objectFacts adds).
func (e *engine) workloadFacts(obj Object, info KindInfo, req *Request, ns Namespace, nsKnown bool) (map[string]any, error) {
	f := getWorkloadFacts()
	defer putWorkloadFacts(f)
	if err := e.computeWorkloadFacts(f, obj, info, req, ns, nsKnown); err != nil {
		return nil, err
	}
	return f.Map(), nil
}

// computeWorkloadFacts fills f with the facts of a pod or pod template.
func (e *engine) computeWorkloadFacts(wf *WorkloadFacts, obj Object, info KindInfo, req *Request, ns Namespace, nsKnown bool) error {
	tmplPath := info.PodTemplate
	var meta, spec map[string]any
	metaPath, specPath := "metadata", "spec"
	if len(tmplPath) == 0 {
		meta = mapAt(obj, "metadata")
		spec = mapAt(obj, "spec")
	} else {
		// Validate every step of the template path: a wrong type is an error, absence is not.
		cur := obj
		for i, p := range tmplPath {
			if err := checkType(cur, joinPath(tmplPath[:i]), p, "object"); err != nil {
				return err
			}
			cur = mapAt(cur, p)
		}
		tmpl := cur
		base := joinPath(tmplPath)
		if err := checkType(tmpl, base, "metadata", "object"); err != nil {
			return err
		}
		if err := checkType(tmpl, base, "spec", "object"); err != nil {
			return err
		}
		meta = mapAt(tmpl, "metadata")
		spec = mapAt(tmpl, "spec")
		metaPath, specPath = base+".metadata", base+".spec"
	}
	if err := checkType(meta, metaPath, "labels", "object"); err != nil {
		return err
	}
	if err := checkType(meta, metaPath, "annotations", "object"); err != nil {
		return err
	}
	labels := stringMap(meta["labels"])
	annotations := stringMap(meta["annotations"])
	isPod := len(tmplPath) == 0
	postInjection := isPod && req.PostInjection

	for _, f := range []struct{ key, typ string }{
		{"hostNetwork", "boolean"}, {"hostPID", "boolean"}, {"hostIPC", "boolean"}, {"securityContext", "object"},
		{"containers", "array"}, {"initContainers", "array"}, {"ephemeralContainers", "array"}, {"shareProcessNamespace", "boolean"},
		{"volumes", "array"},
	} {
		if err := checkType(spec, specPath, f.key, f.typ); err != nil {
			return err
		}
	}
	podSC := mapAt(spec, "securityContext")
	for _, f := range podSCFieldTypes {
		if v, bad := wrongType(podSC, f.key, f.typ); bad {
			return typeError(specPath+".securityContext", f.key, f.typ, v)
		}
	}
	if v, ok := intAt(podSC, "fsGroup"); ok {
		wf.FSGroup = NullNumber{Value: float64(v), Valid: true}
	}
	if groups := listAt(podSC, "supplementalGroups"); len(groups) > 0 {
		wf.SupplementalGroups = make([]float64, 0, len(groups))
		for i, g := range groups {
			v, ok := intValue(g)
			if !ok {
				return fmt.Errorf("%s.securityContext.supplementalGroups[%d]: expected integer, got %s", specPath, i, jsonType(g))
			}
			wf.SupplementalGroups = append(wf.SupplementalGroups, float64(v))
		}
	}
	hostPaths, err := hostPathFacts(spec, specPath)
	if err != nil {
		return err
	}
	wf.HostPaths = hostPaths
	hostNetwork := boolAt(spec, "hostNetwork")
	istioV := e.istioVersionFor(injectingRevision(ns, labels))
	mode := podMode(ns, nsKnown, labels, annotations, hostNetwork, e.cfg, istioV)
	nsMode := ModeUnknown
	if nsKnown {
		nsMode = namespaceMode(ns, e.cfg)
	} else if e.cfg.DefaultNamespaceMode != ModeUnknown {
		nsMode = e.cfg.DefaultNamespaceMode
	}
	uid, gid := proxyIDs(ns, e.cfg)

	interception := annotations[annInterceptionMode]
	proxyCfgInterception := ""
	var proxyMetadata map[string]string
	if pc, ok := annotations[annProxyConfig]; ok && pc != "" {
		var raw map[string]any
		if err := yaml.Unmarshal([]byte(pc), &raw); err != nil {
			return fmt.Errorf("%s.annotations[%s]: not valid YAML: %w", metaPath, annProxyConfig, err)
		}
		parsed, err := parseProxyConfig(raw)
		if err != nil {
			return fmt.Errorf("%s.annotations[%s]: %w", metaPath, annProxyConfig, err)
		}
		proxyCfgInterception = parsed.InterceptionMode
		// The injector writes proxyMetadata as env of istio-init too.
		for k, v := range parsed.ProxyMetadata {
			if proxyMetadata == nil {
				proxyMetadata = map[string]string{}
			}
			if v != nil {
				proxyMetadata[k] = fmt.Sprint(v)
			} else {
				proxyMetadata[k] = ""
			}
		}
	}
	tproxy := interception == "TPROXY" || (interception == "" && (proxyCfgInterception == "TPROXY" || proxyCfgInterception == "" && e.cfg.InterceptionMode == "TPROXY"))
	initTPROXY := e.initSaysTPROXY(spec)
	// What the pod itself declares (MESH0128), not the mesh default.
	tproxyDeclared := interception == "TPROXY" || proxyCfgInterception == "TPROXY" || initTPROXY
	if !tproxy && interception == "" && proxyCfgInterception == "" && initTPROXY {
		// The mesh default (meshConfig) is what the injector wrote into
		// istio-init's -m: an injected pod that says TPROXY there runs its
		// proxy under TPROXY, which needs NET_ADMIN, whatever
		// --interception-mode says.
		tproxy = true
	}
	if tproxy {
		// Under TPROXY the injector ignores the OpenShift range: iptables exempts the default IDs.
		uid, gid = e.cfg.ProxyUID, e.cfg.ProxyGID
	}

	effectiveMode := interception
	if effectiveMode == "" {
		effectiveMode = proxyCfgInterception
	}
	if effectiveMode == "" {
		effectiveMode = e.cfg.InterceptionMode
		if tproxy {
			effectiveMode = "TPROXY" // the mesh default istio-init shows
		}
	}
	var inj *injectedCapture // what the injector writes into istio-init, built on first use
	var initArgs []InitArgFacts
	var initExemptUIDs, initExemptGIDs []exemptID
	hasCaptureInit, appContainers := false, false

	podRunAsUser, podHasUser := intAt(podSC, "runAsUser")
	podRunAsGroup, podHasGroup := intAt(podSC, "runAsGroup")

	nContainers := 0
	for _, cl := range containerLists {
		nContainers += len(listAt(spec, cl.field))
	}
	// A pooled wf (getWorkloadFacts) keeps its lists' arrays from earlier
	// objects: only Map's maps need reach the heap, as before the facts were
	// typed.
	if cap(wf.Containers) < nContainers {
		wf.Containers = make([]ContainerFacts, 0, nContainers)
	}
	wf.Containers = wf.Containers[:0]
	wf.CapAdds = wf.CapAdds[:0]
	hasProxy, proxyImageBad, hasIstioProxy := false, false, false
	// proxyOnly: every container is Istio's own exempt istio-proxy (a gateway
	// or waypoint pod), so the pod has no application traffic to capture.
	proxyOnly := len(listAt(spec, "containers")) > 0
	for _, cl := range containerLists {
		for i, raw := range listAt(spec, cl.field) {
			c, ok := raw.(map[string]any)
			cpath := specPath + "." + cl.field + "[" + strconv.Itoa(i) + "]"
			if !ok {
				return fmt.Errorf("%s: expected object, got %s", cpath, jsonType(raw))
			}
			for _, f := range containerFieldTypes {
				if v, bad := wrongType(c, f.key, f.typ); bad {
					return typeError(cpath, f.key, f.typ, v)
				}
			}
			sc := mapAt(c, "securityContext")
			for _, f := range containerSCFieldTypes {
				if v, bad := wrongType(sc, f.key, f.typ); bad {
					return typeError(cpath+".securityContext", f.key, f.typ, v)
				}
			}
			caps := mapAt(sc, "capabilities")
			if v, bad := wrongType(caps, "add", "array"); bad {
				return typeError(cpath+".securityContext.capabilities", "add", "array", v)
			}
			// name and image are strings or absent (checked above); the facts
			// reuse the object's values rather than box copies.
			name, image := str(c, "name"), str(c, "image")
			nameV, imageV := stringValue(c, "name"), stringValue(c, "image")
			ref := quotedRef(cl.word, name)
			refV := any(ref) // boxed once for every fact that holds it
			privileged := boolAt(sc, "privileged")

			var added []string
			for j, a := range listAt(caps, "add") {
				s, ok := a.(string)
				if !ok {
					return fmt.Errorf("%s.securityContext.capabilities.add[%d]: expected string, got %s", cpath, j, jsonType(a))
				}
				added = append(added, s)
			}

			// Istio's own containers, recognised by name, image and exact injected shape (RULES.md 1.6).
			istioName := cl.field != "ephemeralContainers" && (name == "istio-init" || name == "istio-validation" || name == "istio-proxy")
			proxyImage := e.cfg.isProxyImage(image)
			imageAllowed := proxyImage || name == "istio-proxy" && (image == "auto" || image == "" && !postInjection)
			var problems []string
			if istioName {
				if !imageAllowed {
					problems = append(problems, fmt.Sprintf("image %s is not an allowed Istio proxy image", quote(image)))
				}
				// The injector never sets command: the image's entrypoint (pilot-agent) must run.
				if len(listAt(c, "command")) > 0 {
					problems = append(problems, "overrides the image command")
				}
				args, err := stringArgs(c, cpath)
				if err != nil {
					return err
				}
				allowedCaps := map[string]bool{}
				switch name {
				case "istio-init", "istio-validation":
					if cl.field != "initContainers" {
						problems = append(problems, "is not an init container")
					} else {
						hasCaptureInit = true
					}
					// Absent args are filled in by the injector, which merges a
					// declared container with its own; and pilot-agent without a
					// subcommand only prints its usage.
					if len(args) > 0 && args[0] != "istio-iptables" {
						problems = append(problems, `does not run "istio-iptables"`)
					}
					if name == "istio-init" {
						allowedCaps["NET_ADMIN"], allowedCaps["NET_RAW"] = true, true
					}
					// The capture it sets up (the command and the list are
					// judged above).
					if cl.field == "initContainers" && len(listAt(c, "command")) == 0 && (len(args) == 0 || args[0] == "istio-iptables") {
						env, err := containerEnv(c, cpath, proxyMetadata)
						if err != nil {
							return err
						}
						if inj == nil {
							inj = e.injectedCaptureFor(annotations, uid, gid, effectiveMode, proxyMetadata)
						}
						ic := e.judgeInitContainer(name, args, env, inj, postInjection)
						if initArgs == nil {
							initArgs = ic.entries
						} else {
							initArgs = append(initArgs, ic.entries...)
						}
						initExemptUIDs = append(initExemptUIDs, ic.exemptUIDs...)
						initExemptGIDs = append(initExemptGIDs, ic.exemptGIDs...)
					}
				case "istio-proxy":
					native := cl.field == "initContainers" && str(c, "restartPolicy") == "Always"
					if cl.field != "containers" && !native {
						problems = append(problems, "is an init container without restartPolicy Always")
					}
					// Absent args are filled in by the injector (image: auto, or an override container).
					if len(args) > 0 && args[0] != "proxy" {
						problems = append(problems, `does not run "proxy"`)
					}
					allowedCaps["NET_BIND_SERVICE"] = true
					if tproxy {
						allowedCaps["NET_ADMIN"] = true
					}
				}
				// The injector writes canonical names, so the raw string must match.
				for _, a := range added {
					if !allowedCaps[a] {
						problems = append(problems, fmt.Sprintf("adds capability %s beyond the injected shape", quote(a)))
					}
				}
				if privileged && !e.cfg.ProxyPrivileged {
					problems = append(problems, "is privileged while the install does not set global.proxy.privileged")
				}
			}
			exempt := istioName && len(problems) == 0
			// istiod's agentgateway container (1.29+), exempt below when
			// every other container of the pod is Istio's own.
			agentgateway := cl.field == "containers" && name == "agentgateway" && istioV.Agentgateway() &&
				e.agentgatewayShape(c, image, added, privileged)
			if cl.field != "ephemeralContainers" && name != "istio-proxy" && name != "istio-init" && name != "istio-validation" && !agentgateway {
				appContainers = true
			}
			if !agentgateway && (!exempt || name != "istio-proxy") {
				proxyOnly = false
			}
			if istioName && name == proxyContainerName {
				hasIstioProxy = true
			}
			if name == "istio-proxy" && (cl.field == "containers" || cl.field == "initContainers" && str(c, "restartPolicy") == "Always") {
				hasProxy = true
				if !proxyImage {
					proxyImageBad = true
				}
			}

			runAsUser, hasUser := intAt(sc, "runAsUser")
			userFrom := "container"
			if !hasUser && podHasUser {
				runAsUser, hasUser, userFrom = podRunAsUser, true, "pod"
			}
			runAsGroup, hasGroup := intAt(sc, "runAsGroup")
			groupFrom := "container"
			if !hasGroup && podHasGroup {
				runAsGroup, hasGroup, groupFrom = podRunAsGroup, true, "pod"
			}
			var uidV, gidV NullNumber
			var num [20]byte // digits, formatted without an allocation of their own
			uidText, gidText := "", ""
			if hasUser {
				uidV = NullNumber{Value: float64(runAsUser), Valid: true}
				uidText = ref + " runs as UID " + string(strconv.AppendInt(num[:0], runAsUser, 10))
				if userFrom == "pod" {
					uidText += " (inherited from the pod securityContext)"
				}
			}
			if hasGroup {
				gidV = NullNumber{Value: float64(runAsGroup), Valid: true}
				gidText = ref + " runs with GID " + string(strconv.AppendInt(num[:0], runAsGroup, 10))
				if groupFrom == "pod" {
					gidText += " (inherited from the pod securityContext)"
				}
			}
			infraText := ""
			if len(problems) > 0 {
				list := strings.Join(problems, ", ")
				if n := len(problems); n > 1 {
					list = strings.Join(problems[:n-1], ", ") + " and " + problems[n-1]
				}
				infraText = fmt.Sprintf("%s is named like Istio's but %s", ref, list)
			}
			wf.Containers = append(wf.Containers, ContainerFacts{
				Name: name, List: cl.field, Ref: ref, Path: cpath, Image: image,
				IstioName: istioName, ImageAllowed: imageAllowed, Exempt: exempt, InfraText: infraText,
				RunAsUser: uidV, RunAsGroup: gidV, UIDText: uidText, GIDText: gidText,
				Privileged: privileged, PrivText: ref + " is privileged",
				nameBox: nameV, imageBox: imageV, listBox: cl.list, refBox: refV,
			})
			if err := identityFacts(&wf.Containers[len(wf.Containers)-1], ref, cpath, sc, podSC, hasUser, runAsUser); err != nil {
				return err
			}
			for j, a := range added {
				n := normalizeCap(a)
				rawV := listAt(caps, "add")[j] // a, as the object holds it
				capV := rawV
				if n != a {
					capV = n
				}
				wf.CapAdds = append(wf.CapAdds, CapAddFacts{
					Container: name, Ref: ref, Raw: a, Cap: n, Exempt: exempt, Canonical: a == n,
					Text:         ref + " adds capability " + quote(a),
					containerBox: nameV, refBox: refV, rawBox: rawV, capBox: capV,
				})
			}
			for j, p := range listAt(c, "ports") {
				pm, ok := p.(map[string]any)
				if !ok {
					return fmt.Errorf("%s.ports[%d]: expected object, got %s", cpath, j, jsonType(p))
				}
				cp, _ := intAt(pm, "containerPort")
				// A container that declares one of Envoy's pod-internal ports
				// gives it a name a Service targetPort or a NetworkPolicy port
				// can name (MESH0202). Istio's injected istio-proxy declares
				// only 15090, so no container is exempt: a template's
				// istio-proxy is merged into the injected one, ports included.
				if what, internal := envoyInternalPorts[cp]; internal {
					decl := ref + " declares containerPort " + strconv.FormatInt(cp, 10)
					if n := str(pm, "name"); n != "" {
						decl += " named " + quote(n)
					}
					wf.EnvoyPortDecls = append(wf.EnvoyPortDecls, EnvoyPortDeclFacts{
						Ref: ref, ContainerPort: float64(cp), Text: decl + " (" + what + ")", refBox: refV,
					})
				}
				hp, ok := intAt(pm, "hostPort")
				if !ok || hp == 0 {
					continue
				}
				wf.HostPorts = append(wf.HostPorts, HostPortFacts{
					Ref: ref, HostPort: float64(hp), ContainerPort: float64(cp),
					IstioPort: istioPorts[hp] || istioPorts[cp],
					Text:      ref + " binds host port " + strconv.FormatInt(hp, 10) + " (container port " + strconv.FormatInt(cp, 10) + ")",
					refBox:    refV,
				})
			}
		}
	}

	// An agentgateway Gateway deployed by istiod (the agentgateway injection
	// template, 1.29+) is Istio's proxy like a gateway's istio-proxy: its
	// agentgateway containers are exempt when they have the deployed shape
	// and nothing else runs in the pod. Labels such as
	// gateway.istio.io/managed are not evidence: any tenant can write them.
	if proxyOnly {
		for i := range wf.Containers {
			cf := &wf.Containers[i]
			if cf.List == "containers" && cf.Name == "agentgateway" {
				// agentgatewayShape admits no added capability, so no capAdds entry.
				cf.Exempt = true
			}
		}
	}

	// A template (or a Pod before injection) without its own istio-init still
	// gets the injector's, with the pod's proxyMetadata as env: judge that.
	if !postInjection && !hasCaptureInit && len(proxyMetadata) > 0 && effectiveMode != "NONE" {
		if inj == nil {
			inj = e.injectedCaptureFor(annotations, uid, gid, effectiveMode, proxyMetadata)
		}
		env, _ := containerEnv(map[string]any{}, "", proxyMetadata)
		ic := e.judgeInitContainer("istio-init", inj.injectorArgs(), env, inj, false)
		if initArgs == nil {
			initArgs = ic.entries
		} else {
			initArgs = append(initArgs, ic.entries...)
		}
		initExemptUIDs = append(initExemptUIDs, ic.exemptUIDs...)
		initExemptGIDs = append(initExemptGIDs, ic.exemptGIDs...)
	}

	// Containers whose UID or GID an init container exempts from capture
	// beyond the proxy's (MESH0140/MESH0141).
	for i := range wf.Containers {
		cf := &wf.Containers[i]
		if cf.RunAsUser.Valid {
			for _, x := range initExemptUIDs {
				if float64(x.id) == cf.RunAsUser.Value {
					cf.InitUIDText = fmt.Sprintf("%s, which %s exempts from capture", cf.UIDText, x.source)
					break
				}
			}
		}
		if cf.RunAsGroup.Valid {
			for _, x := range initExemptGIDs {
				if float64(x.id) == cf.RunAsGroup.Value {
					cf.InitGIDText = fmt.Sprintf("%s, which %s exempts from capture", cf.GIDText, x.source)
					break
				}
			}
		}
	}
	wf.Capture = e.captureFacts(annotations, postInjection, interception, proxyCfgInterception)
	wf.Capture.EffectiveInterceptionMode = effectiveMode
	wf.Capture.InitArgs = initArgs

	injValue, injSource, injRaw := injectionValue(labels, annotations, istioV)
	optOutText := ""
	if injValue == "false" {
		optOutText = fmt.Sprintf("%s %s is %s", injSource, keySidecarInject, quote(injRaw))
	}

	imageOverrides, customizations := e.proxyFacts(spec, annotations, isPod, postInjection, req)
	revision := podRevision(ns, nsKnown, labels)

	wf.WorkloadObject = WorkloadObject{
		Kind: info.Kind, IsPod: isPod, PostInjection: postInjection, MetadataPath: metaPath, SpecPath: specPath,
		// The string maps stay on the stack: the facts hold the object's maps.
		Labels: stringAnyView(meta["labels"], labels), Annotations: stringAnyView(meta["annotations"], annotations),
		kindBox: kindValue(obj, info.Kind),
	}
	wf.WorkloadMesh = WorkloadMesh{
		Mode: mode, NamespaceMode: nsMode,
		Injection: InjectionFacts{
			Value: injValue, Source: injSource, Raw: injRaw, OptOut: injValue == "false", Text: optOutText,
			Ambiguous: injectionAmbiguous(injSource, injRaw, injValue, istioV),
		},
		AmbientOptOut:   labels[labelDataplaneMode] == "none",
		AmbientCapture:  ambientCaptureFacts(annotations, istioV),
		Revision:        revision,
		RevisionKnown:   e.revisionKnownFact(revision),
		InjectTemplates: injectTemplates(annotations),
		SidecarStatus:   sidecarStatusFacts(annotations, spec, hasIstioProxy),
		HasProxy:        hasProxy,
		ProxyImageBad:   proxyImageBad,
		ProxyOnly:       proxyOnly,
		HasCaptureInit:  hasCaptureInit,
		AppContainers:   appContainers,
	}
	wf.HostNetwork = hostNetwork
	wf.HostPID = boolAt(spec, "hostPID")
	wf.HostIPC = boolAt(spec, "hostIPC")
	wf.ShareProcessNamespace = boolAt(spec, "shareProcessNamespace")
	wf.Mirror = mirrorPod(annotations, req)
	wf.ProxyUID, wf.ProxyGID = float64(uid), float64(gid)
	wf.TProxyDeclared = tproxyDeclared
	wf.ProxyImageOverrides, wf.ProxyCustomizations = imageOverrides, customizations
	return nil
}

// agentgatewayShape reports whether a container named agentgateway is
// exactly what istiod's agentgateway template deploys (Istio 1.29
// files/agentgateway.yaml): an agentgateway image from the proxy registries,
// no command, the arguments "--config {}" (or none), no added capability and
// not privileged.
func (e *engine) agentgatewayShape(c map[string]any, image string, added []string, privileged bool) bool {
	if !e.cfg.agentgatewayImage.MatchString(normalizeImageRepo(image)) || len(listAt(c, "command")) > 0 || len(added) > 0 || privileged {
		return false
	}
	args := listAt(c, "args")
	switch len(args) {
	case 0:
		return true
	case 2:
		return args[0] == "--config" && args[1] == "{}"
	}
	return false
}

// captureFacts reads the traffic-capture annotations. On an injected Pod the
// injector writes the install defaults onto every pod, so only deviations from
// them count.
func (e *engine) captureFacts(ann map[string]string, postInjection bool, interception, proxyCfgInterception string) CaptureFacts {
	out := CaptureFacts{InterceptionMode: interception, ProxyConfigInterceptionMode: proxyCfgInterception}
	if v, ok := ann[annInclInPorts]; ok && strings.TrimSpace(v) != "*" {
		ports := v // allocated only when set
		out.IncludeInboundPorts = &ports
	}
	var excl []string
	allAllowed := true
	for _, p := range splitList(ann[annExclInPorts]) {
		if implicitExcludedInbound[p] {
			continue
		}
		excl = append(excl, p)
		if !e.cfg.portsAllowed[p] {
			allAllowed = false
		}
	}
	out.ExcludeInboundPorts = excl
	out.ExcludeInboundPortsAllowed = allAllowed
	if v, ok := ann[annInclOutRanges]; ok && strings.TrimSpace(v) != "*" {
		if !(postInjection && sameList(v, e.cfg.InjectorIncludeOutboundIPRanges)) {
			ranges := v // allocated only when set
			out.IncludeOutboundIPRanges = &ranges
		}
	}
	var defaults map[string]bool // the install's excludeIPRanges, read for the first range
	var ranges []string
	wide, linkLocal := false, true
	for _, r := range splitList(ann[annExclOutRanges]) {
		if postInjection && defaults == nil {
			defaults = toSet(splitList(e.cfg.InjectorExcludeOutboundIPRanges))
		}
		if postInjection && defaults[r] {
			continue
		}
		ranges = append(ranges, r)
		if p, err := netip.ParsePrefix(r); err == nil && (p.Bits() < 8 || p.Addr().Is6() && p.Bits() < 16) {
			wide = true
		}
		if r == "*" {
			wide = true
		}
		if !isLinkLocalRange(r) {
			linkLocal = false
		}
	}
	out.ExcludeOutboundIPRanges = ranges
	out.ExcludeOutboundIPRangesWide = wide
	out.ExcludeOutboundIPRangesLinkLocal = linkLocal && len(ranges) > 0
	out.ExcludeOutboundPorts = splitList(ann[annExclOutPorts])
	return out
}

var linkLocalPrefixes = []netip.Prefix{netip.MustParsePrefix("169.254.0.0/16"), netip.MustParsePrefix("fe80::/10")}

// isLinkLocalRange reports whether a CIDR (or a bare address) lies within the
// link-local ranges, where no mesh pod can be (the cloud metadata server is
// 169.254.169.254).
func isLinkLocalRange(r string) bool {
	p, err := netip.ParsePrefix(r)
	if err != nil {
		a, aerr := netip.ParseAddr(r)
		if aerr != nil {
			return false
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	for _, ll := range linkLocalPrefixes {
		if p.Bits() >= ll.Bits() && ll.Contains(p.Addr()) {
			return true
		}
	}
	return false
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func sameList(a, b string) bool {
	la, lb := splitList(a), splitList(b)
	sort.Strings(la)
	sort.Strings(lb)
	return strings.Join(la, ",") == strings.Join(lb, ",")
}

func anySlice(s []string) []any {
	out := make([]any, 0, len(s))
	for _, v := range s {
		out = append(out, v)
	}
	return out
}

func nonNil(s []any) []any {
	if s == nil {
		return []any{}
	}
	return s
}

// stringAnyView is stringAnyMap(m) for m == stringMap(orig): orig itself when
// every value of it is a string (stringMap kept them all), a copy otherwise.
// Facts are read only, so sharing the object's map is safe.
func stringAnyView(orig any, m map[string]string) map[string]any {
	if o, ok := orig.(map[string]any); ok && len(o) > 0 && len(o) == len(m) {
		return o
	}
	return stringAnyMap(m)
}

// kindValue is kind as a fact value, the object's own "kind" when it is the same.
func kindValue(obj Object, kind string) any {
	if v, ok := obj["kind"].(string); ok && v == kind {
		return obj["kind"]
	}
	return kind
}

// modeValue is a mode as a fact value, without boxing a copy of a known one.
func modeValue(mode string) any {
	switch mode {
	case ModeSidecar:
		return ModeSidecar
	case ModeAmbient:
		return ModeAmbient
	case ModeNone:
		return ModeNone
	case ModeUnknown:
		return ModeUnknown
	}
	return mode
}

// stringValue is str(m, key) as a fact value: the map's own string value,
// without boxing a copy, or "".
func stringValue(m map[string]any, key string) any {
	v := m[key]
	if _, ok := v.(string); ok {
		return v
	}
	return ""
}

// quotedRef is word + " " + quote(name) with one allocation.
func quotedRef(word, name string) string {
	var buf [64]byte
	b := append(buf[:0], word...)
	b = append(b, ' ')
	return string(strconv.AppendQuote(b, name))
}

func stringAnyMap(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// podRevision is the pod's istio.io/rev label when it selects the injector:
// only in a namespace without istio-injection and istio.io/rev labels (the
// namespace's labels win otherwise).
func podRevision(ns Namespace, nsKnown bool, labels map[string]string) string {
	if nsKnown {
		if _, ok := ns.Labels[labelInjection]; ok {
			return ""
		}
		if _, ok := ns.Labels[labelRev]; ok {
			return ""
		}
	}
	return labels[labelRev]
}

// istioNodePaths are the node directories of Istio's node agents (RULES.md
// MESH0164): the ztunnel and istio-cni sockets, the CNI configuration and
// binaries, the network namespaces and procfs.
var istioNodePaths = []string{"/var/run/ztunnel", "/var/run/istio-cni", "/etc/cni/net.d", "/opt/cni/bin", "/var/run/netns", "/proc"}

// hostPathFacts lists the pod's hostPath volumes: {volume, path, nodePath,
// text}. nodePath is the Istio node-agent path the host path equals, lies
// under, or contains (a mount of "/" or "/var/run" exposes them too); "" when
// none. Paths are cleaned, and /run is read as /var/run, its symlink target on
// common distributions.
func hostPathFacts(spec map[string]any, specPath string) ([]HostPathFacts, error) {
	var out []HostPathFacts
	// vpath is the volume's path, built only for an error.
	vpath := func(i int) string { return specPath + ".volumes[" + strconv.Itoa(i) + "]" }
	for i, raw := range listAt(spec, "volumes") {
		v, ok := raw.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s: expected object, got %s", vpath(i), jsonType(raw))
		}
		if t, bad := wrongType(v, "hostPath", "object"); bad {
			return nil, typeError(vpath(i), "hostPath", "object", t)
		}
		hp, ok := v["hostPath"].(map[string]any)
		if !ok {
			continue
		}
		if t, bad := wrongType(hp, "path", "string"); bad {
			return nil, typeError(vpath(i)+".hostPath", "path", "string", t)
		}
		p := str(hp, "path")
		name := str(v, "name")
		nodePath := istioNodePath(p)
		text := "volume " + quote(name) + " mounts host path " + quote(p)
		if nodePath != "" && nodePath != normalizeHostPath(p) {
			if strings.HasPrefix(normalizeHostPath(p), nodePath+"/") {
				text += " (under " + nodePath + ")"
			} else {
				text += " (contains " + nodePath + ")"
			}
		}
		out = append(out, HostPathFacts{Volume: name, Path: p, NodePath: nodePath, Text: text})
	}
	return out, nil
}

// normalizeHostPath cleans a host path and maps /run to /var/run.
func normalizeHostPath(p string) string {
	c := path.Clean("/" + strings.TrimSpace(p))
	if c == "/run" || strings.HasPrefix(c, "/run/") {
		c = "/var" + c
	}
	return c
}

// istioNodePath returns the first Istio node-agent path that the host path
// equals, lies under or contains, or "".
func istioNodePath(p string) string {
	if strings.TrimSpace(p) == "" {
		return ""
	}
	c := normalizeHostPath(p)
	for _, n := range istioNodePaths {
		if c == n || strings.HasPrefix(c, n+"/") || c == "/" || strings.HasPrefix(n, c+"/") {
			return n
		}
	}
	return ""
}

// mirrorPod reports a static pod's mirror as its kubelet creates it. Anyone
// who can create pods can write the kubernetes.io/config.mirror annotation,
// so at admission it counts only from a node's identity (system:node:*);
// offline and in a cluster audit, where nobody is asking, the annotation is
// taken as it is.
func mirrorPod(annotations map[string]string, req *Request) bool {
	if annotations[annMirror] == "" {
		return false
	}
	return req.User == nil || strings.HasPrefix(req.User.Username, "system:node:")
}

// proxyConfigFields is what the rules read from proxy.istio.io/config.
type proxyConfigFields struct {
	InterceptionMode string
	ProxyMetadata    map[string]any
}

// interceptionModes are ProxyConfig.InboundInterceptionMode's enum numbers.
var interceptionModes = map[float64]string{0: "REDIRECT", 1: "TPROXY", 2: "NONE"}

// parseProxyConfig reads proxy.istio.io/config the way Istio's jsonpb-based
// ApplyYAML does: a field by its JSON name or its proto name
// (interceptionMode or interception_mode, proxyMetadata or proxy_metadata),
// an enum by its name or its number. When both spellings of a field are
// given, the one that captures less wins (a guard's reading).
func parseProxyConfig(raw map[string]any) (proxyConfigFields, error) {
	var out proxyConfigFields
	for _, key := range []string{"interceptionMode", "interception_mode"} {
		v, ok := raw[key]
		if !ok || v == nil {
			continue
		}
		var mode string
		switch t := v.(type) {
		case string:
			mode = t
		case float64:
			m, known := interceptionModes[t]
			if !known {
				return out, fmt.Errorf("%s: unknown interception mode number %v", key, t)
			}
			mode = m
		default:
			return out, fmt.Errorf("%s: expected a string or a number, got %s", key, jsonType(v))
		}
		if out.InterceptionMode == "" || mode == "NONE" {
			out.InterceptionMode = mode
		}
	}
	for _, key := range []string{"proxyMetadata", "proxy_metadata"} {
		v, ok := raw[key]
		if !ok || v == nil {
			continue
		}
		m, isMap := v.(map[string]any)
		if !isMap {
			return out, fmt.Errorf("%s: expected an object, got %s", key, jsonType(v))
		}
		if out.ProxyMetadata == nil {
			out.ProxyMetadata = map[string]any{}
		}
		for k, x := range m {
			out.ProxyMetadata[k] = x
		}
	}
	return out, nil
}

// ambientCaptureFacts reads the ambient capture annotations as istio-cni
// does, with strconv.ParseBool (util.CheckBooleanAnnotation): "true", "True",
// "TRUE", "t", "T" and "1" are all true (MESH0127), and only in the releases
// whose istio-cni reads them (bypass-inbound-capture since 1.24,
// dns-capture since 1.25). raw is the value as written, for messages.
func ambientCaptureFacts(annotations map[string]string, v IstioVersion) AmbientCaptureFacts {
	bypass, _, bypassOK := parseBoolAnnotation(annotations, annAmbientBypassInbound)
	dns, dnsPresent, dnsOK := parseBoolAnnotation(annotations, annAmbientDNSCapture)
	bypassOK = bypassOK && v.BypassInboundCaptureAnnotation()
	dnsOK = dnsOK && v.DNSCaptureAnnotation()
	return AmbientCaptureFacts{
		BypassInbound:    bypassOK && bypass,
		BypassInboundRaw: annotations[annAmbientBypassInbound],
		DNSCaptureOff:    dnsPresent && dnsOK && !dns,
		DNSCaptureRaw:    annotations[annAmbientDNSCapture],
	}
}

// Ambient capture annotations (istio.io/api annotation package).
const (
	annAmbientBypassInbound = "ambient.istio.io/bypass-inbound-capture"
	annAmbientDNSCapture    = "ambient.istio.io/dns-capture"
)

// initSaysTPROXY reports whether the pod's Istio capture init container
// (istio-init, or istio-validation with istio-cni) runs istio-iptables with
// -m TPROXY, parsed as istio-iptables parses it. Only Istio's own init
// container counts (an allowed proxy image, no command): a lookalike cannot
// make the proxy's NET_ADMIN part of the injected shape.
func (e *engine) initSaysTPROXY(spec map[string]any) bool {
	for _, c := range listAt(spec, "initContainers") {
		cm := asMap(c)
		if n := str(cm, "name"); n != "istio-init" && n != "istio-validation" {
			continue
		}
		if len(listAt(cm, "command")) > 0 || !e.cfg.isProxyImage(str(cm, "image")) {
			continue
		}
		args, err := stringArgs(cm, "")
		if err != nil || len(args) == 0 || args[0] != "istio-iptables" {
			continue
		}
		inv, err := parseIptablesArgs(args[1:])
		if err != nil {
			continue
		}
		if inv.setting("istio-inbound-interception-mode", nil).value == "TPROXY" {
			return true
		}
	}
	return false
}
