package app

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// Exit codes of meshguard.
const (
	// ExitOK: the command succeeded (for audit: no finding at or above --fail-on).
	ExitOK = 0
	// ExitFindings: audit found something at or above --fail-on.
	ExitFindings = 1
	// ExitUsage: a usage error, or input that could not be read or parsed.
	ExitUsage = 2
)

// Streams are the command's standard input, output and error.
type Streams struct {
	// In is read by `audit -f -`. Nil reads nothing.
	In io.Reader
	// Out receives results. Required.
	Out io.Writer
	// Err receives errors and, for audit, the summary when results go elsewhere. Required.
	Err io.Writer
}

// ExitError ends a command with an exit code. When Err is nil the outcome has
// already been reported and nothing more is printed.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit code %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// Main runs meshguard with the given arguments (without the program name) and
// returns the exit code: 0 success, 1 audit findings at or above --fail-on,
// 2 usage or input errors. Errors are printed to s.Err.
func Main(ctx context.Context, args []string, s Streams) int {
	if s.In == nil {
		s.In = eofReader{}
	}
	cmd := NewRootCommand(s)
	cmd.SetArgs(args)
	c, err := cmd.ExecuteContextC(ctx)
	if err == nil {
		return ExitOK
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		if ee.Err != nil {
			fmt.Fprintf(s.Err, "Error: %v\n", ee.Err)
		}
		return ee.Code
	}
	// Everything else comes from parsing the command line or validating options.
	fmt.Fprintf(s.Err, "Error: %v\nRun '%s --help' for usage.\n", err, c.CommandPath())
	return ExitUsage
}

// NewRootCommand builds the meshguard command with its subcommands wired to
// their real run functions.
func NewRootCommand(s Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "meshguard",
		Short: "Guard Istio meshes: audit manifests against meshguard's mesh security rules",
		Long: `meshguard finds workloads and Istio configuration that weaken mesh security: plaintext
inside the mesh, workloads outside it, sidecar bypass, authorization holes and network exposure.
The admission webhook enforces the rules at deploy time; this CLI runs the same rules over
manifests, for CI and audits.`,
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	cmd.SetIn(s.In)
	cmd.SetOut(s.Out)
	cmd.SetErr(s.Err)
	cmd.AddCommand(NewQuarantineCommands(s, RunQuarantine)...)
	cmd.AddCommand(
		NewAuditCommand(s, RunAudit),
		NewGraphCommand(s, RunGraph),
		NewNetpolCommand(s, RunNetpolRender),
		NewRulesCommand(s, RunRulesList, RunRulesExplain, RunRulesTest),
		NewServeCommand(s, RunServe),
		NewStatusCommand(s, RunStatus),
		NewUninstallCommand(s, RunUninstall),
		NewWebhookConfigCommand(s),
		NewVersionCommand(s),
	)
	return cmd
}

// noArgs rejects positional arguments, naming the first one.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("unexpected argument %q for %q", args[0], cmd.CommandPath())
	}
	return nil
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }
