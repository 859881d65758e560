package e2e_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/meshguard/meshguard/test/e2e/framework"
)

// auditLog is the shared control plane's audit log: the webhook tests read the
// audit annotations meshguard returns from it.
var auditLog *framework.AuditLog

// e2eOptions are the options of the package's control plane: the API server
// writes an audit log. The returned function removes it after the control
// plane stopped.
func e2eOptions() (framework.Options, func()) {
	var opts framework.Options
	// The report CRDs the background audit writes (TestPosture*), as the chart installs them.
	if root, err := framework.RepoRoot(); err == nil {
		opts.CRDPaths = append(opts.CRDPaths, filepath.Join(root, "charts", "meshguard", "files", "crds"))
	}
	a, err := framework.EnableAuditLog(&opts)
	if err != nil {
		// The tests that read the log fail with this reason; the rest run.
		fmt.Fprintf(os.Stderr, "e2e: audit log: %v\n", err)
		return framework.Options{CRDPaths: opts.CRDPaths}, func() {}
	}
	auditLog = a
	return opts, func() { _ = a.Remove() }
}
