// Command factsdoc prints facts tables of rules/catalog/README.md,
// generated from the typed facts of package rules (see internal/factsdoc).
// `make docs` writes them into the README between its WORKLOAD-FACTS and
// NAMESPACE-FACTS markers, `make verify` checks them.
//
// Usage: go run ./hack/factsdoc DIR ROOT (e.g. rules WorkloadFacts).
package main

import (
	"fmt"
	"os"

	"github.com/meshguard/meshguard/internal/factsdoc"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: factsdoc DIR ROOT (e.g. rules WorkloadFacts)")
		os.Exit(2)
	}
	out, err := factsdoc.Generate(os.Args[1], os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, "factsdoc:", err)
		os.Exit(1)
	}
	fmt.Print(out)
}
