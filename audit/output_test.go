package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"reflect"
	"strings"
	"testing"

	"github.com/owenrumney/go-sarif/v3/pkg/report/v210/sarif"

	"github.com/meshguard/meshguard/rules"
)

// brokenStdin is a stream with one good Pod and one document that is not YAML.
const brokenStdin = `apiVersion: v1
kind: Pod
metadata:
  name: debug
  namespace: shop
spec:
  containers:
  - name: sh
    image: busybox
    securityContext: {capabilities: {add: [NET_ADMIN]}}
---
apiVersion: v1
kind: Service
metadata:
  name: broken: yes
`

// testReport audits testdata/manifests plus brokenStdin as stdin, as the CLI does.
func testReport(t *testing.T) (*Report, *rules.Catalog) {
	t.Helper()
	cat, err := rules.DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	ev, err := rules.New(cat, nil)
	if err != nil {
		t.Fatal(err)
	}
	in, err := Read([]string{"testdata/manifests", "-"}, strings.NewReader(brokenStdin))
	if err != nil {
		t.Fatal(err)
	}
	rep := Run(context.Background(), ev, in.Documents, Options{})
	rep.Errors = append(in.Errors, rep.Errors...)
	if len(rep.Errors) != 1 || rep.Errors[0].File != "-" || rep.Errors[0].Index != 2 || rep.Errors[0].Line != 15 {
		t.Fatalf("want one error in stdin document 2, line 15; got %+v", rep.Errors)
	}
	if !hasFinding(rep, "MESH0150", "Deployment/shop/cart") || !hasFinding(rep, "MESH0150", "Pod/shop/debug") {
		t.Fatalf("want MESH0150 on Deployment/shop/cart and Pod/shop/debug; got %+v", rep.Findings)
	}
	return rep, cat
}

func hasFinding(rep *Report, code, object string) bool {
	for _, f := range rep.Findings {
		if f.Code == code && f.Object.String() == object {
			return true
		}
	}
	return false
}

func TestSARIFValidatesAgainstTheSchema(t *testing.T) {
	rep, cat := testReport(t)
	var buf bytes.Buffer
	if err := WriteSARIF(&buf, rep, WriteOptions{Catalog: cat, ToolVersion: "v1.2.3", BaseDir: "testdata"}); err != nil {
		t.Fatal(err)
	}
	log, err := sarif.FromBytes(buf.Bytes(), sarif.WithStrictValidation())
	if err != nil {
		t.Fatalf("parse SARIF: %v", err)
	}
	if err := log.Validate(); err != nil {
		t.Fatalf("SARIF does not validate against the 2.1.0 schema: %v\n%s", err, buf.String())
	}

	if log.Version != "2.1.0" || len(log.Runs) != 1 {
		t.Fatalf("want one run of SARIF 2.1.0, got version %s with %d runs", log.Version, len(log.Runs))
	}
	run := log.Runs[0]
	d := run.Tool.Driver
	if *d.Name != "meshguard" || *d.InformationURI != InformationURI || *d.Version != "v1.2.3" {
		t.Errorf("driver: name %q, informationUri %q, version %q", *d.Name, *d.InformationURI, *d.Version)
	}
	if len(d.Rules) != len(cat.Rules()) {
		t.Errorf("driver lists %d rules, the catalog has %d", len(d.Rules), len(cat.Rules()))
	}
	r150, _ := cat.Rule("MESH0150")
	for _, rd := range d.Rules {
		if *rd.ID != "MESH0150" {
			continue
		}
		if *rd.Name != r150.Name || *rd.ShortDescription.Text != r150.Title || *rd.FullDescription.Text != r150.Why ||
			*rd.Help.Text != r150.Remediation || rd.DefaultConfiguration.Level != "error" ||
			rd.Properties.Properties["security-severity"] != "9.5" || len(rd.Properties.Tags) == 0 {
			t.Errorf("MESH0150 descriptor does not describe the rule: %+v", rd)
		}
	}
	if len(run.Results) != len(rep.Findings) {
		t.Fatalf("got %d results for %d findings", len(run.Results), len(rep.Findings))
	}
	uris := map[string]bool{}
	for _, res := range run.Results {
		if *d.Rules[res.RuleIndex].ID != *res.RuleID {
			t.Errorf("result %s points at rule index %d (%s)", *res.RuleID, res.RuleIndex, *d.Rules[res.RuleIndex].ID)
		}
		if !strings.Contains(*res.Message.Text, ". Fix: ") {
			t.Errorf("message %q lacks the fix", *res.Message.Text)
		}
		loc := res.Locations[0].PhysicalLocation
		uris[*loc.ArtifactLocation.URI] = true
		if loc.Region == nil || loc.Region.StartLine == nil || *loc.Region.StartLine < 1 {
			t.Errorf("result %s has no start line", *res.RuleID)
		}
	}
	for _, want := range []string{"manifests/apps/cart.yaml", "stdin"} {
		if !uris[want] {
			t.Errorf("no result located in %q (relative to BaseDir, forward slashes); got %v", want, uris)
		}
	}
	inv := run.Invocations[0]
	if inv.ExecutionSuccessful == nil || *inv.ExecutionSuccessful {
		t.Errorf("an input error must make the invocation unsuccessful")
	}
	if len(inv.ToolExecutionNotifications) != 1 || *inv.ToolExecutionNotifications[0].Locations[0].PhysicalLocation.Region.StartLine != 15 {
		t.Errorf("want one notification at line 15, got %+v", inv.ToolExecutionNotifications)
	}

	// The check can fail: a level SARIF does not define is rejected.
	run.Results[0].Level = "fatal"
	if err := log.Validate(); err == nil {
		t.Error("the validator accepted an invalid level; the schema test proves nothing")
	}
}

