package rules

import (
	"strings"
	"testing"
)

func TestIstioInitArguments(t *testing.T) {
	initWith := func(args string) string {
		return `[{name: istio-init, image: "` + proxyImage + `", args: ` + args + `, securityContext: ` + initSC + `}]`
	}
	const app = "[{name: app, image: nginx, securityContext: {runAsUser: 1000}}]"
	base := `"istio-iptables", "-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT"`
	for _, tc := range []struct {
		name, annotations, args string
		post                    bool
		problem                 string // "" means exempt
	}{
		{name: "the injector's default arguments are the injected shape", annotations: "{}",
			args: `[` + base + `, "-i", "*", "-x", "", "-b", "*", "-d", "15090,15021,15020", "--log_output_level=default:info"]`},
		{name: "arguments that follow the capture annotations are the injected shape (the annotation rules judge those)",
			annotations: `{traffic.sidecar.istio.io/includeOutboundIPRanges: "10.0.0.0/8", traffic.sidecar.istio.io/excludeOutboundIPRanges: "169.254.169.254/32", traffic.sidecar.istio.io/excludeInboundPorts: "9000", traffic.sidecar.istio.io/excludeOutboundPorts: "5432"}`,
			args:        `[` + base + `, "-i", "10.0.0.0/8", "-x", "169.254.169.254/32", "-b", "*", "-d", "15090,15021,15020,9000", "-o", "5432"]`},
		{name: "TPROXY with the long flag and an equals sign is the injected shape", annotations: "{sidecar.istio.io/interceptionMode: TPROXY}",
			args: `["istio-iptables", "--envoy-port=15001", "--inbound-capture-port=15006", "--proxy-uid=1337", "--istio-inbound-interception-mode=TPROXY", "--istio-service-cidr=*", "--istio-inbound-ports=*"]`},
		{name: "-i '' captures no outbound traffic", annotations: "{}",
			args: `[` + base + `, "-i", "", "-b", "*"]`, problem: `argument -i "" captures no outbound traffic`},
		{name: "an attached shorthand value is read like pflag reads it", annotations: "{}",
			args: `[` + base + `, "-i10.1.0.0/16", "-b", "*"]`, problem: `argument -i "10.1.0.0/16" limits outbound capture`},
		{name: "-b '' captures no inbound traffic", annotations: "{}",
			args: `[` + base + `, "-i", "*", "-b", ""]`, problem: `argument -b "" captures no inbound traffic`},
		{name: "-x 0.0.0.0/0 excludes everything from outbound capture", annotations: "{}",
			args: `[` + base + `, "-i", "*", "-x", "0.0.0.0/0"]`, problem: `argument -x excludes "0.0.0.0/0" from outbound capture beyond the annotations`},
		{name: "-u set to the application's UID exempts it and names the container", annotations: "{}",
			args: `["istio-iptables", "-p", "15001", "-z", "15006", "-u", "1000", "-m", "REDIRECT"]`,
			problem: `argument -u "1000" exempts UID 1000 from capture instead of the proxy's 1337 (container "app" runs as it)`},
		{name: "-m NONE redirects nothing", annotations: "{}",
			args: `["istio-iptables", "-p", "15001", "-z", "15006", "-u", "1337", "-m", "NONE"]`, problem: `argument -m "NONE" is not REDIRECT or TPROXY`},
		{name: "the last of repeated flags wins, as in pflag", annotations: "{}",
			args: `[` + base + `, "-i", "*", "-i", ""]`, problem: `argument -i "" captures no outbound traffic`},
		{name: "--skip-rule-apply on istio-init applies nothing", annotations: "{}",
			args: `[` + base + `, "--skip-rule-apply"]`, problem: "runs istio-iptables with --skip-rule-apply, which applies no capture rules"},
		{name: "-d and -o beyond the annotations", annotations: "{}",
			args: `[` + base + `, "-d", "15090,15021,15020,22", "-o", "443"]`, problem: `argument -d excludes inbound ports "22" from capture beyond the annotations and argument -o excludes outbound ports "443"`},
		{name: "-p pointing away from Envoy", annotations: "{}",
			args: `["istio-iptables", "-p", "8080", "-z", "15006", "-u", "1337", "-m", "REDIRECT"]`, problem: `argument -p "8080" redirects outbound traffic away from the proxy's port 15001`},
		{name: "an unknown flag is a deviation", annotations: "{}",
			args: `[` + base + `, "--flush-everything"]`, problem: `passes "--flush-everything", which is not an istio-iptables flag the injector writes`},
		{name: "a stray argument is a deviation", annotations: "{}",
			args: `[` + base + `, "-i", "*", "nothing"]`, problem: `passes the stray argument "nothing"`},
		{name: "a flag without its value is a deviation", annotations: "{}",
			args: `[` + base + `, "-x"]`, problem: `passes "-x" without a value`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := container(t, podFacts(t, nil, pod(tc.annotations, initWith(tc.args), app), nil, tc.post), "istio-init")
			text, _ := c["infraText"].(string)
			if tc.problem == "" {
				if c["exempt"] != true {
					t.Fatalf("want the injected shape, got %q", text)
				}
				return
			}
			if c["exempt"] != false || !strings.Contains(text, tc.problem) {
				t.Fatalf("want a deviation containing %q, got exempt=%v %q", tc.problem, c["exempt"], text)
			}
		})
	}
}
