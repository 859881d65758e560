package audit

import (
	"bytes"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/reports"
)

// TestWriteStatusCutEdges: the text status lists, per namespace, the edges
// the managed NetworkPolicies cut, from the report's compliance view.
func TestWriteStatusCutEdges(t *testing.T) {
	st := &PostureStatus{Format: string(reports.FormatOpenReports), Namespaces: []NamespaceStatus{
		{Name: "bookinfo", Compliance: &reports.Compliance{MeshMode: "sidecar", NetworkPolicies: reports.NetpolCompliance{
			Profile: "sidecar", Status: "complete", CutEdges: []string{"Deployment/bookinfo/a -> Deployment/bookinfo/b:9080"}}}},
		{Name: "quiet", Compliance: &reports.Compliance{MeshMode: "sidecar"}},
	}}
	var b bytes.Buffer
	if err := WriteStatus(&b, st, "text"); err != nil {
		t.Fatal(err)
	}
	want := "bookinfo: default deny cuts 1 edges the mesh allows (SOURCE -> DESTINATION:PORT):\n  Deployment/bookinfo/a -> Deployment/bookinfo/b:9080\n"
	if !strings.Contains(b.String(), want) || strings.Contains(b.String(), "quiet: default deny") {
		t.Errorf("status text:\n%s\nwant it to contain\n%s", b.String(), want)
	}
}
