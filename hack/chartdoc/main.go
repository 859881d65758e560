// Command chartdoc prints the value table of a Helm chart's README from the
// comments in its values.yaml: every key, its default and the comment lines
// directly above it. A mapping is a section (its keys get their own rows)
// when values.schema.json lists its properties, else one value (labels,
// per-rule actions). A key without a comment is an error, so every value
// stays documented.
//
//	go run ./hack/chartdoc charts/meshguard > bin/chart-values.md
//	python3 hack/replace-section.py charts/meshguard/README.md VALUES bin/chart-values.md
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: chartdoc CHART_DIR")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "chartdoc: %v\n", err)
		os.Exit(1)
	}
}

func run(dir string, w io.Writer) error {
	file := filepath.Join(dir, "values.yaml")
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	raw, err := os.ReadFile(filepath.Join(dir, "values.schema.json"))
	if err != nil {
		return err
	}
	var sch schema
	if err := json.Unmarshal(raw, &sch); err != nil {
		return fmt.Errorf("parse values.schema.json: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("parse %s: %w", file, err)
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return fmt.Errorf("%s: the top level is not a mapping", file)
	}
	var rows []row
	if err := walk(doc.Content[0], &sch, "", &rows); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	var b bytes.Buffer
	b.WriteString("| Key | Default | Description |\n|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", r.key, r.def, r.desc)
	}
	_, err = w.Write(b.Bytes())
	return err
}

type row struct{ key, def, desc string }

// schema is the part of a JSON schema that tells sections from values.
type schema struct {
	Properties map[string]*schema `json:"properties"`
}

// walk adds a row per key; a mapping the schema describes by properties is a
// section whose own comment is listed and whose keys follow.
func walk(m *yaml.Node, sch *schema, prefix string, rows *[]row) error {
	var errs []error
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		key := prefix + k.Value
		desc := comment(k.HeadComment)
		if i == 0 && prefix == "" {
			// The file's own header is the first key's head comment; the
			// key's comment is the last paragraph.
			paras := strings.Split(strings.TrimSpace(k.HeadComment), "\n\n")
			desc = comment(paras[len(paras)-1])
		}
		if desc == "" {
			errs = append(errs, fmt.Errorf("line %d: %s has no comment", k.Line, key))
		}
		sub := sch.Properties[k.Value]
		if sub == nil {
			errs = append(errs, fmt.Errorf("line %d: %s is not in values.schema.json", k.Line, key))
			continue
		}
		if v.Kind == yaml.MappingNode && len(sub.Properties) > 0 {
			*rows = append(*rows, row{key, "", desc})
			if err := walk(v, sub, key+".", rows); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		def, err := defaultOf(v)
		if err != nil {
			return fmt.Errorf("line %d: %s: %w", k.Line, key, err)
		}
		*rows = append(*rows, row{key, def, desc})
	}
	return errors.Join(errs...)
}

// comment joins the comment lines into one table cell.
func comment(c string) string {
	var words []string
	for _, line := range strings.Split(c, "\n") {
		line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "#"))
		if line != "" {
			words = append(words, line)
		}
	}
	return strings.ReplaceAll(strings.Join(words, " "), "|", `\|`)
}

// defaultOf renders a value as compact JSON in a code span.
func defaultOf(v *yaml.Node) (string, error) {
	var x any
	if err := v.Decode(&x); err != nil {
		return "", err
	}
	b, err := json.Marshal(x)
	if err != nil {
		return "", err
	}
	return "`" + strings.ReplaceAll(string(b), "|", `\|`) + "`", nil
}
