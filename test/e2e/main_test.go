// Package e2e_test drives meshguard against a real kube-apiserver and etcd
// (built by `make tools`, started by the framework package) with the real
// kubectl.
package e2e_test

import (
	"os"
	"testing"

	"github.com/meshguard/meshguard/test/e2e/framework"
)

func TestMain(m *testing.M) {
	opts, cleanup := e2eOptions()
	code := framework.Main(m, opts)
	cleanup()
	os.Exit(code)
}
