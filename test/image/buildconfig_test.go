package image

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/test/e2e/framework"
)

// TestBuildConfigShared: `make build`, `make image` and hack/image's own
// build (what TestImage runs) compile with one configuration, so each
// reuses the others' Go build cache: the Makefile's BUILD_ENV, BUILD_FLAGS
// and the -s -w of LDFLAGS are what hack/image passes.
func TestBuildConfigShared(t *testing.T) {
	root, err := framework.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	makefile, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	hack, err := os.ReadFile(filepath.Join(root, "hack", "image", "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	variable := func(name string) string {
		m := regexp.MustCompile(`(?m)^` + name + ` := (.*)$`).FindSubmatch(makefile)
		if m == nil {
			t.Fatalf("the Makefile does not define %s", name)
		}
		return strings.TrimSpace(string(m[1]))
	}
	if got := variable("BUILD_ENV"); got != "CGO_ENABLED=0" {
		t.Errorf("Makefile BUILD_ENV %q; hack/image builds with CGO_ENABLED=0", got)
	}
	if got := variable("BUILD_FLAGS"); got != "-trimpath" {
		t.Errorf("Makefile BUILD_FLAGS %q; hack/image builds with -trimpath", got)
	}
	if got := variable("LDFLAGS"); !strings.HasPrefix(got, "-s -w ") {
		t.Errorf("Makefile LDFLAGS %q does not start with hack/image's -s -w", got)
	}
	for _, want := range []string{`"CGO_ENABLED=0"`, `"-trimpath"`, `"-s -w "+ldflags`} {
		if !strings.Contains(string(hack), want) {
			t.Errorf("hack/image/main.go no longer builds with %s; keep it equal to the Makefile's build configuration", want)
		}
	}
	for _, target := range []string{"build", "image"} {
		m := regexp.MustCompile(`(?ms)^` + target + `:[^\n]*\n((?:\t[^\n]*\n)+)`).FindSubmatch(makefile)
		if m == nil || !strings.Contains(string(m[1]), "$(BUILD_ENV) $(GO) build $(BUILD_FLAGS) -ldflags \"$(LDFLAGS)\"") {
			t.Errorf("make %s does not build with $(BUILD_ENV) $(GO) build $(BUILD_FLAGS) -ldflags \"$(LDFLAGS)\"", target)
		}
	}
}
