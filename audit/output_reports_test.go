package audit

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/xeipuuv/gojsonschema"
	"sigs.k8s.io/yaml"

	"github.com/meshguard/meshguard/rules"
)

func TestJSONValidatesAgainstTheSchema(t *testing.T) {
	schema, err := os.ReadFile("auditreport.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	rep, _ := testReport(t)
	// A cluster audit's summary, with every optional part present.
	rep.Cluster = &ClusterSummary{
		Listed:      []KindListing{{Group: "apps", Version: "v1", Kind: "Deployment", Resource: "deployments", Objects: 3, Pages: 1}, {Group: "admissionregistration.k8s.io", Version: "v1", Kind: "MutatingWebhookConfiguration", Resource: "mutatingwebhookconfigurations", ContextOnly: true}},
		Unavailable: []UnavailableKind{{Group: "networking.istio.io", Kind: "Sidecar", Reason: "not served"}},
		Namespaces: []NamespaceSummary{{Name: "shop", MeshMode: "sidecar", MTLS: rules.MTLSResolution{Mode: "STRICT", Source: "istio-system/default", Level: "mesh"},
			Objects: 2, Findings: 1, BySeverity: map[string]int{"Critical": 1},
			NetworkPolicies: &rules.NetpolState{Profile: "sidecar", Why: "labelled", Status: "partial", Expected: []string{"a", "b"}, Present: []string{"a"}, Missing: []string{"b"}, Extra: []string{}}}},
		ViaOwner: map[string]int{"ReplicaSet": 2},
	}
	var buf bytes.Buffer
	if err := WriteJSON(&buf, rep, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	validate := func(doc []byte) []string {
		res, err := gojsonschema.Validate(gojsonschema.NewBytesLoader(schema), gojsonschema.NewBytesLoader(doc))
		if err != nil {
			t.Fatalf("validate: %v", err)
		}
		var errs []string
		for _, e := range res.Errors() {
			errs = append(errs, e.String())
		}
		return errs
	}
	if errs := validate(buf.Bytes()); len(errs) > 0 {
		t.Fatalf("the JSON report does not validate against auditreport.schema.json:\n%s\n%s", strings.Join(errs, "\n"), buf.String())
	}
	var doc map[string]any
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc["apiVersion"] != JSONReportAPIVersion || doc["kind"] != JSONReportKind {
		t.Errorf("apiVersion %v, kind %v", doc["apiVersion"], doc["kind"])
	}
	// The schema can fail: a field it does not describe is rejected.
	doc["summary"].(map[string]any)["surprise"] = 1
	b, _ := json.Marshal(doc)
	if errs := validate(b); len(errs) == 0 {
		t.Error("the schema accepted an undocumented field; it describes nothing")
	}
}

func TestReportObjects(t *testing.T) {
	rep, _ := testReport(t)
	now := time.Unix(1700000000, 123)
	var buf bytes.Buffer
	if err := Write(&buf, FormatOpenReports, rep, WriteOptions{Now: now}); err != nil {
		t.Fatal(err)
	}
	var docs []map[string]any
	for _, d := range strings.Split(buf.String(), "---\n")[1:] {
		var m map[string]any
		if err := yaml.Unmarshal([]byte(d), &m); err != nil {
			t.Fatalf("document %q: %v", d, err)
		}
		docs = append(docs, m)
	}
	if len(docs) < 2 || docs[0]["kind"] != "ClusterReport" {
		t.Fatalf("want the ClusterReport first, then a Report per namespace; got %d documents:\n%s", len(docs), buf.String())
	}
	fails := 0
	for _, d := range docs[1:] {
		if d["kind"] != "Report" || d["apiVersion"] != "openreports.io/v1alpha1" {
			t.Errorf("document %v/%v is not an openreports.io/v1alpha1 Report", d["apiVersion"], d["kind"])
		}
		fails += int(d["summary"].(map[string]any)["fail"].(float64))
	}
	if fails != len(rep.Findings) {
		t.Errorf("the reports' summaries count %d failures for %d findings", fails, len(rep.Findings))
	}
	if !strings.Contains(buf.String(), "seconds: 1700000000") || !strings.Contains(buf.String(), "rule: MESH0150") {
		t.Errorf("results lack the timestamp or the code:\n%s", buf.String())
	}
	// The same input writes the same bytes.
	var again bytes.Buffer
	if err := Write(&again, FormatOpenReports, rep, WriteOptions{Now: now}); err != nil {
		t.Fatal(err)
	}
	if again.String() != buf.String() {
		t.Error("two writes of the same report differ")
	}
	buf.Reset()
	if err := Write(&buf, FormatWGPolicy, rep, WriteOptions{Now: now}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "kind: ClusterPolicyReport") || !strings.Contains(buf.String(), "apiVersion: wgpolicyk8s.io/v1alpha2") {
		t.Errorf("wgpolicyk8s output:\n%s", buf.String())
	}
	if got := len(ReportObjects(rep, WriteOptions{Now: now})); got != len(docs) {
		t.Errorf("ReportObjects built %d reports, the stream has %d", got, len(docs))
	}
}
