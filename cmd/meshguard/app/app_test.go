package app

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/rules"
)

// run executes meshguard in-process and returns its exit code, stdout and stderr.
func run(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Main(context.Background(), args, Streams{In: strings.NewReader(stdin), Out: &out, Err: &errOut})
	return code, out.String(), errOut.String()
}

func TestAuditExitCodes(t *testing.T) {
	cat, err := rules.DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	hostPort, ok := cat.Rule("MESH0163")
	if !ok {
		t.Fatal("MESH0163 is not in the catalog")
	}
	cases := []struct {
		name string
		args []string
		want int
	}{
		{"a clean manifest exits 0", []string{"-f", "testdata/clean.yaml"}, 0},
		{"a Critical finding fails at the default --fail-on High", []string{"-f", "testdata/net-admin.yaml"}, 1},
		{"a Critical finding fails at --fail-on Critical", []string{"-f", "testdata/net-admin.yaml", "--fail-on", "Critical"}, 1},
		{"a finding fails at its own severity", []string{"-f", "testdata/host-port.yaml", "--fail-on", hostPort.Severity.String()}, 1},
		{"--fail-on is case-insensitive", []string{"-f", "testdata/host-port.yaml", "--fail-on", strings.ToLower(hostPort.Severity.String())}, 1},
		{"a directory is read recursively", []string{"-f", "testdata"}, 1},
		{"input errors win over findings", []string{"-f", "testdata", "-f", "-"}, 2},
	}
	if hostPort.Severity < rules.SeverityCritical {
		cases = append(cases, struct {
			name string
			args []string
			want int
		}{"a finding below --fail-on passes", []string{"-f", "testdata/host-port.yaml", "--fail-on", (hostPort.Severity + 1).String()}, 0})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			stdin := ""
			if tc.want == 2 {
				stdin = "kind: [\n"
			}
			code, out, errOut := run(t, stdin, append([]string{"audit"}, tc.args...)...)
			if code != tc.want {
				t.Errorf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.want, out, errOut)
			}
		})
	}
}

func TestAuditReportsBrokenDocumentsAndAuditsTheRest(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "mixed.yaml")
	data, err := os.ReadFile("testdata/net-admin.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// Document 1 is fine, document 2 is broken on line 6 of the file,
	// document 3 has a finding.
	content := "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {istio-injection: enabled}}\n---\napiVersion: v1\nkind: Service\n  metadata: {name: x}\n---\n" + string(data)
	if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ := run(t, "", "audit", "-f", file)
	if code != 2 {
		t.Errorf("exit code %d, want 2", code)
	}
	for _, want := range []string{
		file + ": document 2 (line 7): yaml:",
		"Deployment/shop/cart",
		"MESH0150",
		"2 objects read: 2 evaluated",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	code, out, errOut := run(t, "", "audit", "-f", file, "-o", "json")
	if code != 2 {
		t.Errorf("json: exit code %d, want 2", code)
	}
	var rep audit.JSONReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("json: %v\n%s", err, out)
	}
	if len(rep.Errors) != 1 || rep.Errors[0].Index != 2 || rep.Errors[0].Line != 7 || rep.Errors[0].File != file {
		t.Errorf("json errors: %+v", rep.Errors)
	}
	// Document 1, a sidecar namespace without meshguard's managed
	// default-deny, is MESH0217 (Medium); document 3 is MESH0150.
	if len(rep.Findings) != 2 || rep.Findings[0].Code != "MESH0217" || rep.Findings[0].Index != 1 || rep.Findings[0].Line != 1 ||
		rep.Findings[1].Code != "MESH0150" || rep.Findings[1].Index != 3 || rep.Findings[1].Line != 9 {
		t.Errorf("json findings: %+v", rep.Findings)
	}
	if !strings.Contains(errOut, "document 2 (line 7)") {
		t.Errorf("the summary on stderr does not name the error: %q", errOut)
	}
}

func TestAuditStdin(t *testing.T) {
	data, err := os.ReadFile("testdata/net-admin.yaml")
	if err != nil {
		t.Fatal(err)
	}
	code, out, _ := run(t, string(data), "audit", "-f", "-", "-n", "payments")
	if code != 1 || !strings.Contains(out, "stdin:1: Deployment/shop/cart") {
		t.Errorf("exit code %d, output:\n%s", code, out)
	}

	t.Run("-n is the namespace of objects without one", func(t *testing.T) {
		noNS := strings.Replace(string(data), "  namespace: shop\n", "", 1)
		code, out, _ := run(t, noNS, "audit", "-f", "-", "-n", "payments")
		if code != 1 || !strings.Contains(out, "Deployment/payments/cart") {
			t.Errorf("exit code %d, output:\n%s", code, out)
		}
	})
}

