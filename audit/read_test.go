package audit

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	type doc struct {
		kind  string
		index int
		line  int
	}
	type errLoc struct {
		index int
		line  int
		text  string
	}
	cases := []struct {
		name  string
		input string
		docs  []doc
		errs  []errLoc
	}{
		{
			name: "a multi-document YAML stream keeps each document's index and first line",
			input: `apiVersion: v1
kind: Namespace
metadata: {name: a}
---
# a comment before the object
apiVersion: v1
kind: Service
metadata: {name: b}
--- # trailing comment on the separator
apiVersion: v1
kind: ConfigMap
metadata: {name: c}
`,
			docs: []doc{{"Namespace", 1, 1}, {"Service", 2, 6}, {"ConfigMap", 3, 10}},
		},
		{
			name: "a leading separator and a trailing separator add no documents",
			input: `---
apiVersion: v1
kind: Pod
metadata: {name: p}
---
`,
			docs: []doc{{"Pod", 1, 2}},
		},
		{
			name:  "a JSON document is read like YAML",
			input: `{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}}`,
			docs:  []doc{{"Service", 1, 1}},
		},
		{
			name: "a List is expanded into its items, each with its own line",
			input: `apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: one}
- apiVersion: apps/v1
  kind: Deployment
  metadata: {name: two}
`,
			docs: []doc{{"Pod", 1, 4}, {"Deployment", 1, 7}},
		},
		{
			name: "a List item that is not an object is rejected with its line",
			input: `apiVersion: v1
kind: PodList
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: one}
- just a string
`,
			docs: []doc{{"Pod", 1, 4}},
			errs: []errLoc{{1, 7, "items[1]: expected a Kubernetes object, got a string"}},
		},
		{
			name: "comment-only and empty documents are ignored",
			input: `# only a comment
---

---
# another comment
# and more
---
apiVersion: v1
kind: Pod
metadata: {name: p}
`,
			docs: []doc{{"Pod", 4, 8}},
		},
		{
			name: "a scalar document is rejected with its location",
			input: `apiVersion: v1
kind: Pod
metadata: {name: p}
---
# a stray value
hello
`,
			docs: []doc{{"Pod", 1, 1}},
			errs: []errLoc{{2, 6, "expected a Kubernetes object, got a string"}},
		},
		{
			name: "a list document is rejected with its location",
			input: `- apiVersion: v1
  kind: Pod
`,
			errs: []errLoc{{1, 1, "expected a Kubernetes object, got a list"}},
		},
		{
			name: "broken YAML is reported with the line of the error and the other documents are kept",
			input: `apiVersion: v1
kind: Pod
metadata: {name: p}
---
apiVersion: v1
kind: Service
metadata:
  name: s
  labels: a: b
---
apiVersion: v1
kind: ConfigMap
metadata: {name: c}
`,
			docs: []doc{{"Pod", 1, 1}, {"ConfigMap", 3, 11}},
			errs: []errLoc{{2, 9, "mapping values are not allowed"}},
		},
		{
			name:  "an object without kind is rejected",
			input: "apiVersion: v1\nmetadata: {name: x}\n",
			errs:  []errLoc{{1, 1, "kind is required"}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			docs, errs := Parse("in.yaml", []byte(tc.input))
			if len(docs) != len(tc.docs) {
				t.Fatalf("got %d documents, want %d: %+v", len(docs), len(tc.docs), docs)
			}
			for i, want := range tc.docs {
				got := docs[i]
				if got.Object["kind"] != want.kind || got.Index != want.index || got.Line != want.line || got.File != "in.yaml" {
					t.Errorf("document %d: got %v index %d line %d, want %s index %d line %d", i, got.Object["kind"], got.Index, got.Line, want.kind, want.index, want.line)
				}
			}
			if len(errs) != len(tc.errs) {
				t.Fatalf("got %d errors, want %d: %v", len(errs), len(tc.errs), errs)
			}
			for i, want := range tc.errs {
				got := errs[i]
				if got.Index != want.index || got.Line != want.line || !strings.Contains(got.Err, want.text) || got.File != "in.yaml" {
					t.Errorf("error %d: got %q (index %d, line %d), want %q at index %d, line %d", i, got.Err, got.Index, got.Line, want.text, want.index, want.line)
				}
			}
		})
	}
}

