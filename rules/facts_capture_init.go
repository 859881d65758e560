package rules

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
)

// The capture an Istio init container really sets up (RULES.md 4.3, MESH0157;
// issue 9 item 4). The injector writes istio-init's arguments from the pod's
// annotations (injection-template.yaml), and a pod or template that declares
// its own istio-init has its args, env and securityContext merged over the
// injected container (webhook.go reapplyOverwrittenContainers: a strategic
// merge, so a declared args list replaces the injected one). Arguments equal to
// what the annotations produce are judged through the annotations (MESH012x);
// only what goes beyond them is reported here, with the same rules.

const (
	annStatusPort        = "status.sidecar.istio.io/port"
	annExclInterfaces    = "traffic.sidecar.istio.io/excludeInterfaces"
	annRerouteInterfaces = "istio.io/reroute-virtual-interfaces"
	annKubevirtIfaces    = "traffic.sidecar.istio.io/kubevirtInterfaces"
	annInjectTemplates   = "inject.istio.io/templates"
)

// Kinds of $facts.capture.initArgs entries, each judged by one rule.
const (
	initNoRules          = "noRules"          // MESH0120: no iptables rules in the pod
	initRedirectPort     = "redirectPort"     // MESH0120: traffic redirected to a port that is not Envoy's
	initInboundOff       = "inboundOff"       // MESH0121: -b ""
	initInboundNarrowed  = "inboundNarrowed"  // MESH0121: -b list
	initInboundExcluded  = "inboundExcluded"  // MESH0122: -d beyond the annotations, -e
	initOutboundOff      = "outboundOff"      // MESH0123: -i ""
	initOutboundNarrowed = "outboundNarrowed" // MESH0123: -i list
	initOutboundRanges   = "outboundRanges"   // MESH0124: -x beyond the annotations
	initOutboundPorts    = "outboundPorts"    // MESH0125: -o beyond the annotations
	initInterfaces       = "interfaces"       // MESH0126: -c beyond the annotations
	initRerouted         = "rerouted"         // MESH0126 (Low): -k beyond the annotations
	initShape            = "shape"            // MESH0157: anything else the injector never writes
)

// injectedCapture is what the injector writes into istio-init for this pod
// (injection-template.yaml), from its annotations and the install defaults.
type injectedCapture struct {
	mode          string          // -m
	uid           int64           // -u (1337 under TPROXY)
	gids          map[int64]bool  // GIDs the proxy may run with (-g defaults to -u)
	include       string          // -i
	exclude       map[string]bool // -x
	inPorts       string          // -b
	exclInPorts   map[string]bool // -d: 15090, 15021, the status port and excludeInboundPorts
	exclOutPorts  map[string]bool // -o
	exclIfaces    map[string]bool // -c
	reroute       map[string]bool // -k
	proxyMetadata map[string]string
}

// annotationOr is the injector's `annotation` template function: the
// annotation when present (even empty), else the default.
func annotationOr(ann map[string]string, key, def string) string {
	if v, ok := ann[key]; ok {
		return v
	}
	return def
}

func (e *engine) injectedCaptureFor(ann map[string]string, uid, gid int64, mode string, proxyMetadata map[string]string) *injectedCapture {
	status := strings.TrimSpace(annotationOr(ann, annStatusPort, "15020"))
	exclIn := toSet(splitList(ann[annExclInPorts]))
	exclIn["15090"], exclIn["15021"] = true, true
	if status != "" && status != "0" {
		exclIn[status] = true
	}
	reroute := ann[annRerouteInterfaces]
	if _, ok := ann[annRerouteInterfaces]; !ok {
		reroute = ann[annKubevirtIfaces]
	}
	return &injectedCapture{
		mode:          mode,
		uid:           uid,
		gids:          map[int64]bool{uid: true, gid: true},
		include:       annotationOr(ann, annInclOutRanges, e.cfg.InjectorIncludeOutboundIPRanges),
		exclude:       toSet(splitList(annotationOr(ann, annExclOutRanges, e.cfg.InjectorExcludeOutboundIPRanges))),
		inPorts:       annotationOr(ann, annInclInPorts, "*"),
		exclInPorts:   exclIn,
		exclOutPorts:  toSet(splitList(ann[annExclOutPorts])),
		exclIfaces:    toSet(splitList(ann[annExclInterfaces])),
		reroute:       toSet(splitList(reroute)),
		proxyMetadata: proxyMetadata,
	}
}