func TestAuditOutputs(t *testing.T) {
	t.Run("sarif", func(t *testing.T) {
		code, out, _ := run(t, "", "audit", "-f", "testdata", "-o", "sarif")
		var log struct {
			Version string `json:"version"`
			Runs    []struct {
				Results []struct {
					RuleID string `json:"ruleId"`
				} `json:"results"`
			} `json:"runs"`
		}
		if err := json.Unmarshal([]byte(out), &log); err != nil || code != 1 {
			t.Fatalf("exit code %d, %v:\n%s", code, err, out)
		}
		if log.Version != "2.1.0" || len(log.Runs) != 1 || len(log.Runs[0].Results) != 2 {
			t.Errorf("got %+v", log)
		}
	})
	t.Run("junit to --output-file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "report.xml")
		code, out, errOut := run(t, "", "audit", "-f", "testdata", "-o", "junit", "--output-file", path)
		if code != 1 || out != "" {
			t.Errorf("exit code %d, stdout %q", code, out)
		}
		if !strings.Contains(errOut, "objects read") {
			t.Errorf("no summary on stderr: %q", errOut)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Tests    int `xml:"tests,attr"`
			Failures int `xml:"failures,attr"`
		}
		if err := xml.Unmarshal(data, &doc); err != nil {
			t.Fatal(err)
		}
		// clean.yaml: Namespace + NetworkPolicy + Deployment + ConfigMap (a known kind since MESH0300);
		// host-port.yaml and net-admin.yaml: one Deployment each.
		if doc.Tests != 6 || doc.Failures != 1 {
			t.Errorf("tests=%d failures=%d, want 6 and 1 (host-port is below High)", doc.Tests, doc.Failures)
		}
	})
}

func TestAuditUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"-f is required", []string{"audit"}, "-f/--filename: required"},
		{"-f and --cluster are mutually exclusive", []string{"audit", "-f", "x", "--cluster"}, "-f/--filename and --cluster are mutually exclusive"},
		{"--kubeconfig needs --cluster", []string{"audit", "-f", "x", "--kubeconfig", "k"}, "--kubeconfig: only used with --cluster"},
		{"--context needs --cluster", []string{"audit", "-f", "x", "--context", "prod"}, "--context: only used with --cluster"},
		{"--page-size must be positive", []string{"audit", "--cluster", "--page-size", "0"}, "--page-size: must be positive"},
		{"an unreadable kubeconfig names the flag", []string{"audit", "--cluster", "--kubeconfig", "testdata/nope.kubeconfig"}, "--cluster: load the cluster configuration"},
		{"an unknown output format names the flag", []string{"audit", "-f", "x", "-o", "xml"}, `--output" flag`},
		{"an unknown severity names the flag", []string{"audit", "-f", "x", "--fail-on", "Severe"}, `--fail-on" flag`},
		{"an invalid namespace names the flag", []string{"audit", "-f", "x", "-n", "Not_A_Namespace"}, "-n/--namespace"},
		{"a rules.Config error names the flag", []string{"audit", "-f", "x", "--interception-mode", "NONE"}, "--interception-mode"},
		{"a bad registry names the flag", []string{"audit", "-f", "x", "--proxy-image-registry", "UPPER/case"}, "--proxy-image-registry"},
		{"an unknown flag is named", []string{"audit", "-f", "x", "--frobnicate"}, "--frobnicate"},
		{"a positional argument is rejected", []string{"audit", "deploy.yaml"}, `unexpected argument "deploy.yaml"`},
		{"a missing file names the flag", []string{"audit", "-f", "testdata/nope.yaml"}, "-f testdata/nope.yaml"},
		{"an unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := run(t, "", tc.args...)
			if code != 2 {
				t.Errorf("exit code %d, want 2", code)
			}
			if !strings.Contains(errOut, tc.want) {
				t.Errorf("stderr lacks %q: %q (stdout %q)", tc.want, errOut, out)
			}
		})
	}
}

func TestAuditFlagsBindOptions(t *testing.T) {
	var got *AuditOptions
	cmd := NewAuditCommand(Streams{Out: &bytes.Buffer{}, Err: &bytes.Buffer{}}, func(_ context.Context, _ Streams, o *AuditOptions) error {
		got = o
		return nil
	})
	cmd.SetArgs([]string{
		"-f", "a.yaml", "--filename", "dir,with,commas", "-f", "-",
		"-o", "SARIF", "--fail-on", "medium", "-n", "shop", "--post-injection", "--output-file", "out.sarif",
		"--root-namespace", "mesh-root", "--proxy-image-registry", "registry.example.com/istio",
		"--default-namespace-mode", "ambient",
	})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	want := NewAuditOptions()
	want.Filenames = []string{"a.yaml", "dir,with,commas", "-"}
	want.Output = audit.FormatSARIF
	want.FailOn = rules.SeverityMedium
	want.DefaultNamespace = "shop"
	want.PostInjection = true
	want.OutputFile = "out.sarif"
	want.Rules.RootNamespace = "mesh-root"
	want.Rules.ProxyImageRegistries = []string{"registry.example.com/istio"}
	want.Rules.DefaultNamespaceMode = rules.ModeAmbient
	if !reflect.DeepEqual(got, want) {
		t.Errorf("options:\ngot  %+v\nwant %+v\nrules got  %+v\nrules want %+v", got, want, got.Rules, want.Rules)
	}

	t.Run("the defaults", func(t *testing.T) {
		o := NewAuditOptions()
		if o.Output != audit.FormatText || o.FailOn != rules.SeverityHigh || o.DefaultNamespace != "default" || o.PostInjection || o.Rules == nil {
			t.Errorf("defaults: %+v", o)
		}
	})
}

