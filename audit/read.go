package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/meshguard/meshguard/rules"
)

// Document is one Kubernetes object read from an input, with its position.
type Document struct {
	// File is the path the object was read from ("-" for stdin).
	File string `json:"file"`
	// Index is the 1-based position of the YAML document in the file.
	Index int `json:"index"`
	// Line is the 1-based line where the object starts.
	Line int `json:"line"`
	// Object is the decoded object.
	Object rules.Object `json:"-"`
}

// InputError is a document that could not be read or evaluated.
type InputError struct {
	// File is the path ("-" for stdin).
	File string `json:"file"`
	// Index is the 1-based YAML document in the file; 0 when the whole file failed.
	Index int `json:"index,omitempty"`
	// Line is the 1-based line of the error, or of the document; 0 when unknown.
	Line int `json:"line,omitempty"`
	// Object is the object ("Kind/namespace/name") when it was read but could
	// not be evaluated; empty for parse errors.
	Object string `json:"object,omitempty"`
	// Err says what is wrong.
	Err string `json:"error"`

	notObject bool // the document has no kind: not a Kubernetes object
}

// Error renders "file: document 2 (line 14): message".
func (e InputError) Error() string { return e.Location() + ": " + e.Err }

// Location renders "file: document 2 (line 14)" and the object, if known.
func (e InputError) Location() string {
	loc := e.File
	if loc == "-" {
		loc = "stdin"
	}
	if e.Index > 0 {
		loc += fmt.Sprintf(": document %d", e.Index)
	}
	if e.Line > 0 {
		loc += fmt.Sprintf(" (line %d)", e.Line)
	}
	if e.Object != "" {
		loc += ": " + e.Object
	}
	return loc
}

// manifestExts are the file extensions read when walking a directory.
var manifestExts = map[string]bool{".yaml": true, ".yml": true, ".json": true}

// Input is what Read found.
type Input struct {
	// Documents are the objects read, in input order.
	Documents []Document
	// Errors are documents that could not be read or parsed.
	Errors []InputError
	// Ignored are documents found while walking a directory that are not
	// Kubernetes objects (no kind: Helm's Chart.yaml and values.yaml, tool
	// configuration). They are reported, not audited. In a file named
	// explicitly or on stdin the same document is an error.
	Ignored []InputError
}

// Read reads every path: a file, a directory (walked recursively for .yaml,
// .yml and .json files in lexical order, skipping hidden files and
// directories such as .git and .github) or "-" for stdin. A path that does not
// exist is an error; a document that cannot be parsed is returned as an
// InputError and the others are still returned.
func Read(paths []string, stdin io.Reader) (*Input, error) {
	in := &Input{}
	stdinUsed := false
	for _, p := range paths {
		if p == "-" {
			if stdinUsed {
				return nil, fmt.Errorf("-f -: stdin can be read only once")
			}
			stdinUsed = true
			data, err := io.ReadAll(stdin)
			if err != nil {
				return nil, fmt.Errorf("read stdin: %w", err)
			}
			d, e := Parse("-", data)
			in.Documents, in.Errors = append(in.Documents, d...), append(in.Errors, e...)
			continue
		}
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("-f %s: %w", p, err)
		}
		var files []string
		walked := st.IsDir()
		if walked {
			err := filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				if path != p && strings.HasPrefix(d.Name(), ".") {
					if d.IsDir() {
						return filepath.SkipDir
					}
					return nil
				}
				if !d.IsDir() && manifestExts[strings.ToLower(filepath.Ext(path))] {
					files = append(files, path)
				}
				return nil
			})
			if err != nil {
				return nil, fmt.Errorf("-f %s: %w", p, err)
			}
			sort.Strings(files)
		} else {
			files = []string{p}
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				in.Errors = append(in.Errors, InputError{File: f, Err: err.Error()})
				continue
			}
			d, errs := Parse(f, data)
			in.Documents = append(in.Documents, d...)
			for _, e := range errs {
				if walked && e.notObject {
					in.Ignored = append(in.Ignored, e)
				} else {
					in.Errors = append(in.Errors, e)
				}
			}
		}
	}
	return in, nil
}

var yamlLineRE = regexp.MustCompile(`line (\d+)`)

type chunk struct {
	index, line int
	data        []byte
}

// splitDocuments splits a YAML stream on "---" separator lines, keeping the
// 1-based line of each document's first line.
func splitDocuments(data []byte) []chunk {
	var out []chunk
	var cur bytes.Buffer
	start, lineNo, index := 1, 0, 1
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 64*1024*1024)
	flush := func() {
		out = append(out, chunk{index: index, line: start, data: append([]byte(nil), cur.Bytes()...)})
		cur.Reset()
		index++
	}
	for sc.Scan() {
		lineNo++
		line := sc.Text()
		if strings.HasPrefix(line, "---") && strings.TrimSpace(strings.TrimPrefix(line, "---")) == "" || strings.HasPrefix(line, "--- #") {
			if lineNo > 1 || cur.Len() > 0 {
				flush()
			}
			start = lineNo + 1
			continue
		}
		if strings.TrimSpace(line) == "..." {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
	}
	flush()
	return out
}