// injectorArgs are the arguments the injector writes into istio-init for
// this pod (injection-template.yaml, without the logging flags).
func (inj *injectedCapture) injectorArgs() []string {
	join := func(set map[string]bool) string {
		l := make([]string, 0, len(set))
		for k := range set {
			l = append(l, k)
		}
		sort.Strings(l)
		return strings.Join(l, ",")
	}
	args := []string{"istio-iptables", "-p", "15001", "-z", "15006", "-u", strconv.FormatInt(inj.uid, 10), "-m", inj.mode,
		"-i", inj.include, "-x", join(inj.exclude), "-b", inj.inPorts, "-d", join(inj.exclInPorts)}
	for _, o := range []struct {
		flag string
		set  map[string]bool
	}{{"-o", inj.exclOutPorts}, {"-k", inj.reroute}, {"-c", inj.exclIfaces}} {
		if len(o.set) > 0 {
			args = append(args, o.flag, join(o.set))
		}
	}
	return args
}

// exemptID is a UID or GID an init container exempts from outbound capture
// beyond the proxy's, with the setting that does it.
type exemptID struct {
	id     int64
	source string // e.g. `istio-init argument -u "1000"`
}

// initCapture is the judgement of one Istio init container.
type initCapture struct {
	entries    []InitArgFacts
	exemptUIDs []exemptID
	exemptGIDs []exemptID
}

func (ic *initCapture) add(kind, container, text string, extra ...any) {
	a := InitArgFacts{Kind: kind, Container: container, Text: text}
	for i := 0; i+1 < len(extra); i += 2 {
		v, _ := extra[i+1].(bool)
		switch extra[i].(string) {
		case "allowed":
			a.Allowed = v
		case "wide":
			a.Wide = v
		case "linkLocal":
			a.LinkLocal = v
		}
	}
	ic.entries = append(ic.entries, a)
}

// containerEnv reads a container's env as istio-iptables sees it: the
// injector's env (the pod's proxyMetadata) overlaid by the declared entries,
// as the strategic merge does (by name).
func containerEnv(c map[string]any, cpath string, base map[string]string) (iptablesEnv, error) {
	env := iptablesEnv{}
	for k, v := range base {
		env[k] = envValue{value: v, meta: true}
	}
	if v, bad := wrongType(c, "env", "array"); bad {
		return nil, typeError(cpath, "env", "array", v)
	}
	for i, raw := range listAt(c, "env") {
		epath := cpath + ".env[" + strconv.Itoa(i) + "]"
		m, ok := raw.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s: expected object, got %s", epath, jsonType(raw))
		}
		for _, f := range []struct{ key, typ string }{{"name", "string"}, {"value", "string"}, {"valueFrom", "object"}} {
			if v, bad := wrongType(m, f.key, f.typ); bad {
				return nil, typeError(epath, f.key, f.typ, v)
			}
		}
		if _, ok := m["valueFrom"]; ok {
			env[str(m, "name")] = envValue{ref: true}
			continue
		}
		env[str(m, "name")] = envValue{value: str(m, "value")}
	}
	return env, nil
}

// stringArgs returns a container's args as strings; an element of another
// type is an error naming it.
func stringArgs(c map[string]any, cpath string) ([]string, error) {
	raw := listAt(c, "args")
	out := make([]string, 0, len(raw))
	for i, a := range raw {
		s, ok := a.(string)
		if !ok {
			return nil, fmt.Errorf("%s.args[%d]: expected string, got %s", cpath, i, jsonType(a))
		}
		out = append(out, s)
	}
	return out, nil
}

