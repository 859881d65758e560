package app

import (
	"github.com/spf13/pflag"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/rules"
)

// severityValue binds a rules.Severity to a flag, parsed case-insensitively.
type severityValue struct{ p *rules.Severity }

var _ pflag.Value = severityValue{}

func (v severityValue) String() string {
	if v.p == nil || *v.p == 0 {
		return ""
	}
	return v.p.String()
}

func (v severityValue) Set(s string) error {
	sev, err := rules.ParseSeverity(s)
	if err != nil {
		return err
	}
	*v.p = sev
	return nil
}

func (v severityValue) Type() string { return "severity" }

// formatValue binds an audit.Format to a flag.
type formatValue struct{ p *audit.Format }

var _ pflag.Value = formatValue{}

func (v formatValue) String() string {
	if v.p == nil {
		return ""
	}
	return string(*v.p)
}

func (v formatValue) Set(s string) error {
	f, err := audit.ParseFormat(s)
	if err != nil {
		return err
	}
	*v.p = f
	return nil
}

func (v formatValue) Type() string { return "format" }
