package framework

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// auditPolicy logs every request that can be admitted (not reads) at the
// Metadata level, which carries the audit annotations admission webhooks
// return, once the response is complete.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived", "ResponseStarted"]
rules:
- level: None
  verbs: ["get", "list", "watch"]
- level: Metadata
`

// AuditLog is kube-apiserver's audit log, enabled through Options.APIServerArgs.
type AuditLog struct {
	// Path is the log file (JSON lines of audit.k8s.io/v1 Events).
	Path string
	dir  string
}

// EnableAuditLog writes an audit policy into a new temporary directory and
// adds the flags that make kube-apiserver log every write request, with
// admission audit annotations, to a file there. Call Remove when the control
// plane has stopped.
func EnableAuditLog(opts *Options) (*AuditLog, error) {
	dir, err := os.MkdirTemp("", "meshguard-audit-")
	if err != nil {
		return nil, err
	}
	a := &AuditLog{Path: filepath.Join(dir, "audit.log"), dir: dir}
	policy := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(policy, []byte(auditPolicy), 0o600); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("write audit policy: %w", err)
	}
	if opts.APIServerArgs == nil {
		opts.APIServerArgs = map[string][]string{}
	}
	opts.APIServerArgs["audit-policy-file"] = []string{policy}
	opts.APIServerArgs["audit-log-path"] = []string{a.Path}
	// Blocking mode: an event is in the file before the next request is served.
	opts.APIServerArgs["audit-log-mode"] = []string{"blocking"}
	opts.APIServerArgs["audit-log-format"] = []string{"json"}
	return a, nil
}

// Remove deletes the log and its policy. It is safe on a nil AuditLog.
func (a *AuditLog) Remove() error {
	if a == nil {
		return nil
	}
	return os.RemoveAll(a.dir)
}

// AuditEvent is the part of an audit.k8s.io/v1 Event the tests read.
type AuditEvent struct {
	AuditID    string `json:"auditID"`
	Stage      string `json:"stage"`
	Verb       string `json:"verb"`
	RequestURI string `json:"requestURI"`
	User       struct {
		Username string   `json:"username"`
		Groups   []string `json:"groups"`
	} `json:"user"`
	ObjectRef *struct {
		Resource    string `json:"resource"`
		Namespace   string `json:"namespace"`
		Name        string `json:"name"`
		APIGroup    string `json:"apiGroup"`
		Subresource string `json:"subresource"`
	} `json:"objectRef"`
	ResponseStatus *struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
	Annotations map[string]string `json:"annotations"`
}

// Events reads every event logged so far. A partially written last line is
// skipped (it is complete on the next read).
func (a *AuditLog) Events() ([]AuditEvent, error) {
	data, err := os.ReadFile(a.Path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	var out []AuditEvent
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		var ev AuditEvent
		if json.Unmarshal(sc.Bytes(), &ev) == nil {
			out = append(out, ev)
		}
	}
	return out, sc.Err()
}
