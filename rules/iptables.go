package rules

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// This file reads the arguments of Istio's istio-iptables command (run as
// `pilot-agent istio-iptables ...` by the istio-init and istio-validation init
// containers) the way its cobra command and pflag flag set read them
// (tools/istio-iptables/pkg/cmd/root.go, pkg/flag/flag.go), so that meshguard
// judges the capture those containers really set up, not the first argument.

// iptablesFlagKind is the pflag value type of an istio-iptables flag.
type iptablesFlagKind int

const (
	flagString iptablesFlagKind = iota
	flagBool
	flagUint16
	flagDuration
	flagStringArray
)

// iptablesFlag is one flag istio-iptables accepts.
type iptablesFlag struct {
	name  string // long name, without "--"
	short string // shorthand letter, "" when none
	kind  iptablesFlagKind
	// env names the environment variables that set the flag when it is not
	// given on the command line (flag.BindEnv: the name upper-cased with "-"
	// as "_"; flag.AdditionalEnv: an extra name, read after and so winning).
	env []string
	// def is the default (config.DefaultConfig), "" when none.
	def string
}

// iptablesFlags are the flags of istio-iptables from Istio 1.22 to 1.28 (the
// union: 1.22's --iptables-trace-logging and -f/--restore-format, 1.26's
// --reconcile, --cleanup-only, --force-apply, --native-nftables and
// --force-iptables-binary), then the logging flags pilot-agent's root command
// makes persistent (pkg/log/options.go) and cobra's own help flag. A flag that
// the running Istio does not know makes istio-iptables fail, and the pod with
// it; accepting the union therefore never hides a bypass.
var iptablesFlags = []iptablesFlag{
	{name: "envoy-port", short: "p", def: "15001"},
	{name: "inbound-capture-port", short: "z", env: []string{"INBOUND_CAPTURE_PORT"}, def: "15006"},
	{name: "inbound-tunnel-port", short: "e", env: []string{"INBOUND_TUNNEL_PORT"}, def: "15008"},
	{name: "proxy-uid", short: "u", env: []string{"PROXY_UID"}},
	{name: "proxy-gid", short: "g", env: []string{"PROXY_GID"}},
	{name: "istio-inbound-interception-mode", short: "m", env: []string{"ISTIO_INBOUND_INTERCEPTION_MODE"}},
	{name: "istio-inbound-ports", short: "b", env: []string{"ISTIO_INBOUND_PORTS"}},
	{name: "istio-local-exclude-ports", short: "d", env: []string{"ISTIO_LOCAL_EXCLUDE_PORTS"}},
	{name: "istio-exclude-interfaces", short: "c", env: []string{"ISTIO_EXCLUDE_INTERFACES"}},
	{name: "istio-service-cidr", short: "i", env: []string{"ISTIO_SERVICE_CIDR"}},
	{name: "istio-service-exclude-cidr", short: "x", env: []string{"ISTIO_SERVICE_EXCLUDE_CIDR"}},
	{name: "istio-outbound-ports", short: "q", env: []string{"ISTIO_OUTBOUND_PORTS"}},
	{name: "istio-local-outbound-ports-exclude", short: "o", env: []string{"ISTIO_LOCAL_OUTBOUND_PORTS_EXCLUDE"}},
	{name: "kube-virt-interfaces", short: "k", env: []string{"KUBE_VIRT_INTERFACES"}},
	{name: "istio-inbound-tproxy-mark", short: "t", env: []string{"ISTIO_INBOUND_TPROXY_MARK"}, def: "1337"},
	{name: "istio-inbound-tproxy-route-table", short: "r", env: []string{"ISTIO_INBOUND_TPROXY_ROUTE_TABLE"}, def: "133"},
	{name: "dry-run", short: "n", kind: flagBool, env: []string{"DRY_RUN"}},
	{name: "restore-format", short: "f", kind: flagBool, env: []string{"RESTORE_FORMAT"}},
	{name: "iptables-trace-logging", kind: flagBool, env: []string{"IPTABLES_TRACE_LOGGING"}},
	{name: "iptables-probe-port", kind: flagUint16, env: []string{"IPTABLES_PROBE_PORT"}, def: "15002"},
	{name: "probe-timeout", kind: flagDuration, env: []string{"PROBE_TIMEOUT"}, def: "5s"},
	{name: "skip-rule-apply", kind: flagBool, env: []string{"SKIP_RULE_APPLY"}},
	{name: "run-validation", kind: flagBool, env: []string{"RUN_VALIDATION"}},
	{name: "redirect-dns", kind: flagBool, env: []string{"REDIRECT_DNS", "ISTIO_META_DNS_CAPTURE"}},
	{name: "drop-invalid", kind: flagBool, env: []string{"DROP_INVALID", "INVALID_DROP"}},
	{name: "dual-stack", kind: flagBool, env: []string{"DUAL_STACK", "ISTIO_DUAL_STACK"}},
	{name: "capture-all-dns", kind: flagBool, env: []string{"CAPTURE_ALL_DNS"}},
	{name: "network-namespace", env: []string{"NETWORK_NAMESPACE"}},
	{name: "cni-mode", kind: flagBool, env: []string{"CNI_MODE"}},
	{name: "reconcile", kind: flagBool, env: []string{"RECONCILE"}},
	{name: "cleanup-only", kind: flagBool, env: []string{"CLEANUP_ONLY"}},
	{name: "force-apply", kind: flagBool, env: []string{"FORCE_APPLY"}},
	{name: "native-nftables", kind: flagBool, env: []string{"NATIVE_NFTABLES"}},
	{name: "force-iptables-binary", env: []string{"FORCE_IPTABLES_BINARY"}},
	// pilot-agent's persistent logging flags.
	{name: "log_target", kind: flagStringArray},
	{name: "log_as_json", kind: flagBool},
	{name: "log_output_level"},
	{name: "log_stacktrace_level"},
	{name: "log_caller"},
	// cobra's help flag: istio-iptables then prints its usage and exits 0
	// without applying any rule.
	{name: "help", short: "h", kind: flagBool},
}

