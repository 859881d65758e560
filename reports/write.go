package reports

import (
	"fmt"
	"io"

	"sigs.k8s.io/yaml"
)

// WriteYAML writes reports as a YAML stream in a format, one document per
// report in the given order, each starting with "---".
func WriteYAML(w io.Writer, reps []Report, f Format) error {
	for _, r := range reps {
		u, err := r.Object(f)
		if err != nil {
			return err
		}
		b, err := yaml.Marshal(u.Object)
		if err != nil {
			return fmt.Errorf("write %s: %w", r.describe(), err)
		}
		if _, err := fmt.Fprintf(w, "---\n%s", b); err != nil {
			return fmt.Errorf("write %s: %w", r.describe(), err)
		}
	}
	return nil
}
