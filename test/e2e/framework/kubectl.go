package framework

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// KubectlResult is what a kubectl run printed and how it exited.
type KubectlResult struct {
	// Args are the arguments kubectl ran with (without --kubeconfig).
	Args []string
	// Stdout and Stderr are kubectl's output.
	Stdout, Stderr string
	// ExitCode is kubectl's exit code (-1 when it did not run or was killed).
	ExitCode int
}

// String renders the command and its outcome, for test failure messages.
func (r KubectlResult) String() string {
	return fmt.Sprintf("kubectl %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.Args, " "), r.ExitCode, r.Stdout, r.Stderr)
}

// Kubectl runs bin/kubectl against the control plane with the given standard
// input (nil for none). A non-zero exit is not an error: it is in the
// result's ExitCode. The error is for a kubectl that could not run.
func (e *Env) Kubectl(ctx context.Context, stdin io.Reader, args ...string) (KubectlResult, error) {
	res := KubectlResult{Args: args, ExitCode: -1}
	cmd := exec.CommandContext(ctx, filepath.Join(e.BinDir, "kubectl"), append([]string{"--kubeconfig", e.KubeconfigPath}, args...)...)
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// A clean environment: no KUBECONFIG or cache directories from the caller.
	cmd.Env = []string{"HOME=" + e.dir, "PATH=" + os.Getenv("PATH"), "KUBECACHEDIR=" + filepath.Join(e.dir, "kubecache")}
	err := cmd.Run()
	res.Stdout, res.Stderr = stdout.String(), stderr.String()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		res.ExitCode = 0
	case errors.As(err, &exitErr) && exitErr.ExitCode() >= 0:
		res.ExitCode = exitErr.ExitCode()
	default:
		return res, fmt.Errorf("run kubectl %s: %w", strings.Join(args, " "), err)
	}
	return res, nil
}

// Apply runs `kubectl apply -f -` with the manifests and fails unless kubectl
// exits 0.
func (e *Env) Apply(ctx context.Context, manifests string) (KubectlResult, error) {
	res, err := e.Kubectl(ctx, strings.NewReader(manifests), "apply", "-f", "-")
	if err != nil {
		return res, err
	}
	if res.ExitCode != 0 {
		return res, fmt.Errorf("%s", res)
	}
	return res, nil
}
