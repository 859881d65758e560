package rules

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Severity orders findings; its default action is decided by the caller.
type Severity int

// Severities, lowest first.
const (
	SeverityInfo Severity = iota + 1
	SeverityLow
	SeverityMedium
	SeverityHigh
	SeverityCritical
)

var severityNames = map[Severity]string{
	SeverityInfo: "Info", SeverityLow: "Low", SeverityMedium: "Medium", SeverityHigh: "High", SeverityCritical: "Critical",
}

// Severities lists every severity, lowest first.
func Severities() []Severity {
	return []Severity{SeverityInfo, SeverityLow, SeverityMedium, SeverityHigh, SeverityCritical}
}

// String returns the severity's name ("High").
func (s Severity) String() string {
	if n, ok := severityNames[s]; ok {
		return n
	}
	return fmt.Sprintf("Severity(%d)", int(s))
}

// ParseSeverity parses a severity name, case-insensitively.
func ParseSeverity(s string) (Severity, error) {
	for sev, n := range severityNames {
		if strings.EqualFold(n, strings.TrimSpace(s)) {
			return sev, nil
		}
	}
	return 0, fmt.Errorf("unknown severity %q (want Info, Low, Medium, High or Critical)", s)
}

// MarshalJSON writes the severity's name.
func (s Severity) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// UnmarshalJSON reads a severity name.
func (s *Severity) UnmarshalJSON(b []byte) error {
	var n string
	if err := json.Unmarshal(b, &n); err != nil {
		return err
	}
	v, err := ParseSeverity(n)
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// ObjectRef identifies the object a finding is about.
type ObjectRef struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace,omitempty"`
	Name       string `json:"name"`
}

// String renders "Kind/namespace/name" (or "Kind/name" for cluster-scoped objects).
func (r ObjectRef) String() string {
	if r.Namespace == "" {
		return r.Kind + "/" + r.Name
	}
	return r.Kind + "/" + r.Namespace + "/" + r.Name
}

// Finding is one rule violated by one object. Message quotes the offending
// items ("container \"app\" adds capability \"NET_ADMIN\""); Why and
// Remediation come from the rule.
type Finding struct {
	Code        string    `json:"code"`
	Rule        string    `json:"rule"`
	Title       string    `json:"title"`
	Severity    Severity  `json:"severity"`
	Object      ObjectRef `json:"object"`
	Message     string    `json:"message"`
	Why         string    `json:"why"`
	Remediation string    `json:"remediation"`
	// Items are the finding's offending items (one per container, port,
	// rule...), each rendered as in the message, taken from the list the
	// message joins, never by splitting its text (items.go). They are what
	// grandfathering compares; not part of reports.
	Items []string `json:"-"`
}

// String renders the finding on one line, in the shape every meshguard output
// shares: code, rule, what is wrong, and the fix.
func (f Finding) String() string {
	return fmt.Sprintf("%s %s (%s): %s. Fix: %s", f.Code, f.Rule, f.Severity, f.Message, f.Remediation)
}