func TestReadWalksDirectoriesAndStdin(t *testing.T) {
	stdin := strings.NewReader("apiVersion: v1\nkind: Pod\nmetadata: {name: from-stdin}\n")
	in, err := Read([]string{"testdata/manifests", "-"}, stdin)
	if err != nil {
		t.Fatal(err)
	}
	docs := in.Documents
	if len(in.Errors) != 0 || len(in.Ignored) != 0 {
		t.Fatalf("unexpected errors: %v, ignored: %v", in.Errors, in.Ignored)
	}
	var got []string
	for _, d := range docs {
		got = append(got, d.File+":"+d.Object["kind"].(string))
	}
	want := []string{
		"testdata/manifests/apps/cart.yaml:Deployment",
		"testdata/manifests/apps/cart.yaml:ServiceAccount",
		"testdata/manifests/apps/web.json:Deployment",
		"testdata/manifests/apps/web.json:Service",
		"testdata/manifests/namespace.yaml:Namespace",
		"-:Pod",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("documents in order:\n%s\nwant (lexical file order, README.txt ignored, stdin last):\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestReadErrors(t *testing.T) {
	t.Run("a path that does not exist names the flag and the path", func(t *testing.T) {
		_, err := Read([]string{"testdata/nope.yaml"}, nil)
		if err == nil || !strings.Contains(err.Error(), "-f testdata/nope.yaml") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("stdin can be read only once", func(t *testing.T) {
		_, err := Read([]string{"-", "-"}, strings.NewReader(""))
		if err == nil || !strings.Contains(err.Error(), "stdin") {
			t.Fatalf("got %v", err)
		}
	})
}

func TestReadIgnoresWhatIsNotKubernetesInWalkedDirectories(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("chart/Chart.yaml", "apiVersion: v2\nname: shop\nversion: 1.0.0\n")
	write("chart/values.yaml", "replicaCount: 2\n")
	write(".github/workflows/ci.yaml", "on: push\njobs: {}\n")
	write("k8s/pod.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n")
	write("k8s/broken.yaml", "kind: Pod\nmetadata: {name: q}\n")
	// An Ansible playbook: a YAML file whose top level is a list.
	write("ansible/site.yml", "- hosts: all\n  tasks:\n  - name: ping\n    ping: {}\n")

	in, err := Read([]string{dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(in.Documents) != 1 || in.Documents[0].Object["kind"] != "Pod" {
		t.Fatalf("want the one Pod, got %+v", in.Documents)
	}
	if len(in.Ignored) != 3 {
		t.Fatalf("want Chart.yaml, values.yaml and the playbook ignored (and .github skipped), got %+v", in.Ignored)
	}
	if len(in.Errors) != 1 || !strings.Contains(in.Errors[0].Error(), "apiVersion is required") {
		t.Fatalf("an object with a kind but no apiVersion is still an error, got %+v", in.Errors)
	}

	t.Run("a file named explicitly is an error, not ignored", func(t *testing.T) {
		in, err := Read([]string{filepath.Join(dir, "chart", "values.yaml")}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(in.Errors) != 1 || len(in.Ignored) != 0 {
			t.Fatalf("want one error, got errors %+v ignored %+v", in.Errors, in.Ignored)
		}
		in, err = Read([]string{filepath.Join(dir, "ansible", "site.yml")}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(in.Errors) != 1 || len(in.Ignored) != 0 || !strings.Contains(in.Errors[0].Error(), "expected a Kubernetes object, got a list") {
			t.Fatalf("want one error for the playbook, got errors %+v ignored %+v", in.Errors, in.Ignored)
		}
	})
}
