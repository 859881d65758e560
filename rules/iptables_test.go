package rules

import (
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"
)

func TestParseIptablesArgs(t *testing.T) {
	type want = map[string]string // flag name -> value
	for _, tc := range []struct {
		name       string
		args       []string
		want       want
		positional []string
		err        string
	}{
		{
			name: "the injector's default arguments set each flag once",
			args: []string{"-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT", "-i", "*", "-x", "", "-b", "*", "-d", "15090,15021,15020", "--log_output_level=default:info"},
			want: want{"envoy-port": "15001", "inbound-capture-port": "15006", "proxy-uid": "1337", "istio-inbound-interception-mode": "REDIRECT",
				"istio-service-cidr": "*", "istio-service-exclude-cidr": "", "istio-inbound-ports": "*", "istio-local-exclude-ports": "15090,15021,15020",
				"log_output_level": "default:info"},
		},
		{name: "a long flag with = takes what follows the =", args: []string{"--istio-service-cidr=10.0.0.0/8"}, want: want{"istio-service-cidr": "10.0.0.0/8"}},
		{name: "a long flag with = and nothing after it is empty", args: []string{"--istio-service-cidr="}, want: want{"istio-service-cidr": ""}},
		{name: "a long flag takes the next argument", args: []string{"--istio-service-cidr", "10.0.0.0/8"}, want: want{"istio-service-cidr": "10.0.0.0/8"}},
		{name: "a shorthand takes the next argument", args: []string{"-i", "10.0.0.0/8"}, want: want{"istio-service-cidr": "10.0.0.0/8"}},
		{name: "a shorthand takes the rest of its word", args: []string{"-i10.0.0.0/8"}, want: want{"istio-service-cidr": "10.0.0.0/8"}},
		{name: "a shorthand with = takes what follows the =", args: []string{"-i=10.0.0.0/8"}, want: want{"istio-service-cidr": "10.0.0.0/8"}},
		{name: "pflag reads -i= as the value =", args: []string{"-i="}, want: want{"istio-service-cidr": "="}},
		{name: "an empty next argument is an empty value", args: []string{"-i", ""}, want: want{"istio-service-cidr": ""}},
		{name: "the last of a repeated flag wins", args: []string{"-i", "*", "--istio-service-cidr", "10.0.0.0/8", "-i", ""}, want: want{"istio-service-cidr": ""}},
		{name: "a value may start with a dash", args: []string{"-x", "-i", "*"}, want: want{"istio-service-exclude-cidr": "-i"}, positional: []string{"*"}},
		{name: "a bool shorthand combines with the next shorthand", args: []string{"-ni", ""}, want: want{"dry-run": "true", "istio-service-cidr": ""}},
		{name: "a bool shorthand with =false is false", args: []string{"-n=false"}, want: want{"dry-run": "false"}},
		{name: "a bool flag does not take the next argument", args: []string{"--skip-rule-apply", "false"}, want: want{"skip-rule-apply": "true"}, positional: []string{"false"}},
		{name: "a bool flag with =0 is false", args: []string{"--skip-rule-apply=0"}, want: want{"skip-rule-apply": "false"}},
		{name: "cobra's help flag is a bool", args: []string{"-h"}, want: want{"help": "true"}},
		{name: "-- ends the flags", args: []string{"-i", "*", "--", "-i", ""}, want: want{"istio-service-cidr": "*"}, positional: []string{"-i", ""}},
		{name: "a lone dash and words are positional", args: []string{"-", "extra", "-b", "*"}, want: want{"istio-inbound-ports": "*"}, positional: []string{"-", "extra"}},
		{name: "Istio 1.22's --iptables-trace-logging and -f are known", args: []string{"--iptables-trace-logging", "-f"}, want: want{"iptables-trace-logging": "true", "restore-format": "true"}},
		{name: "the persistent logging flags are known", args: []string{"--log_as_json", "--log_target", "stdout", "--log_caller=default"}, want: want{"log_as_json": "true", "log_target": "stdout", "log_caller": "default"}},
		{name: "an unknown long flag is an error", args: []string{"--istio-everything=off"}, err: "unknown flag: --istio-everything"},
		{name: "an unknown shorthand is an error", args: []string{"-y", "1"}, err: `unknown shorthand flag: "y" in -y`},
		{name: "a flag without its value is an error", args: []string{"-b", "*", "-i"}, err: `flag needs an argument: "i" in -i`},
		{name: "a long flag without its value is an error", args: []string{"--istio-service-cidr"}, err: "flag needs an argument: --istio-service-cidr"},
		{name: "a bool that does not parse is an error", args: []string{"--dry-run=maybe"}, err: `invalid argument "maybe" for "--dry-run" flag`},
		{name: "a probe port beyond uint16 is an error", args: []string{"--iptables-probe-port=70000"}, err: `invalid argument "70000"`},
		{name: "three dashes are bad syntax", args: []string{"---i"}, err: "bad flag syntax: ---i"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inv, err := parseIptablesArgs(tc.args)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("want error containing %q, got %v", tc.err, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := want{}
			for k, a := range inv.given {
				got[k] = a.value
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("flags:\n got %v\nwant %v", got, tc.want)
			}
			if len(inv.positional) != len(tc.positional) || len(tc.positional) > 0 && !reflect.DeepEqual(inv.positional, tc.positional) {
				t.Errorf("positional: got %q, want %q", inv.positional, tc.positional)
			}
		})
	}
}

