package rules

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// istio-init runs `istio-iptables` with the capture settings the injector
// wrote from the pod's annotations (injection-template.yaml). The arguments,
// not the annotations, decide what is captured, so a pod (or a template that
// declares istio-init, which the injector merges) can switch capture off
// there while its annotations look clean (issue 9). The arguments are parsed
// the way istio-iptables' command line (cobra/pflag) reads them, and every
// setting that captures less than the annotations ask for is a deviation from
// the injected shape (MESH0157).

// iptablesFlag is one istio-iptables flag: its long name, shorthand, and
// whether it takes a value.
type iptablesFlag struct {
	long, short string
	value       bool
}

// iptablesFlags are the flags of tools/istio-iptables/pkg/cmd/root.go that
// the injector writes or that do not weaken capture. Any other flag is a
// deviation: meshguard cannot tell what it does.
var iptablesFlags = []iptablesFlag{
	{"envoy-port", "p", true},
	{"inbound-capture-port", "z", true},
	{"inbound-tunnel-port", "e", true},
	{"proxy-uid", "u", true},
	{"proxy-gid", "g", true},
	{"istio-inbound-interception-mode", "m", true},
	{"istio-inbound-tproxy-mark", "t", true},
	{"istio-inbound-tproxy-route-table", "r", true},
	{"istio-inbound-ports", "b", true},
	{"istio-local-exclude-ports", "d", true},
	{"istio-exclude-interfaces", "c", true},
	{"istio-service-cidr", "i", true},
	{"istio-service-exclude-cidr", "x", true},
	{"istio-outbound-ports", "q", true},
	{"istio-local-outbound-ports-exclude", "o", true},
	{"kube-virt-interfaces", "k", true},
	{"log_output_level", "", true},
	{"log_as_json", "", false},
	{"iptables-probe-port", "", true},
	{"probe-timeout", "", true},
	{"iptables-version", "", true},
	{"redirect-dns", "", false},
	{"capture-all-dns", "", false},
	{"drop-invalid", "", false},
	{"dual-stack", "", false},
	{"network-namespace", "", true},
	{"run-validation", "", false},
	{"skip-rule-apply", "", false},
	{"dry-run", "", false},
	{"reconcile", "", false},
}

// parseIptablesArgs reads istio-iptables arguments (after the program name)
// into long flag name -> value ("true" for a boolean), the last occurrence
// winning as in pflag. Unknown flags and stray arguments are returned as
// problems.
func parseIptablesArgs(args []string) (map[string]string, []string) {
	byLong, byShort := map[string]iptablesFlag{}, map[string]iptablesFlag{}
	for _, f := range iptablesFlags {
		byLong[f.long] = f
		if f.short != "" {
			byShort[f.short] = f
		}
	}
	vals := map[string]string{}
	var problems []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		var f iptablesFlag
		var ok bool
		var val string
		hasVal := false
		switch {
		case strings.HasPrefix(a, "--"):
			name := a[2:]
			if k, v, eq := strings.Cut(name, "="); eq {
				name, val, hasVal = k, v, true
			}
			f, ok = byLong[name]
		case strings.HasPrefix(a, "-") && len(a) > 1:
			f, ok = byShort[a[1:2]]
			if len(a) > 2 {
				val, hasVal = strings.TrimPrefix(a[2:], "="), true
			}
		default:
			problems = append(problems, fmt.Sprintf("passes the stray argument %s to istio-iptables", quote(a)))
			continue
		}
		if !ok {
			problems = append(problems, fmt.Sprintf("passes %s, which is not an istio-iptables flag the injector writes", quote(a)))
			continue
		}
		switch {
		case !f.value && !hasVal:
			val = "true"
		case f.value && !hasVal:
			if i+1 >= len(args) {
				problems = append(problems, fmt.Sprintf("passes %s without a value", quote(a)))
				continue
			}
			i++
			val = args[i]
		}
		vals[f.long] = val
	}
	return vals, problems
}