func TestSARIFURIs(t *testing.T) {
	for _, tc := range []struct{ file, base, want string }{
		{"-", "/repo", "stdin"},
		{"/repo/deploy/app.yaml", "/repo", "deploy/app.yaml"},
		{"/elsewhere/app.yaml", "/repo", "file:///elsewhere/app.yaml"},
		{"/repo/my dir/a.yaml", "/repo", "my%20dir/a.yaml"},
	} {
		if got := artifactURI(tc.file, tc.base); got != tc.want {
			t.Errorf("artifactURI(%q, %q) = %q, want %q", tc.file, tc.base, got, tc.want)
		}
	}
}

// junitDoc is read independently of the writer's types.
type junitDoc struct {
	XMLName  xml.Name `xml:"testsuites"`
	Tests    int      `xml:"tests,attr"`
	Failures int      `xml:"failures,attr"`
	Errors   int      `xml:"errors,attr"`
	Suites   []struct {
		Name     string `xml:"name,attr"`
		Tests    int    `xml:"tests,attr"`
		Failures int    `xml:"failures,attr"`
		Errors   int    `xml:"errors,attr"`
		Cases    []struct {
			Name    string `xml:"name,attr"`
			Failure *struct {
				Message string `xml:"message,attr"`
				Type    string `xml:"type,attr"`
				Text    string `xml:",chardata"`
			} `xml:"failure"`
			Error *struct {
				Message string `xml:"message,attr"`
			} `xml:"error"`
			SystemOut string `xml:"system-out"`
		} `xml:"testcase"`
		SystemOut string `xml:"system-out"`
	} `xml:"testsuite"`
}