func TestIptablesSettingPrecedence(t *testing.T) {
	inv, err := parseIptablesArgs([]string{"-i", "*"})
	if err != nil {
		t.Fatal(err)
	}
	env := iptablesEnv{"ISTIO_SERVICE_CIDR": {value: ""}, "DRY_RUN": {value: "yes"}, "SKIP_RULE_APPLY": {value: "1"},
		"REDIRECT_DNS": {value: "false"}, "ISTIO_META_DNS_CAPTURE": {value: "true"}, "NETWORK_NAMESPACE": {ref: true}}
	for _, tc := range []struct{ name, flag, value, source string }{
		{"the command line beats the environment", "istio-service-cidr", "*", `argument -i "*"`},
		{"a bool env value that does not parse is ignored", "dry-run", "", ""},
		{"a bool env value is read as pflag reads it", "skip-rule-apply", "true", `env SKIP_RULE_APPLY="1"`},
		{"the additional env name wins over the bound one", "redirect-dns", "true", `env ISTIO_META_DNS_CAPTURE="true"`},
		{"a valueFrom cannot be read", "network-namespace", "", "env NETWORK_NAMESPACE (from valueFrom)"},
		{"an unset flag has its default", "envoy-port", "15001", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := inv.setting(tc.flag, env)
			if st.value != tc.value || st.source != tc.source {
				t.Errorf("got value %q source %q, want %q %q", st.value, st.source, tc.value, tc.source)
			}
		})
	}
}

// injectedInit is istio-init as the injector writes it (REDIRECT, no CNI),
// with the given args (a YAML flow list) and extra fields.
func injectedInit(args, extra string) string {
	return `[{name: istio-init, image: ` + proxyImage + `, args: ` + args + `, securityContext: ` + initSC + extra + `}]`
}

const appAndProxy = `[{name: app, image: registry.example.com/app:1}, {name: istio-proxy, image: ` + proxyImage + `, args: [proxy, sidecar], securityContext: ` + proxySC + `}]`

// initArgTexts renders $facts.capture.initArgs as "kind: text".
func initArgTexts(facts map[string]any) []string {
	var out []string
	for _, raw := range facts["capture"].(map[string]any)["initArgs"].([]any) {
		m := raw.(map[string]any)
		out = append(out, m["kind"].(string)+": "+m["text"].(string))
	}
	return out
}

