package framework

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Package-level state for the control plane a test package shares.
var (
	shared     *Env
	skipReason string
)

// Main is a test package's TestMain: it starts one control plane for the
// package, runs the tests and stops it. When bin/kube-apiserver is missing and
// MESHGUARD_E2E is not "required", the control plane is not started and every
// test that calls Shared is skipped with the reason; with MESHGUARD_E2E=required
// the package fails instead. A control plane that does not start fails the
// package either way.
//
//	func TestMain(m *testing.M) { os.Exit(framework.Main(m, framework.Options{})) }
func Main(m *testing.M, opts Options) int {
	root, err := RepoRoot()
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	binDir := opts.BinDir
	if binDir == "" {
		binDir = filepath.Join(root, "bin")
	}
	// Only a missing kube-apiserver means "not built": with it present, a
	// missing etcd or kubectl is a broken build and Start fails below.
	if missing := MissingBinaries(binDir); len(missing) > 0 && missing[0] == "kube-apiserver" {
		reason := fmt.Sprintf("e2e: control plane not built (%s missing in %s); run `make tools` to build it from source", strings.Join(missing, ", "), binDir)
		if os.Getenv(EnvE2E) == "required" {
			fmt.Fprintf(os.Stderr, "%s\nFAIL: %s=required: the end-to-end tests must run\n", reason, EnvE2E)
			return 1
		}
		skipReason = reason + " (set " + EnvE2E + "=required to fail instead of skipping)"
		fmt.Fprintln(os.Stderr, skipReason)
		return m.Run()
	}
	env, err := Start(opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	shared = env
	fmt.Fprintf(os.Stderr, "e2e: control plane started in %s (%s)\n", env.StartupTime.Round(time.Millisecond), env.Config.Host)
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// Shared returns the package's control plane started by Main, skipping the
// test when Main skipped the start. It fails the test when Main was not used.
func Shared(t testing.TB) *Env {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
	if shared == nil {
		t.Fatal("e2e: no control plane: call framework.Main from the package's TestMain")
	}
	return shared
}
