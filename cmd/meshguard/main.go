// Command meshguard audits Kubernetes manifests against meshguard's Istio mesh
// security rules and explains the rule catalog. See `meshguard --help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/meshguard/meshguard/cmd/meshguard/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := app.Main(ctx, os.Args[1:], app.Streams{In: os.Stdin, Out: os.Stdout, Err: os.Stderr})
	stop()
	os.Exit(code)
}
