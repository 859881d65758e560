// Command factsdoc prints the workload facts tables of
// rules/catalog/README.md, generated from the typed facts of package rules
// (see internal/factsdoc). `make docs` writes them into the README between
// its WORKLOAD-FACTS markers, `make verify` checks them.
//
// Usage: go run ./hack/factsdoc [DIR] (DIR defaults to rules).
package main

import (
	"fmt"
	"os"

	"github.com/meshguard/meshguard/internal/factsdoc"
)

func main() {
	dir := "rules"
	if len(os.Args) > 1 {
		dir = os.Args[1]
	}
	out, err := factsdoc.Generate(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "factsdoc:", err)
		os.Exit(1)
	}
	fmt.Print(out)
}
