package app

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/owenrumney/go-sarif/v3/pkg/report/v210/sarif"
)

// TestAuditExampleAsSARIF runs `meshguard audit -f examples/bookinfo/insecure
// -o sarif` and validates the document against the SARIF 2.1.0 schema, as a
// code-scanning upload would.
func TestAuditExampleAsSARIF(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(root)
	var out, errb bytes.Buffer
	code := Main(context.Background(), []string{"audit", "-f", "examples/bookinfo/insecure", "-o", "sarif"}, Streams{Out: &out, Err: &errb})
	if code != ExitFindings {
		t.Fatalf("exit %d, want %d: %s", code, ExitFindings, errb.String())
	}
	log, err := sarif.FromBytes(out.Bytes(), sarif.WithStrictValidation())
	if err != nil {
		t.Fatalf("parse SARIF: %v", err)
	}
	if err := log.Validate(); err != nil {
		t.Fatalf("SARIF does not validate against the 2.1.0 schema: %v", err)
	}
	if len(log.Runs) != 1 || len(log.Runs[0].Results) == 0 {
		t.Fatalf("want one run with results")
	}
	for _, r := range log.Runs[0].Results {
		loc := r.Locations[0].PhysicalLocation
		if loc.ArtifactLocation.URI == nil || loc.Region == nil || loc.Region.StartLine == nil || *loc.Region.StartLine < 1 {
			t.Fatalf("every result must point at a file and line: %+v", loc)
		}
	}
}