func TestRulesList(t *testing.T) {
	cat, err := rules.DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	t.Run("markdown is the README table, one row per rule, stable across runs", func(t *testing.T) {
		code, out, _ := run(t, "", "rules", "list", "-o", "markdown")
		if code != 0 {
			t.Fatalf("exit code %d", code)
		}
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if lines[0] != "| Code | Rule | Severity | Kinds | Title |" || lines[1] != "|---|---|---|---|---|" {
			t.Errorf("header: %q", lines[:2])
		}
		if len(lines) != 2+len(cat.Rules()) {
			t.Errorf("%d rows for %d rules", len(lines)-2, len(cat.Rules()))
		}
		if !strings.Contains(out, "| MESH0150 | priv-net-admin | Critical | workloads | Container adds NET_ADMIN |\n") {
			t.Errorf("no MESH0150 row:\n%s", out)
		}
		_, again, _ := run(t, "", "rules", "list", "-o", "markdown")
		if again != out {
			t.Error("two runs differ")
		}
	})
	t.Run("json lists every rule with its kinds and versions", func(t *testing.T) {
		code, out, _ := run(t, "", "rules", "list", "-o", "json")
		var docs []ruleDoc
		if err := json.Unmarshal([]byte(out), &docs); err != nil || code != 0 {
			t.Fatalf("exit code %d, %v", code, err)
		}
		if len(docs) != len(cat.Rules()) {
			t.Errorf("%d rules, want %d", len(docs), len(cat.Rules()))
		}
		for _, d := range docs {
			if d.Code == "" || d.Why == "" || d.Remediation == "" || len(d.Kinds) == 0 || len(d.Kinds[0].Versions) == 0 {
				t.Errorf("incomplete rule: %+v", d)
			}
		}
	})
	t.Run("text is a table", func(t *testing.T) {
		code, out, _ := run(t, "", "rules", "list")
		if code != 0 || !strings.HasPrefix(out, "CODE") || !strings.Contains(out, "MESH0150") {
			t.Errorf("exit code %d:\n%s", code, out)
		}
	})
	t.Run("an unknown format names the flag", func(t *testing.T) {
		code, _, errOut := run(t, "", "rules", "list", "-o", "yaml")
		if code != 2 || !strings.Contains(errOut, "-o/--output") {
			t.Errorf("exit code %d: %q", code, errOut)
		}
	})
}

func TestRulesExplain(t *testing.T) {
	code, out, _ := run(t, "", "rules", "explain", "MESH0150")
	if code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if !strings.Contains(strings.Join(strings.Fields(out), " "), "apps/Deployment apps/v1 apps/ReplicaSet apps/v1") {
		t.Errorf("kinds are not listed with their versions:\n%s", out)
	}
	for _, want := range []string{
		"MESH0150 priv-net-admin: Container adds NET_ADMIN",
		"Severity: Critical",
		"apps/Deployment ",
		"batch/CronJob",
		"Why:\n  Containers share the pod's network namespace",
		"Remediation:\n  Remove NET_ADMIN",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("explain lacks %q:\n%s", want, out)
		}
	}
	t.Run("the code is case-insensitive and the slug works", func(t *testing.T) {
		for _, arg := range []string{"mesh0150", "priv-net-admin"} {
			if code, got, _ := run(t, "", "rules", "explain", arg); code != 0 || got != out {
				t.Errorf("explain %s: exit code %d", arg, code)
			}
		}
	})
	t.Run("an unknown code is an error", func(t *testing.T) {
		code, out, errOut := run(t, "", "rules", "explain", "MESH9999")
		if code != 2 || out != "" || !strings.Contains(errOut, `unknown rule "MESH9999"`) {
			t.Errorf("exit code %d, stdout %q, stderr %q", code, out, errOut)
		}
	})
	t.Run("a code is required", func(t *testing.T) {
		code, _, errOut := run(t, "", "rules", "explain")
		if code != 2 || !strings.Contains(errOut, "exactly one rule code") {
			t.Errorf("exit code %d, stderr %q", code, errOut)
		}
	})
}

func TestVersion(t *testing.T) {
	code, out, _ := run(t, "", "version")
	if code != 0 || out != "meshguard dev\n"+runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH+"\n" {
		t.Errorf("exit code %d: %q", code, out)
	}
}