// The exact args Istio's injection template writes (injection-template.yaml)
// for the default install, for each capture annotation, for TPROXY and with
// istio-cni: judged against the same annotations they must add nothing.
func TestInjectedInitArgsAreClean(t *testing.T) {
	const logLevel = `"--log_output_level=default:info"`
	for _, tc := range []struct {
		name, annotations, init string
		nsAnnotations           map[string]string
	}{
		{name: "the default REDIRECT args", annotations: `{}`,
			init: injectedInit(`[istio-iptables, "-p", "15001", "-z", "15006", "-u", "1337", "-m", REDIRECT, "-i", "*", "-x", "", "-b", "*", "-d", "15090,15021,15020", `+logLevel+`]`, "")},
		{name: "TPROXY: -m TPROXY and -u 1337", annotations: `{sidecar.istio.io/interceptionMode: TPROXY}`,
			init: injectedInit(`[istio-iptables, "-p", "15001", "-z", "15006", "-u", "1337", "-m", TPROXY, "-i", "*", "-x", "", "-b", "*", "-d", "15090,15021,15020", `+logLevel+`]`, "")},
		{name: "TPROXY from proxy.istio.io/config", annotations: `{proxy.istio.io/config: "interceptionMode: TPROXY"}`,
			init: injectedInit(`[istio-iptables, "-p", "15001", "-z", "15006", "-u", "1337", "-m", TPROXY, "-i", "*", "-x", "", "-b", "*", "-d", "15090,15021,15020"]`, "")},
		{name: "includeOutboundIPRanges becomes -i", annotations: `{traffic.sidecar.istio.io/includeOutboundIPRanges: "10.96.0.0/12,10.244.0.0/16"}`,
			init: injectedInit(`[istio-iptables, "-p", "15001", "-z", "15006", "-u", "1337", "-m", REDIRECT, "-i", "10.96.0.0/12,10.244.0.0/16", "-x", "", "-b", "*", "-d", "15090,15021,15020"]`, "")},
		{name: "an empty includeOutboundIPRanges becomes -i \"\"", annotations: `{traffic.sidecar.istio.io/includeOutboundIPRanges: ""}`,
			init: injectedInit(`[istio-iptables, "-p", "15001", "-z", "15006", "-u", "1337", "-m", REDIRECT, "-i", "", "-x", "", "-b", "*", "-d", "15090,15021,15020"]`, "")},
		{name: "excludeOutboundIPRanges becomes -x", annotations: `{traffic.sidecar.istio.io/excludeOutboundIPRanges: "169.254.169.254/32"}`,
			init: injectedInit(`[istio-iptables, "-p", "15001", "-z", "15006", "-u", "1337", "-m", REDIRECT, "-i", "*", "-x", "169.254.169.254/32", "-b", "*", "-d", "15090,15021,15020"]`, "")},
		{name: "includeInboundPorts becomes -b", annotations: `{traffic.sidecar.istio.io/includeInboundPorts: "8080,8443"}`,
			init: injectedInit(`[istio-iptables, "-p", "15001", "-z", "15006", "-u", "1337", "-m", REDIRECT, "-i", "*", "-x", "", "-b", "8080,8443", "-d", "15090,15021,15020"]`, "")},
		{name: "excludeInboundPorts joins -d before the status port", annotations: `{traffic.sidecar.istio.io/excludeInboundPorts: "9090"}`,
			init: injectedInit(`[istio-iptables, "-p", "15001", "-z", "15006", "-u", "1337", "-m", REDIRECT, "-i", "*", "-x", "", "-b", "*", "-d", "15090,15021,9090,15020"]`, "")},
		{name: "a custom status port is excluded by -d", annotations: `{status.sidecar.istio.io/port: "15030"}`,
			init: injectedInit(`[istio-iptables, "-p", "15001", "-z", "15006", "-u", "1337", "-m", REDIRECT, "-i", "*", "-x", "", "-b", "*", "-d", "15090,15021,15030"]`, "")},
		{name: "excludeOutboundPorts becomes -o", annotations: `{traffic.sidecar.istio.io/excludeOutboundPorts: "5432"}`,
			init: injectedInit(`[istio-iptables, "-p", "15001", "-z", "15006", "-u", "1337", "-m", REDIRECT, "-i", "*", "-x", "", "-b", "*", "-d", "15090,15021,15020", "-o", "5432"]`, "")},
		{name: "includeOutboundPorts becomes -q", annotations: `{traffic.sidecar.istio.io/includeOutboundPorts: "3306"}`,
			init: injectedInit(`[istio-iptables, "-p", "15001", "-z", "15006", "-u", "1337", "-m", REDIRECT, "-i", "*", "-x", "", "-b", "*", "-d", "15090,15021,15020", "-q", "3306"]`, "")},
		{name: "reroute-virtual-interfaces becomes -k", annotations: `{istio.io/reroute-virtual-interfaces: "k6t-eth0"}`,
			init: injectedInit(`[istio-iptables, "-p", "15001", "-z", "15006", "-u", "1337", "-m", REDIRECT, "-i", "*", "-x", "", "-b", "*", "-d", "15090,15021,15020", "-k", "k6t-eth0"]`, "")},
		{name: "kubevirtInterfaces becomes -k", annotations: `{traffic.sidecar.istio.io/kubevirtInterfaces: "k6t-eth0"}`,
			init: injectedInit(`[istio-iptables, "-p", "15001", "-z", "15006", "-u", "1337", "-m", REDIRECT, "-i", "*", "-x", "", "-b", "*", "-d", "15090,15021,15020", "-k", "k6t-eth0"]`, "")},
		{name: "excludeInterfaces becomes -c", annotations: `{traffic.sidecar.istio.io/excludeInterfaces: "net1"}`,
			init: injectedInit(`[istio-iptables, "-p", "15001", "-z", "15006", "-u", "1337", "-m", REDIRECT, "-i", "*", "-x", "", "-b", "*", "-d", "15090,15021,15020", "-c", "net1"]`, "")},
		{name: "the forceApplyIptables and nativeNftables installs add their flags", annotations: `{}`,
			init: injectedInit(`[istio-iptables, "-p", "15001", "-z", "15006", "-u", "1337", "-m", REDIRECT, "-i", "*", "-x", "", "-b", "*", "-d", "15090,15021,15020", `+logLevel+`, "--log_as_json", "--force-apply", "--native-nftables"]`, "")},
		{name: "proxyMetadata becomes env (DNS capture)", annotations: `{proxy.istio.io/config: '{"proxyMetadata": {"ISTIO_META_DNS_CAPTURE": "true"}}'}`,
			init: injectedInit(`[istio-iptables, "-p", "15001", "-z", "15006", "-u", "1337", "-m", REDIRECT, "-i", "*", "-x", "", "-b", "*", "-d", "15090,15021,15020"]`, `, env: [{name: ISTIO_META_DNS_CAPTURE, value: "true"}]`)},
		{name: "OpenShift: -u is the top of the namespace's UID range", annotations: `{}`,
			nsAnnotations: map[string]string{annSCCUIDRange: "1000680000/10000"},
			init:          injectedInit(`[istio-iptables, "-p", "15001", "-z", "15006", "-u", "1000689999", "-m", REDIRECT, "-i", "*", "-x", "", "-b", "*", "-d", "15090,15021,15020"]`, "")},
		{name: "istio-cni: istio-validation validates without applying rules", annotations: `{}`,
			init: `[{name: istio-validation, image: ` + proxyImage + `, args: [istio-iptables, "-p", "15001", "-z", "15006", "-u", "1337", "-m", REDIRECT, "-i", "*", "-x", "", "-b", "*", "-d", "15090,15021,15020", ` + logLevel + `, "--run-validation", "--skip-rule-apply"], securityContext: ` + proxySC + `}]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, post := range []bool{true, false} {
				var cfg *Config
				if tc.nsAnnotations != nil {
					cfg = NewConfig()
					cfg.Platform = PlatformOpenShift
				}
				facts := podFacts(t, cfg, pod(tc.annotations, tc.init, appAndProxy), tc.nsAnnotations, post)
				if got := initArgTexts(facts); len(got) > 0 {
					t.Errorf("post-injection %v: the injected args must add no finding, got %q", post, got)
				}
				if !facts["hasCaptureInit"].(bool) {
					t.Errorf("post-injection %v: the init container must count as capture", post)
				}
			}
		})
	}
}

func TestInitArgsBypasses(t *testing.T) {
	const base = `istio-iptables, "-p", "15001", "-z", "15006", "-u", "1337", "-m", REDIRECT`
	for _, tc := range []struct {
		name, annotations, init string
		post                    bool
		want                    []string
	}{
		{name: "-i \"\" captures no outbound traffic",
			init: injectedInit(`[`+base+`, "-i", "", "-x", "", "-b", "*", "-d", "15090,15021,15020"]`, ""),
			want: []string{`outboundOff: istio-init argument -i "" captures no outbound traffic`}},
		{name: "-i written as --istio-service-cidr= counts the same",
			init: injectedInit(`[`+base+`, "-i", "*", "-b", "*", "--istio-service-cidr="]`, ""),
			want: []string{`outboundOff: istio-init argument --istio-service-cidr "" captures no outbound traffic`}},
		{name: "a missing -i defaults to no outbound capture",
			init: injectedInit(`[`+base+`, "-b", "*"]`, ""),
			want: []string{`outboundOff: istio-init without -i (default "") captures no outbound traffic`}},
		{name: "-i narrower than the annotation is reported",
			annotations: `{traffic.sidecar.istio.io/includeOutboundIPRanges: "10.0.0.0/8"}`,
			init:        injectedInit(`[`+base+`, "-i", "10.0.0.0/16", "-b", "*"]`, ""),
			want:        []string{`outboundNarrowed: istio-init argument -i "10.0.0.0/16" limits outbound capture to "10.0.0.0/16"`}},
		{name: "-b \"\" captures no inbound traffic",
			init: injectedInit(`[`+base+`, "-i", "*", "-b", ""]`, ""),
			want: []string{`inboundOff: istio-init argument -b "" captures no inbound traffic`}},
		{name: "-b as a shorthand word narrows inbound capture",
			init: injectedInit(`[`+base+`, "-i", "*", "-b8080"]`, ""),
			want: []string{`inboundNarrowed: istio-init argument -b "8080" limits inbound capture to "8080"`}},
		{name: "-d beyond the always-excluded ports excludes them",
			annotations: `{traffic.sidecar.istio.io/excludeInboundPorts: "9090"}`,
			init:        injectedInit(`[`+base+`, "-i", "*", "-b", "*", "-d", "15090,15021,9090,15020,8080,5432"]`, ""),
			want:        []string{`inboundExcluded: istio-init argument -d "15090,15021,9090,15020,8080,5432" excludes ports "8080", "5432" from inbound capture`}},
		{name: "-e moves the HBONE tunnel port, which is returned uncaptured",
			init: injectedInit(`[`+base+`, "-i", "*", "-b", "*", "-e", "8080"]`, ""),
			want: []string{`inboundExcluded: istio-init argument -e "8080" excludes port "8080" from inbound capture (as the HBONE tunnel port)`}},
		{name: "-x 0.0.0.0/0 excludes every destination",
			init: injectedInit(`[`+base+`, "-i", "*", "-x", "0.0.0.0/0", "-b", "*"]`, ""),
			want: []string{`outboundRanges: istio-init argument -x "0.0.0.0/0" excludes "0.0.0.0/0" from outbound capture`}},
		{name: "-o excludes outbound ports",
			init: injectedInit(`[`+base+`, "-i", "*", "-b", "*", "-o", "5432,6379"]`, ""),
			want: []string{`outboundPorts: istio-init argument -o "5432,6379" excludes ports "5432", "6379" from outbound capture`}},
		{name: "-c excludes an interface",
			init: injectedInit(`[`+base+`, "-i", "*", "-b", "*", "-c", "net1"]`, ""),
			want: []string{`interfaces: istio-init argument -c "net1" excludes interface "net1" from capture`}},
		{name: "-k reroutes an interface",
			init: injectedInit(`[`+base+`, "-i", "*", "-b", "*", "-k", "eth1"]`, ""),
			want: []string{`rerouted: istio-init argument -k "eth1" reroutes interface "eth1" outside the normal capture`}},
		{name: "--skip-rule-apply on istio-init applies nothing",
			init: injectedInit(`[`+base+`, "-i", "*", "-b", "*", "-d", "15090,15021,15020", "--run-validation", "--skip-rule-apply"]`, ""),
			want: []string{`noRules: istio-init argument --skip-rule-apply applies no iptables rules`}},
		{name: "-n combined with -i applies nothing",
			init: injectedInit(`[`+base+`, "-b", "*", "-ni*"]`, ""),
			want: []string{`noRules: istio-init argument -n applies no iptables rules (dry run)`}},
		{name: "--help prints the usage and applies nothing",
			init: injectedInit(`[`+base+`, "-i", "*", "-b", "*", "--help"]`, ""),
			want: []string{`noRules: istio-init argument --help prints the usage and applies no iptables rules`}},
		{name: "--cleanup-only removes the rules",
			init: injectedInit(`[`+base+`, "-i", "*", "-b", "*", "--cleanup-only"]`, ""),
			want: []string{`noRules: istio-init argument --cleanup-only removes Istio's iptables rules instead of applying them`}},
		{name: "env DRY_RUN applies nothing",
			init: injectedInit(`[`+base+`, "-i", "*", "-b", "*"]`, `, env: [{name: DRY_RUN, value: "true"}]`),
			want: []string{`noRules: istio-init env DRY_RUN="true" applies no iptables rules (dry run)`}},
		{name: "a template's proxyMetadata becomes env of the injected istio-init",
			annotations: `{proxy.istio.io/config: '{"proxyMetadata": {"SKIP_RULE_APPLY": "true"}}'}`,
			init:        `[]`,
			want:        []string{`noRules: istio-init proxyMetadata SKIP_RULE_APPLY="true" (annotation proxy.istio.io/config) applies no iptables rules`}},
		{name: "-p redirects outbound traffic away from Envoy",
			init: injectedInit(`[`+base+`, "-i", "*", "-b", "*", "-p", "8080"]`, ""),
			want: []string{`redirectPort: istio-init argument -p "8080" redirects outbound traffic to port "8080", not to the proxy's 15001`}},
		{name: "an istio-init without args after injection runs no istio-iptables", post: true,
			init: `[{name: istio-init, image: ` + proxyImage + `, securityContext: ` + initSC + `}]`,
			want: []string{`noRules: istio-init has no arguments, so pilot-agent runs no istio-iptables and applies no iptables rules`}},
		{name: "-m NONE is not what the injector writes",
			init: injectedInit(`[`+base+`, "-m", "NONE", "-i", "*", "-b", "*"]`, ""),
			want: []string{`shape: istio-init argument -m "NONE" sets interception mode "NONE", not the pod's "REDIRECT"`}},
		{name: "-u of an application UID exempts it",
			init: injectedInit(`[`+base+`, "-u", "1337,1000", "-i", "*", "-b", "*"]`, ""),
			want: []string{`shape: istio-init argument -u "1337,1000" exempts UID 1000 from outbound capture; the injector exempts only the proxy UID 1337`}},
		{name: "a capture env from valueFrom cannot be judged",
			init: injectedInit(`[`+base+`, "-i", "*", "-b", "*"]`, `, env: [{name: ISTIO_LOCAL_OUTBOUND_PORTS_EXCLUDE, valueFrom: {configMapKeyRef: {name: c, key: k}}}]`),
			want: []string{`shape: istio-init env ISTIO_LOCAL_OUTBOUND_PORTS_EXCLUDE (from valueFrom) sets a capture setting whose value the request does not show`}},
		{name: "an unknown flag is not istio-iptables'",
			init: injectedInit(`[`+base+`, "-i", "*", "-b", "*", "--no-capture"]`, ""),
			want: []string{`shape: istio-init arguments are not what istio-iptables accepts (unknown flag: --no-capture)`}},
		{name: "owner-group env narrows outbound capture",
			init: injectedInit(`[`+base+`, "-i", "*", "-b", "*"]`, `, env: [{name: ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE, value: "2000"}]`),
			want: []string{`shape: istio-init env ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE="2000" exempts those groups from outbound capture`}},
		{name: "istio-validation without --run-validation does not validate",
			init: `[{name: istio-validation, image: ` + proxyImage + `, args: [istio-iptables, "--skip-rule-apply"], securityContext: ` + proxySC + `}]`,
			want: []string{`shape: istio-validation does not pass --run-validation, so the pod starts even when istio-cni did not set up its capture`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			facts := podFacts(t, nil, pod(orEmpty(tc.annotations), tc.init, appAndProxy), nil, tc.post)
			if got := initArgTexts(facts); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("initArgs:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func orEmpty(s string) string {
	if s == "" {
		return "{}"
	}
	return s
}

func TestInitExemptIDsNameTheContainer(t *testing.T) {
	init := injectedInit(`[istio-iptables, "-p", "15001", "-z", "15006", "-u", "1000", "-m", REDIRECT, "-i", "*", "-b", "*"]`, "")
	containers := `[{name: app, image: registry.example.com/app:1, securityContext: {runAsUser: 1000, runAsGroup: 1000}}, {name: istio-proxy, image: ` + proxyImage + `, args: [proxy, sidecar], securityContext: ` + proxySC + `}]`
	facts := podFacts(t, nil, pod(`{}`, init, containers), nil, true)
	app := container(t, facts, "app")
	if want := `container "app" runs as UID 1000, which istio-init argument -u "1000" exempts from capture`; app["initUIDText"] != want {
		t.Errorf("initUIDText: got %q, want %q", app["initUIDText"], want)
	}
	if want := `container "app" runs with GID 1000, which istio-init argument -u "1000" exempts from capture`; app["initGIDText"] != want {
		t.Errorf("initGIDText: got %q, want %q", app["initGIDText"], want)
	}
}

func TestInitArgsBadInput(t *testing.T) {
	for _, tc := range []struct{ name, init, err string }{
		{"an argument that is not a string is an error naming it", `[{name: istio-init, image: ` + proxyImage + `, args: [istio-iptables, "-i", 0]}]`, "spec.initContainers[0].args[2]: expected string, got number"},
		{"env that is not a list is an error naming it", `[{name: istio-init, image: ` + proxyImage + `, args: [istio-iptables], env: {DRY_RUN: "true"}}]`, "spec.initContainers[0].env: expected array"},
		{"an env value that is not a string is an error naming it", `[{name: istio-init, image: ` + proxyImage + `, args: [istio-iptables], env: [{name: DRY_RUN, value: true}]}]`, "spec.initContainers[0].env[0].value: expected string"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc, err := NewConfig().compile()
			if err != nil {
				t.Fatal(err)
			}
			e := &engine{cfg: cc, ctx: emptyContext{}}
			var obj map[string]any
			if err := yaml.Unmarshal([]byte(pod(`{}`, tc.init, appAndProxy)), &obj); err != nil {
				t.Fatal(err)
			}
			info, _ := LookupKind(schema.GroupKind{Kind: "Pod"})
			_, err = e.workloadFacts(obj, info, &Request{Object: obj}, Namespace{Name: "shop"}, true)
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("want an error containing %q, got %v", tc.err, err)
			}
		})
	}
}

func TestInjectTemplates(t *testing.T) {
	for _, tc := range []struct {
		name, raw string
		sidecar   bool
		proxyOnly []any
		proxyless []any
		unknown   []any
	}{
		{"the sidecar template captures", "sidecar", true, []any{}, []any{}, []any{}},
		{"names are trimmed and split on commas", " sidecar , spire ", true, []any{}, []any{}, []any{"spire"}},
		{"the gateway template is proxy-only", "gateway", false, []any{"gateway"}, []any{}, []any{}},
		{"the gRPC templates are proxyless", "grpc-agent,grpc-simple", false, []any{}, []any{"grpc-agent", "grpc-simple"}, []any{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			it := injectTemplates(map[string]string{annInjectTemplates: tc.raw})
			got := it.Map()
			if got["sidecar"] != tc.sidecar || !reflect.DeepEqual(got["proxyOnly"], tc.proxyOnly) ||
				!reflect.DeepEqual(got["proxyless"], tc.proxyless) || !reflect.DeepEqual(got["unknown"], tc.unknown) {
				t.Errorf("got %v", got)
			}
		})
	}
}