// judgeInitContainer judges the capture set up by an Istio-named init
// container (istio-init or istio-validation in initContainers) that runs
// istio-iptables. args are its arguments (args[0] is "istio-iptables", or args
// is empty); postInjection: the pod is seen after injection, so absent args
// are not filled in any more.
func (e *engine) judgeInitContainer(name string, args []string, env iptablesEnv, inj *injectedCapture, postInjection bool) *initCapture {
	ic := &initCapture{}
	if len(args) == 0 {
		// Before injection the injector's own args are merged in.
		if postInjection {
			if name == "istio-init" {
				ic.add(initNoRules, name, name+" has no arguments, so pilot-agent runs no istio-iptables and applies no iptables rules")
			} else {
				ic.add(initShape, name, name+" has no arguments, so pilot-agent does not validate the capture istio-cni should set up")
			}
		}
		return ic
	}
	inv, err := parseIptablesArgs(args[1:])
	if err != nil {
		ic.add(initShape, name, fmt.Sprintf("%s arguments are not what istio-iptables accepts (%v)", name, err))
		return ic
	}
	s := func(flag string) iptablesSetting { return inv.setting(flag, env) }
	says := func(st iptablesSetting) string {
		if !st.set() {
			return fmt.Sprintf("%s without %s (default %s)", name, st.flag, quote(st.value))
		}
		return name + " " + st.source
	}
	// A setting taken from a valueFrom cannot be judged: report it once.
	unknown := func(st iptablesSetting) bool {
		if st.fromEnvRef {
			ic.add(initShape, name, says(st)+" sets a capture setting whose value the request does not show")
		}
		return st.fromEnvRef
	}
	if h := s("help"); h.value == "true" {
		if name == "istio-init" {
			ic.add(initNoRules, name, says(h)+" prints the usage and applies no iptables rules")
		} else {
			ic.add(initShape, name, says(h)+" prints the usage instead of validating the capture")
		}
		return ic
	}
	if name == "istio-validation" {
		// istio-cni sets up the capture from the pod's annotations; this
		// container only checks it, and must not apply rules itself.
		if rv := s("run-validation"); rv.value != "true" && !unknown(rv) {
			ic.add(initShape, name, name+" does not pass --run-validation, so the pod starts even when istio-cni did not set up its capture")
		}
		if sk := s("skip-rule-apply"); sk.value != "true" && !unknown(sk) {
			ic.add(initShape, name, name+" does not pass --skip-rule-apply, unlike the injected container")
		}
		return ic
	}

	// istio-init: nothing applied at all.
	for _, flag := range []struct{ name, why string }{
		{"dry-run", "applies no iptables rules (dry run)"},
		{"skip-rule-apply", "applies no iptables rules"},
		{"cleanup-only", "removes Istio's iptables rules instead of applying them"},
	} {
		if st := s(flag.name); st.value == "true" {
			ic.add(initNoRules, name, says(st)+" "+flag.why)
		} else {
			unknown(st)
		}
	}
	if st := s("network-namespace"); st.value != "" {
		ic.add(initNoRules, name, says(st)+" applies the rules in another network namespace, not the pod's")
	} else {
		unknown(st)
	}
	// Redirect targets that are not Envoy's listeners.
	for _, p := range []struct{ flag, want, dir string }{{"envoy-port", "15001", "outbound"}, {"inbound-capture-port", "15006", "inbound"}} {
		if st := s(p.flag); !unknown(st) && strings.TrimSpace(st.value) != p.want {
			ic.add(initRedirectPort, name, fmt.Sprintf("%s redirects %s traffic to port %s, not to the proxy's %s", says(st), p.dir, quote(st.value), p.want))
		}
	}
	if st := s("istio-inbound-interception-mode"); !unknown(st) {
		// Without -m istio-iptables redirects as in REDIRECT mode.
		switch {
		case !st.set() && inj.mode != "TPROXY":
		case !st.set():
			ic.add(initShape, name, fmt.Sprintf("%s does not set interception mode %s, the pod's", name, quote(inj.mode)))
		case st.value != inj.mode:
			ic.add(initShape, name, fmt.Sprintf("%s sets interception mode %s, not the pod's %s", says(st), quote(st.value), quote(inj.mode)))
		}
	}

	// Inbound.
	inbound := s("istio-inbound-ports")
	if !unknown(inbound) {
		switch v := strings.TrimSpace(inbound.value); {
		case v == "*" || sameList(v, inj.inPorts):
		case v == "":
			ic.add(initInboundOff, name, says(inbound)+" captures no inbound traffic")
		default:
			ic.add(initInboundNarrowed, name, fmt.Sprintf("%s limits inbound capture to %s", says(inbound), quote(v)))
		}
	}
	if strings.TrimSpace(inbound.value) == "*" {
		if st := s("istio-local-exclude-ports"); !unknown(st) {
			var extra []string
			for _, p := range splitList(st.value) {
				if !inj.exclInPorts[p] && !implicitExcludedInbound[p] {
					extra = append(extra, p)
				}
			}
			if len(extra) > 0 {
				ic.add(initInboundExcluded, name, fmt.Sprintf("%s excludes %s %s from inbound capture", says(st), plural(len(extra), "port", "ports"), quoteList(extra)),
					"allowed", e.allPortsAllowed(extra))
			}
		}
	}
	if st := s("inbound-tunnel-port"); !unknown(st) && strings.TrimSpace(st.value) != "15008" {
		ic.add(initInboundExcluded, name, fmt.Sprintf("%s excludes port %s from inbound capture (as the HBONE tunnel port)", says(st), quote(st.value)),
			"allowed", e.allPortsAllowed([]string{strings.TrimSpace(st.value)}))
	}

	// Outbound.
	if st := s("istio-service-cidr"); !unknown(st) {
		switch v := strings.TrimSpace(st.value); {
		case v == "*" || sameList(v, inj.include):
		case v == "":
			ic.add(initOutboundOff, name, says(st)+" captures no outbound traffic")
		default:
			ic.add(initOutboundNarrowed, name, fmt.Sprintf("%s limits outbound capture to %s", says(st), quote(v)))
		}
	}
	if st := s("istio-service-exclude-cidr"); !unknown(st) {
		var extra []string
		wide, linkLocal := false, true
		for _, r := range splitList(st.value) {
			if inj.exclude[r] {
				continue
			}
			extra = append(extra, r)
			if p, err := netip.ParsePrefix(r); err == nil && (p.Bits() < 8 || p.Addr().Is6() && p.Bits() < 16) {
				wide = true
			}
			if !isLinkLocalRange(r) {
				linkLocal = false
			}
		}
		if len(extra) > 0 {
			ic.add(initOutboundRanges, name, fmt.Sprintf("%s excludes %s from outbound capture", says(st), quoteList(extra)),
				"wide", wide, "linkLocal", linkLocal)
		}
	}
	listBeyond := func(flag string, known map[string]bool, kind string, text func(src string, extra []string) string) {
		st := s(flag)
		if unknown(st) {
			return
		}
		var extra []string
		for _, v := range splitList(st.value) {
			if !known[v] {
				extra = append(extra, v)
			}
		}
		if len(extra) > 0 {
			ic.add(kind, name, text(says(st), extra))
		}
	}
	listBeyond("istio-local-outbound-ports-exclude", inj.exclOutPorts, initOutboundPorts, func(src string, extra []string) string {
		return fmt.Sprintf("%s excludes %s %s from outbound capture", src, plural(len(extra), "port", "ports"), quoteList(extra))
	})
	listBeyond("istio-exclude-interfaces", inj.exclIfaces, initInterfaces, func(src string, extra []string) string {
		return fmt.Sprintf("%s excludes %s %s from capture", src, plural(len(extra), "interface", "interfaces"), quoteList(extra))
	})
	listBeyond("kube-virt-interfaces", inj.reroute, initRerouted, func(src string, extra []string) string {
		return fmt.Sprintf("%s reroutes %s %s outside the normal capture", src, plural(len(extra), "interface", "interfaces"), quoteList(extra))
	})

	// The owners whose traffic is not captured.
	uidSetting := s("proxy-uid")
	var uids []string
	switch {
	case unknown(uidSetting):
	case strings.TrimSpace(uidSetting.value) == "":
		// istio-iptables then exempts the UID of ENVOY_USER ("istio-proxy", 1337 in the proxy image).
		if u := env.envOnly("ENVOY_USER", "istio-proxy"); u.fromEnvRef || u.value != "istio-proxy" {
			ic.add(initShape, name, fmt.Sprintf("%s exempts the UID of user %s from outbound capture instead of the proxy UID %d", says(u), quote(u.value), inj.uid))
		} else {
			uids = []string{strconv.FormatInt(inj.uid, 10)}
		}
	default:
		uids = splitList(uidSetting.value)
	}
	var badUIDs []string
	for _, u := range uids {
		if u == strconv.FormatInt(inj.uid, 10) {
			continue
		}
		badUIDs = append(badUIDs, u)
		if n, err := strconv.ParseInt(u, 10, 64); err == nil {
			ic.exemptUIDs = append(ic.exemptUIDs, exemptID{n, says(uidSetting)})
		}
	}
	if len(badUIDs) > 0 {
		ic.add(initShape, name, fmt.Sprintf("%s exempts %s %s from outbound capture; the injector exempts only the proxy UID %d", says(uidSetting), plural(len(badUIDs), "UID", "UIDs"), strings.Join(badUIDs, ", "), inj.uid))
	}
	gidSetting := s("proxy-gid")
	switch {
	case unknown(gidSetting):
	case strings.TrimSpace(gidSetting.value) == "":
		// The GIDs default to the UIDs: -u's extra IDs are exempt as GIDs too.
		for _, x := range ic.exemptUIDs {
			if !inj.gids[x.id] {
				ic.exemptGIDs = append(ic.exemptGIDs, x)
			}
		}
	default:
		var bad []string
		for _, g := range splitList(gidSetting.value) {
			n, err := strconv.ParseInt(g, 10, 64)
			if err == nil && inj.gids[n] {
				continue
			}
			bad = append(bad, g)
			if err == nil {
				ic.exemptGIDs = append(ic.exemptGIDs, exemptID{n, says(gidSetting)})
			}
		}
		if len(bad) > 0 {
			ic.add(initShape, name, fmt.Sprintf("%s exempts %s %s from outbound capture, beyond the proxy's", says(gidSetting), plural(len(bad), "GID", "GIDs"), strings.Join(bad, ", ")))
		}
	}
	if st := env.envOnly("ISTIO_OUTBOUND_OWNER_GROUPS", "*"); !unknown(st) && strings.TrimSpace(st.value) != "*" {
		ic.add(initShape, name, says(st)+" captures outbound traffic only from those groups")
	}
	if st := env.envOnly("ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE", ""); !unknown(st) && strings.TrimSpace(st.value) != "" {
		ic.add(initShape, name, says(st)+" exempts those groups from outbound capture")
		for _, g := range splitList(st.value) {
			if n, err := strconv.ParseInt(g, 10, 64); err == nil {
				ic.exemptGIDs = append(ic.exemptGIDs, exemptID{n, says(st)})
			}
		}
	}
	return ic
}

