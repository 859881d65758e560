// Package image checks the OCI image `make image` builds (hack/image): the
// layout, the static binary at its path, the non-root user and the entrypoint.
package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/test/e2e/framework"
)

const binaryPath = "usr/local/bin/meshguard"

type descriptor struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
}

func TestImage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the image")
	}
	root, err := framework.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "meshguard-image.tar")
	cmd := exec.Command("go", "run", "./hack/image", "-version", "test", "-o", out)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go run ./hack/image: %v\n%s", err, b)
	}
	files := readTar(t, out)
	for _, f := range []string{"oci-layout", "index.json"} {
		if _, ok := files[f]; !ok {
			t.Fatalf("the OCI layout has no %s", f)
		}
	}
	// Every blob is named by its digest.
	for name, data := range files {
		if hexDigest, ok := strings.CutPrefix(name, "blobs/sha256/"); ok && hexDigest != "" {
			sum := sha256.Sum256(data)
			if hex.EncodeToString(sum[:]) != hexDigest {
				t.Errorf("blob %s does not match its digest", name)
			}
		}
	}
	blob := func(d descriptor) []byte {
		b, ok := files["blobs/sha256/"+strings.TrimPrefix(d.Digest, "sha256:")]
		if !ok || int64(len(b)) != d.Size {
			t.Fatalf("blob %s missing or of the wrong size", d.Digest)
		}
		return b
	}
	var index struct {
		Manifests []descriptor `json:"manifests"`
	}
	mustJSON(t, files["index.json"], &index)
	if len(index.Manifests) != 1 {
		t.Fatalf("index.json lists %d manifests, want 1", len(index.Manifests))
	}
	var manifest struct {
		Config descriptor   `json:"config"`
		Layers []descriptor `json:"layers"`
	}
	mustJSON(t, blob(index.Manifests[0]), &manifest)
	var config struct {
		OS     string `json:"os"`
		Config struct {
			User       string            `json:"User"`
			Entrypoint []string          `json:"Entrypoint"`
			Labels     map[string]string `json:"Labels"`
		} `json:"config"`
		RootFS struct {
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
	mustJSON(t, blob(manifest.Config), &config)
	if uid, _, _ := strings.Cut(config.Config.User, ":"); uid != "65532" {
		t.Errorf("the image runs as %q, want the non-root user 65532", config.Config.User)
	}
	if len(config.Config.Entrypoint) != 1 || config.Config.Entrypoint[0] != "/"+binaryPath {
		t.Errorf("entrypoint %v, want [/%s]", config.Config.Entrypoint, binaryPath)
	}
	if config.OS != "linux" || config.Config.Labels["org.opencontainers.image.title"] != "meshguard" || config.Config.Labels["org.opencontainers.image.version"] != "test" {
		t.Errorf("config: os %q, labels %v", config.OS, config.Config.Labels)
	}
	if len(manifest.Layers) != 1 || len(config.RootFS.DiffIDs) != 1 {
		t.Fatalf("%d layers, %d diff IDs; want one", len(manifest.Layers), len(config.RootFS.DiffIDs))
	}
	zr, err := gzip.NewReader(bytes.NewReader(blob(manifest.Layers[0])))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(raw); "sha256:"+hex.EncodeToString(sum[:]) != config.RootFS.DiffIDs[0] {
		t.Errorf("the layer does not match its diff ID")
	}
	tr := tar.NewReader(bytes.NewReader(raw))
	var bin []byte
	var passwd string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		switch h.Name {
		case binaryPath:
			bin = b
			if h.Mode&0o111 == 0 || h.Mode&0o022 != 0 {
				t.Errorf("%s mode %o: want executable, not group or world writable", h.Name, h.Mode)
			}
		case "etc/passwd":
			passwd = string(b)
		}
	}
	if bin == nil {
		t.Fatalf("the layer has no %s", binaryPath)
	}
	if !strings.Contains(passwd, ":65532:65532:") {
		t.Errorf("/etc/passwd has no user 65532:\n%s", passwd)
	}
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		t.Fatalf("%s is not an ELF binary: %v", binaryPath, err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s is dynamically linked; the image has no libc", binaryPath)
		}
	}
}

func readTar(t *testing.T, path string) map[string][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files[h.Name] = b
		}
	}
}

func mustJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}
