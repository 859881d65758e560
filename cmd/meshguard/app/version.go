package app

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// Version is meshguard's version. The build sets it with
// -ldflags "-X github.com/meshguard/meshguard/cmd/meshguard/app.Version=v1.2.3";
// default "dev". It is package state only because the linker can set nothing else.
var Version = "dev"

// version returns Version, or the module version when the binary was built
// by `go install ...@vX.Y.Z` without ldflags.
func version() string {
	if Version != "dev" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return Version
}

// NewVersionCommand builds `meshguard version`.
func NewVersionCommand(s Streams) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print meshguard's version and the Go version it was built with",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			_, err := fmt.Fprintf(s.Out, "meshguard %s\n%s %s/%s\n", version(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return err
		},
	}
}