func (e *engine) allPortsAllowed(ports []string) bool {
	for _, p := range ports {
		if !e.cfg.portsAllowed[p] {
			return false
		}
	}
	return len(ports) > 0
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// quoteList renders "a", "b".
func quoteList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = quote(s)
	}
	return strings.Join(q, ", ")
}

// injectTemplates reads inject.istio.io/templates as the injector's
// selectTemplates does (comma-separated, trimmed) and sorts the names by
// what they do to capture.
func injectTemplates(ann map[string]string) InjectTemplatesFacts {
	raw, ok := ann[annInjectTemplates]
	out := InjectTemplatesFacts{Set: ok, Raw: raw}
	var proxyOnly, proxyless, unknown []string
	seen := map[string]bool{}
	for _, n := range strings.Split(raw, ",") {
		n = strings.TrimSpace(n)
		if !ok || n == "" || seen[n] {
			continue
		}
		seen[n] = true
		switch n {
		case "sidecar":
			out.Sidecar = true
		case "gateway", "kube-gateway", "waypoint":
			proxyOnly = append(proxyOnly, n)
		case "grpc-agent", "grpc-simple":
			proxyless = append(proxyless, n)
		default:
			unknown = append(unknown, n)
		}
	}
	sort.Strings(unknown)
	out.ProxyOnly, out.Proxyless, out.Unknown = proxyOnly, proxyless, unknown
	return out
}