func TestJUnit(t *testing.T) {
	rep, _ := testReport(t)
	var buf bytes.Buffer
	if err := WriteJUnit(&buf, rep, WriteOptions{FailOn: rules.SeverityHigh}); err != nil {
		t.Fatal(err)
	}
	var doc junitDoc
	if err := xml.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatalf("JUnit is not XML: %v\n%s", err, buf.String())
	}
	// Evaluated: cart Deployment, web Deployment, web Service, shop Namespace,
	// debug Pod; the ServiceAccount is skipped; stdin document 2 is an error.
	if doc.Tests != 6 || doc.Failures != 2 || doc.Errors != 1 {
		t.Errorf("testsuites: tests=%d failures=%d errors=%d, want 6, 2, 1\n%s", doc.Tests, doc.Failures, doc.Errors, buf.String())
	}
	suites := map[string]int{}
	for i, s := range doc.Suites {
		suites[s.Name] = i
		if s.Tests != len(s.Cases) {
			t.Errorf("suite %s: tests=%d but %d testcases", s.Name, s.Tests, len(s.Cases))
		}
	}
	cart := doc.Suites[suites["testdata/manifests/apps/cart.yaml"]]
	if len(cart.Cases) != 1 || cart.Cases[0].Failure == nil || cart.Cases[0].Failure.Type != "Critical" || !strings.Contains(cart.Cases[0].Failure.Text, "MESH0150") {
		t.Errorf("cart.yaml: want one failing testcase for MESH0150, got %+v", cart.Cases)
	}
	if !strings.Contains(cart.SystemOut, "ServiceAccount/shop/cart") {
		t.Errorf("cart.yaml: the skipped ServiceAccount is not mentioned: %q", cart.SystemOut)
	}
	stdin := doc.Suites[suites["stdin"]]
	if stdin.Tests != 2 || stdin.Failures != 1 || stdin.Errors != 1 || stdin.Cases[1].Error == nil || stdin.Cases[1].Name != "document 2" {
		t.Errorf("stdin: want the Pod failing and document 2 as an error, got %+v", stdin)
	}

	t.Run("findings below --fail-on go to system-out, not failures", func(t *testing.T) {
		buf.Reset()
		if err := WriteJUnit(&buf, rep, WriteOptions{FailOn: rules.SeverityCritical + 0}); err != nil {
			t.Fatal(err)
		}
		var doc junitDoc
		if err := xml.Unmarshal(buf.Bytes(), &doc); err != nil {
			t.Fatal(err)
		}
		if doc.Failures != 2 {
			t.Errorf("Critical findings still fail at --fail-on Critical: got %d failures", doc.Failures)
		}
	})
}

func TestJSONRoundTrips(t *testing.T) {
	rep, _ := testReport(t)
	var buf bytes.Buffer
	if err := WriteJSON(&buf, rep, WriteOptions{FailOn: rules.SeverityMedium}); err != nil {
		t.Fatal(err)
	}
	var got JSONReport
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := NewJSONReport(rep, WriteOptions{FailOn: rules.SeverityMedium})
	if !reflect.DeepEqual(got, want) {
		t.Errorf("JSON does not round-trip:\ngot  %+v\nwant %+v", got, want)
	}
	if got.Summary.Objects != 6 || got.Summary.Evaluated != 5 || got.Summary.Skipped != 1 || got.Summary.SkippedKinds["v1/ServiceAccount"] != 1 || got.Summary.ExitCode != ExitError {
		t.Errorf("summary: %+v", got.Summary)
	}
	f := got.Findings[0]
	if f.Code == "" || f.Why == "" || f.Remediation == "" || f.File == "" || f.Line == 0 || f.Object.Kind == "" {
		t.Errorf("a finding lacks a field: %+v", f)
	}

	t.Run("no findings and no errors are empty arrays, not null", func(t *testing.T) {
		buf.Reset()
		if err := WriteJSON(&buf, &Report{}, WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(buf.String(), `"findings": []`) || !strings.Contains(buf.String(), `"errors": []`) {
			t.Errorf("got %s", buf.String())
		}
	})
}

func TestText(t *testing.T) {
	rep, _ := testReport(t)
	var buf bytes.Buffer
	if err := WriteText(&buf, rep, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"testdata/manifests/apps/cart.yaml:1: Deployment/shop/cart\n  Critical  MESH0150 priv-net-admin: container \"app\" adds capability \"NET_ADMIN\"\n            why: Containers share",
		"stdin:1: Pod/shop/debug\n",
		"stdin: document 2 (line 15): yaml: mapping values are not allowed",
		"6 objects read: 5 evaluated, 1 skipped (no rule covers 1 v1/ServiceAccount)",
		"ERROR: 1 document could not be audited",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text output lacks %q:\n%s", want, out)
		}
	}
}

func TestParseFormat(t *testing.T) {
	for _, f := range Formats() {
		if got, err := ParseFormat(strings.ToUpper(string(f))); err != nil || got != f {
			t.Errorf("ParseFormat(%q) = %q, %v", f, got, err)
		}
	}
	if _, err := ParseFormat("xml"); err == nil {
		t.Error("ParseFormat(xml) succeeded")
	}
}