// initArgProblems judges istio-init's arguments against the pod's
// annotations (from which the injector writes them) and the install's
// defaults: every setting that captures less, redirects elsewhere, exempts
// another identity or applies no rules is a problem.
func (e *engine) initArgProblems(raw []any, ann map[string]string, uid, gid int64, postInjection bool, appUIDs map[int64]string) []string {
	args := make([]string, 0, len(raw))
	for _, a := range raw {
		s, _ := a.(string)
		args = append(args, s)
	}
	if len(args) == 0 || args[0] != "istio-iptables" {
		return nil
	}
	vals, problems := parseIptablesArgs(args[1:])
	arg := func(long string) string {
		for _, f := range iptablesFlags {
			if f.long == long && f.short != "" {
				return "-" + f.short
			}
		}
		return "--" + long
	}
	for _, b := range []string{"skip-rule-apply", "dry-run"} {
		if v, ok := vals[b]; ok && v != "false" {
			problems = append(problems, fmt.Sprintf("runs istio-iptables with --%s, which applies no capture rules", b))
		}
	}
	if v, ok := vals["istio-inbound-interception-mode"]; ok {
		switch strings.ToUpper(v) {
		case "REDIRECT", "TPROXY":
		default:
			problems = append(problems, fmt.Sprintf("argument -m %s is not REDIRECT or TPROXY, so inbound traffic is not redirected to the proxy", quote(v)))
		}
	}
	for _, p := range []struct {
		long string
		want int64
		what string
	}{{"envoy-port", 15001, "outbound"}, {"inbound-capture-port", 15006, "inbound"}} {
		if v, ok := vals[p.long]; ok && v != strconv.FormatInt(p.want, 10) {
			problems = append(problems, fmt.Sprintf("argument %s %s redirects %s traffic away from the proxy's port %d", arg(p.long), quote(v), p.what, p.want))
		}
	}
	for _, id := range []struct {
		long, what string
		want       int64
	}{{"proxy-uid", "UID", uid}, {"proxy-gid", "GID", gid}} {
		v, ok := vals[id.long]
		if !ok {
			continue
		}
		for _, s := range splitList(v) {
			n, err := strconv.ParseInt(s, 10, 64)
			if err == nil && n == id.want {
				continue
			}
			text := fmt.Sprintf("argument %s %s exempts %s %s from capture instead of the proxy's %d", arg(id.long), quote(v), id.what, s, id.want)
			if who, ok := appUIDs[n]; ok && err == nil && id.what == "UID" {
				text += fmt.Sprintf(" (%s runs as it)", who)
			}
			problems = append(problems, text)
		}
	}
	// Outbound include ranges: "*" captures everything; anything else must be
	// what the annotation (or, on an injected pod, the install) asks for.
	if v, ok := vals["istio-service-cidr"]; ok && strings.TrimSpace(v) != "*" {
		want, has := ann[annInclOutRanges]
		if !(has && sameList(v, want)) && !(postInjection && !has && sameList(v, e.cfg.InjectorIncludeOutboundIPRanges)) {
			if strings.TrimSpace(v) == "" {
				problems = append(problems, `argument -i "" captures no outbound traffic`)
			} else {
				problems = append(problems, fmt.Sprintf("argument -i %s limits outbound capture", quote(v)))
			}
		}
	}
	extra := func(long string, allowed ...map[string]bool) []string {
		var out []string
		for _, s := range splitList(vals[long]) {
			ok := false
			for _, a := range allowed {
				ok = ok || a[s]
			}
			if !ok {
				out = append(out, s)
			}
		}
		sort.Strings(out)
		return out
	}
	defaults := map[string]bool{}
	if postInjection {
		defaults = toSet(splitList(e.cfg.InjectorExcludeOutboundIPRanges))
	}
	if x := extra("istio-service-exclude-cidr", toSet(splitList(ann[annExclOutRanges])), defaults); len(x) > 0 {
		problems = append(problems, fmt.Sprintf("argument -x excludes %s from outbound capture beyond the annotations", quote(strings.Join(x, ","))))
	}
	if v, ok := vals["istio-inbound-ports"]; ok && strings.TrimSpace(v) != "*" {
		if want, has := ann[annInclInPorts]; !has || !sameList(v, want) {
			if strings.TrimSpace(v) == "" {
				problems = append(problems, `argument -b "" captures no inbound traffic`)
			} else {
				problems = append(problems, fmt.Sprintf("argument -b %s limits inbound capture", quote(v)))
			}
		}
	}
	if x := extra("istio-local-exclude-ports", implicitExcludedInbound, toSet(splitList(ann[annExclInPorts]))); len(x) > 0 {
		problems = append(problems, fmt.Sprintf("argument -d excludes inbound ports %s from capture beyond the annotations", quote(strings.Join(x, ","))))
	}
	if x := extra("istio-local-outbound-ports-exclude", toSet(splitList(ann[annExclOutPorts]))); len(x) > 0 {
		problems = append(problems, fmt.Sprintf("argument -o excludes outbound ports %s from capture beyond the annotations", quote(strings.Join(x, ","))))
	}
	if x := extra("istio-exclude-interfaces", toSet(splitList(ann["traffic.sidecar.istio.io/excludeInterfaces"]))); len(x) > 0 {
		problems = append(problems, fmt.Sprintf("argument -c excludes interfaces %s from capture beyond the annotations", quote(strings.Join(x, ","))))
	}
	return problems
}

// annInjectTemplates selects the injector's templates for a pod.
const annInjectTemplates = "inject.istio.io/templates"

// routerTemplates are Istio's injection templates for a gateway's or
// waypoint's own pod: the proxy runs as a router and captures nothing, which
// is never right next to application containers.
var routerTemplates = map[string]bool{"gateway": true, "waypoint": true}

// proxylessTemplate describes (MESH0114) a pod whose inject.istio.io/templates
// leave out the sidecar template while it runs application containers: the
// injector adds a proxy that captures nothing, so the application is outside
// the mesh while the pod looks meshed. router is true when a gateway or
// waypoint template serves application containers (High); Istio's proxyless
// gRPC templates (grpc-agent, grpc-simple) are meant for gRPC applications
// that speak xDS themselves, and a custom template may capture, so those are
// Medium (RULES.md). A pod of nothing but istio-proxy (a gateway) is fine.
func proxylessTemplate(ann map[string]string, spec map[string]any) any {
	raw, ok := ann[annInjectTemplates]
	if !ok {
		return nil
	}
	var names []string
	router := false
	for _, t := range splitList(raw) {
		if t == "sidecar" {
			return nil
		}
		names = append(names, t)
		router = router || routerTemplates[t]
	}
	if len(names) == 0 {
		return nil // the default template, sidecar
	}
	var apps []string
	for _, c := range listAt(spec, "containers") {
		if n := str(asMap(c), "name"); n != "istio-proxy" {
			apps = append(apps, quote(n))
		}
	}
	if len(apps) == 0 {
		return nil
	}
	return map[string]any{
		"router": router,
		"text": fmt.Sprintf("annotation %s is %s, which injects a proxy without traffic capture, so %s %s outside the mesh",
			annInjectTemplates, quote(raw), plural(len(apps), "container", "containers")+" "+strings.Join(apps, ", "), plural(len(apps), "stays", "stay")),
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
