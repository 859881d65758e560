package rules_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/rules"
)

// The real-world corpus (testdata/realworld, testdata/realworld-insecure) is
// audited exactly as `meshguard audit -f FILE` audits it: the context comes
// from the file itself and every object is evaluated with the whole catalog.
// Files named *-live.yaml hold objects read back from a cluster (kubectl get
// -o yaml), so their Pods are seen after sidecar injection, as with
// `meshguard audit --post-injection`; every other file is a manifest, seen
// before injection. See testdata/realworld/README.md.
//
// The corpus shows what Istio and the applications ship, not meshguard's own
// controller, so it is audited as in a cluster where the controller runs:
// every namespace has the managed mesh-default-deny (controllerInstalled).
// MESH0217, the finding for a namespace without it, has its own fixtures.

// controllerInstalled is an extra audit context in which every namespace
// has meshguard's managed mesh-default-deny.
type controllerInstalled struct{}

func (controllerInstalled) Namespace(string) (rules.Namespace, bool)    { return rules.Namespace{}, false }
func (controllerInstalled) PeerAuthentications(string) []rules.Object   { return nil }
func (controllerInstalled) AuthorizationPolicies(string) []rules.Object { return nil }
func (controllerInstalled) ManagedNetworkPolicies(string) ([]string, bool) {
	return []string{rules.NetpolDefaultDeny}, true
}

// auditCorpusFile audits one corpus file and returns its findings rendered as
// "Severity CODE Kind/ns/name: message", in input order.
func auditCorpusFile(t *testing.T, e *rules.Engine, file string) []audit.Located {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	docs, errs := audit.Parse(file, data)
	if len(errs) > 0 {
		t.Fatalf("%s does not parse: %v", file, errs[0])
	}
	rep := audit.Run(context.Background(), e, docs, audit.Options{PostInjection: isLive(file), Context: controllerInstalled{}})
	for _, ie := range rep.Errors {
		t.Errorf("%s: %v", file, ie)
	}
	if rep.Evaluated == 0 {
		t.Errorf("%s: no object was evaluated", file)
	}
	return rep.Findings
}

// isLive tells a file of objects read back from a cluster from a manifest.
func isLive(file string) bool { return strings.HasSuffix(filepath.Base(file), "-live.yaml") }

func findingLine(f audit.Located) string {
	return fmt.Sprintf("%s %s %s: %s", f.Severity, f.Code, f.Object, f.Message)
}

func corpusFiles(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("testdata/%s: no corpus files", dir)
	}
	return files
}

// TestRealWorldCorpus: what Istio itself produces (injected Pods in every
// injection mode, kube-inject output, gateways, waypoints, the control plane)
// and what its docs and typical Helm charts recommend must not produce any
// finding at Medium or above.
func TestRealWorldCorpus(t *testing.T) {
	_, e := newEngine(t)
	for _, file := range corpusFiles(t, "realworld") {
		t.Run(filepath.Base(file), func(t *testing.T) {
			var bad, low []string
			for _, f := range auditCorpusFile(t, e, file) {
				if f.Severity >= rules.SeverityMedium {
					bad = append(bad, findingLine(f))
				} else {
					low = append(low, findingLine(f))
				}
			}
			if len(bad) > 0 {
				t.Errorf("%s must produce no finding at Medium or above (post-injection %v), got:\n%s", file, isLive(file), strings.Join(bad, "\n"))
			}
			for _, l := range low {
				t.Logf("below Medium: %s", l)
			}
		})
	}
}

// TestRealWorldInsecure: realistic bad variants must produce exactly the
// findings their "# want: Severity CODE Kind/namespace/name" header lines list
// (every severity counts; order does not).
func TestRealWorldInsecure(t *testing.T) {
	_, e := newEngine(t)
	for _, file := range corpusFiles(t, "realworld-insecure") {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, line := range strings.Split(string(data), "\n") {
				if w, ok := strings.CutPrefix(line, "# want: "); ok {
					want = append(want, strings.Join(strings.Fields(w), " "))
				}
			}
			if len(want) == 0 {
				t.Fatalf("%s: no \"# want:\" lines", file)
			}
			var got, full []string
			for _, f := range auditCorpusFile(t, e, file) {
				got = append(got, fmt.Sprintf("%s %s %s", f.Severity, f.Code, f.Object))
				full = append(full, findingLine(f))
			}
			sort.Strings(want)
			sort.Strings(got)
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("%s: findings differ\n--- want\n%s\n--- got\n%s\n--- got (with messages)\n%s", file,
					strings.Join(want, "\n"), strings.Join(got, "\n"), strings.Join(full, "\n"))
			}
		})
	}
}