var (
	iptablesByName  = map[string]*iptablesFlag{}
	iptablesByShort = map[byte]*iptablesFlag{}
)

func init() {
	for i := range iptablesFlags {
		f := &iptablesFlags[i]
		iptablesByName[f.name] = f
		if f.short != "" {
			iptablesByShort[f.short[0]] = f
		}
	}
}

// iptablesSetting is a flag's effective value and where it came from.
type iptablesSetting struct {
	value string
	// source is how the value was given, for messages: `argument -i ""`,
	// `argument --skip-rule-apply`, `env DRY_RUN="true"`; "" for the default.
	source string
	// fromEnvRef: the value comes from an env valueFrom the request cannot
	// show (a ConfigMap, Secret or field reference); value is then "".
	fromEnvRef bool
	// flag is the flag's usual spelling ("-i", "--skip-rule-apply") or the
	// variable's name, for messages about a default.
	flag string
}

// set reports whether the setting was given (argument or environment).
func (s iptablesSetting) set() bool { return s.source != "" }

// iptablesInvocation is a parsed istio-iptables command line.
type iptablesInvocation struct {
	// given holds the flags given on the command line: the last value (pflag
	// replaces a repeated string flag's value) and how its flag was spelled
	// ("-i", "--istio-service-cidr").
	given map[string]iptablesArg
	// positional are the non-flag arguments (cobra passes them to the command,
	// which ignores them), including everything after "--".
	positional []string
}

type iptablesArg struct {
	value, spelling string
}

// parseIptablesArgs parses the arguments that follow the "istio-iptables"
// subcommand exactly as pflag does: "--name=value" and "--name value";
// "-x value", "-xvalue" and "-x=value" (only when something follows the "=";
// pflag reads "-x=" as the value "="); bool flags take no separate value
// ("-n", "--dry-run", "--dry-run=false") and combine ("-nh"); a repeated flag's
// last value wins; "--" ends the flags; "-" and words without a leading dash
// are positional. An unknown flag, a missing value or a value the flag's type
// rejects is an error, as it is for istio-iptables, which then exits non-zero.
func parseIptablesArgs(args []string) (*iptablesInvocation, error) {
	inv := &iptablesInvocation{given: map[string]iptablesArg{}}
	record := func(f *iptablesFlag, value, spelling string) error {
		if err := checkFlagValue(f, value); err != nil {
			return fmt.Errorf("invalid argument %s for %q flag: %w", quote(value), spelling, err)
		}
		if f.kind == flagBool {
			b, _ := strconv.ParseBool(value)
			value = strconv.FormatBool(b)
		}
		inv.given[f.name] = iptablesArg{value: value, spelling: spelling}
		return nil
	}
	for len(args) > 0 {
		s := args[0]
		args = args[1:]
		if len(s) < 2 || s[0] != '-' {
			inv.positional = append(inv.positional, s)
			continue
		}
		if s[1] == '-' {
			if len(s) == 2 {
				inv.positional = append(inv.positional, args...)
				break
			}
			name := s[2:]
			if name[0] == '-' || name[0] == '=' {
				return nil, fmt.Errorf("bad flag syntax: %s", s)
			}
			name, value, hasValue := strings.Cut(name, "=")
			f, ok := iptablesByName[name]
			if !ok {
				return nil, fmt.Errorf("unknown flag: --%s", name)
			}
			switch {
			case hasValue:
			case f.kind == flagBool:
				value = "true"
			case len(args) > 0:
				value, args = args[0], args[1:]
			default:
				return nil, fmt.Errorf("flag needs an argument: %s", s)
			}
			if err := record(f, value, "--"+name); err != nil {
				return nil, err
			}
			continue
		}
		shorts := s[1:]
		for len(shorts) > 0 {
			c := shorts[0]
			f, ok := iptablesByShort[c]
			if !ok {
				return nil, fmt.Errorf("unknown shorthand flag: %q in %s", string(c), s)
			}
			var value string
			switch {
			case len(shorts) > 2 && shorts[1] == '=':
				value, shorts = shorts[2:], ""
			case f.kind == flagBool:
				value, shorts = "true", shorts[1:]
			case len(shorts) > 1:
				value, shorts = shorts[1:], ""
			case len(args) > 0:
				value, args, shorts = args[0], args[1:], ""
			default:
				return nil, fmt.Errorf("flag needs an argument: %q in %s", string(c), s)
			}
			if err := record(f, value, "-"+string(c)); err != nil {
				return nil, err
			}
		}
	}
	return inv, nil
}