// Parse decodes a multi-document YAML or JSON stream. List kinds are expanded
// into their items. Empty documents are ignored; everything else is either a
// Document or an InputError.
func Parse(file string, data []byte) ([]Document, []InputError) {
	var docs []Document
	var errs []InputError
	for _, c := range splitDocuments(data) {
		if isBlank(c.data) {
			continue
		}
		js, err := sigsyaml.YAMLToJSON(c.data)
		if err != nil {
			errs = append(errs, InputError{File: file, Index: c.index, Line: errLine(err, c.line), Err: cleanYAMLError(err)})
			continue
		}
		var v any
		line := firstContentLine(c)
		if err := json.Unmarshal(js, &v); err != nil {
			errs = append(errs, InputError{File: file, Index: c.index, Line: line, Err: err.Error()})
			continue
		}
		if v == nil {
			continue
		}
		obj, ok := v.(map[string]any)
		if !ok {
			// A top-level list or scalar (an Ansible playbook, a values
			// list) is not a Kubernetes object: ignored in a directory
			// walk, like other YAML without a kind.
			errs = append(errs, InputError{File: file, Index: c.index, Line: line, Err: fmt.Sprintf("expected a Kubernetes object, got a %s", kindOfJSON(v)), notObject: true})
			continue
		}
		kind, _ := obj["kind"].(string)
		if items, isList := obj["items"].([]any); isList && strings.HasSuffix(kind, "List") {
			lines := itemLines(c)
			for i, it := range items {
				l := line
				if i < len(lines) {
					l = lines[i]
				}
				im, ok := it.(map[string]any)
				if !ok {
					errs = append(errs, InputError{File: file, Index: c.index, Line: l, Err: fmt.Sprintf("items[%d]: expected a Kubernetes object, got a %s", i, kindOfJSON(it))})
					continue
				}
				if err := checkObject(im); err != nil {
					errs = append(errs, InputError{File: file, Index: c.index, Line: l, Err: fmt.Sprintf("items[%d]: %v", i, err)})
					continue
				}
				docs = append(docs, Document{File: file, Index: c.index, Line: l, Object: im})
			}
			continue
		}
		if err := checkObject(obj); err != nil {
			_, hasKind := obj["kind"].(string)
			errs = append(errs, InputError{File: file, Index: c.index, Line: line, Err: err.Error(), notObject: !hasKind})
			continue
		}
		docs = append(docs, Document{File: file, Index: c.index, Line: line, Object: obj})
	}
	return docs, errs
}

func checkObject(obj map[string]any) error {
	av, _ := obj["apiVersion"].(string)
	k, _ := obj["kind"].(string)
	switch {
	case av == "" && k == "":
		return fmt.Errorf("apiVersion and kind are required")
	case av == "":
		return fmt.Errorf("apiVersion is required")
	case k == "":
		return fmt.Errorf("kind is required")
	}
	if m, ok := obj["metadata"]; ok && m != nil {
		if _, ok := m.(map[string]any); !ok {
			return fmt.Errorf("metadata: expected object, got %s", kindOfJSON(m))
		}
	}
	return nil
}

func isBlank(b []byte) bool {
	for _, l := range strings.Split(string(b), "\n") {
		t := strings.TrimSpace(l)
		if t != "" && !strings.HasPrefix(t, "#") {
			return false
		}
	}
	return true
}

// firstContentLine is the line of a chunk's first non-blank, non-comment line.
func firstContentLine(c chunk) int {
	for i, l := range strings.Split(string(c.data), "\n") {
		t := strings.TrimSpace(l)
		if t != "" && !strings.HasPrefix(t, "#") {
			return c.line + i
		}
	}
	return c.line
}

// itemLines returns the start line of each element of a List's items.
func itemLines(c chunk) []int {
	var n yaml.Node
	if err := yaml.Unmarshal(c.data, &n); err != nil || len(n.Content) == 0 {
		return nil
	}
	root := n.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "items" && root.Content[i+1].Kind == yaml.SequenceNode {
			var out []int
			for _, it := range root.Content[i+1].Content {
				out = append(out, c.line+it.Line-1)
			}
			return out
		}
	}
	return nil
}

func errLine(err error, base int) int {
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		if n, e := strconv.Atoi(m[1]); e == nil {
			return base + n - 1
		}
	}
	return base
}

func cleanYAMLError(err error) string {
	s := err.Error()
	s = strings.TrimPrefix(s, "error converting YAML to JSON: ")
	s = yamlLineRE.ReplaceAllString(s, "")
	s = strings.ReplaceAll(s, "yaml: :", "yaml:")
	return strings.TrimSpace(strings.ReplaceAll(s, "  ", " "))
}

func kindOfJSON(v any) string {
	switch v.(type) {
	case []any:
		return "list"
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "boolean"
	}
	return fmt.Sprintf("%T", v)
}
