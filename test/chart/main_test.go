package chart

import (
	"os"
	"testing"

	"github.com/meshguard/meshguard/test/e2e/framework"
)

// TestMain starts one control plane for the tests that apply the chart; the
// template tests do not need it.
func TestMain(m *testing.M) { os.Exit(framework.Main(m, framework.Options{})) }