// checkFlagValue rejects what pflag's value type rejects.
func checkFlagValue(f *iptablesFlag, value string) error {
	var err error
	switch f.kind {
	case flagBool:
		_, err = strconv.ParseBool(value)
	case flagUint16:
		_, err = strconv.ParseUint(value, 0, 16)
	case flagDuration:
		_, err = time.ParseDuration(value)
	}
	if err != nil {
		return errUnwrapNum(err)
	}
	return nil
}

// errUnwrapNum drops strconv's "strconv.ParseBool: parsing ..." prefix.
func errUnwrapNum(err error) error {
	if ne, ok := err.(*strconv.NumError); ok {
		return ne.Err
	}
	return err
}

// iptablesEnv is a container's environment as istio-iptables sees it: a
// literal value, or a reference (valueFrom) whose value the request does not
// show.
type iptablesEnv map[string]envValue

type envValue struct {
	value string
	ref   bool
	// meta: the value comes from the pod's proxy.istio.io/config
	// proxyMetadata, which the injector writes as env of istio-init.
	meta bool
}

// envSource names where an environment variable's value comes from.
func envSource(name string, v envValue) string {
	switch {
	case v.ref:
		return "env " + name + " (from valueFrom)"
	case v.meta:
		return "proxyMetadata " + name + "=" + quote(v.value) + " (annotation proxy.istio.io/config)"
	}
	return "env " + name + "=" + quote(v.value)
}

// setting is a flag's effective value: the command line wins (pflag parses
// after flag.BindEnv applied the environment), then its environment variables
// (the last bound wins; a bool that does not parse is ignored, as BindEnv
// ignores fs.Set's error), then the default.
func (inv *iptablesInvocation) setting(name string, env iptablesEnv) iptablesSetting {
	f := iptablesByName[name]
	spelling := "--" + f.name
	if f.short != "" {
		spelling = "-" + f.short
	}
	if a, ok := inv.given[name]; ok {
		src := "argument " + a.spelling
		if f.kind != flagBool {
			src += " " + quote(a.value)
		} else if a.value != "true" {
			src += "=" + a.value
		}
		return iptablesSetting{value: a.value, source: src, flag: spelling}
	}
	out := iptablesSetting{value: f.def, flag: spelling}
	for _, name := range f.env {
		v, ok := env[name]
		if !ok {
			continue
		}
		if v.ref {
			out = iptablesSetting{source: envSource(name, v), fromEnvRef: true, flag: spelling}
			continue
		}
		if f.kind != flagString && checkFlagValue(f, v.value) != nil {
			continue
		}
		val := v.value
		if f.kind == flagBool {
			b, _ := strconv.ParseBool(val)
			val = strconv.FormatBool(b)
		}
		out = iptablesSetting{value: val, source: envSource(name, v), flag: spelling}
	}
	return out
}

// envOnly is an environment-only istio-iptables setting (constants.go: the
// variables "that deliberately have no equivalent command-line flags", and
// ENVOY_USER, whose UID is the proxy UID when -u is empty).
func (env iptablesEnv) envOnly(name, def string) iptablesSetting {
	v, ok := env[name]
	switch {
	case !ok:
		return iptablesSetting{value: def, flag: name}
	case v.ref:
		return iptablesSetting{source: envSource(name, v), fromEnvRef: true, flag: name}
	}
	return iptablesSetting{value: v.value, source: envSource(name, v), flag: name}
}
