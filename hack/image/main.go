// Command image builds meshguard's container image without a container
// engine: it compiles the static binary (CGO_ENABLED=0) and writes an OCI
// image layout, as a tar file, holding one layer on an empty base: the binary
// at /usr/local/bin/meshguard, /etc/passwd and /etc/group with the nonroot
// user 65532 (as in distroless' nonroot images) and a sticky /tmp. The image
// runs as 65532:65532 with meshguard as its entrypoint. The output is
// reproducible: timestamps are fixed and entries sorted.
//
// Load it with any OCI tool, for example `skopeo copy
// oci-archive:dist/meshguard-image.tar docker://REGISTRY/meshguard:TAG` or
// `crane push dist/meshguard-image.tar ...` after extracting it. The
// Dockerfile builds the same image where an engine is available.
//
//	go run ./hack/image -version v0.1.0 -o dist/meshguard-image.tar
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"time"
)

// Image layout constants; test/image checks the output against them.
const (
	// BinaryPath is where the binary lives in the image.
	BinaryPath = "/usr/local/bin/meshguard"
	// User is the numeric user and group the image runs as.
	User = "65532:65532"
)

// epoch is the fixed timestamp of every file and of the image, for reproducible output.
var epoch = time.Unix(0, 0).UTC()

func main() {
	var (
		out     = flag.String("o", "dist/meshguard-image.tar", "output OCI layout tarball")
		version = flag.String("version", "dev", "image version (tag annotation and label)")
		ldflags = flag.String("ldflags", "", "extra -ldflags for go build")
		goarch  = flag.String("goarch", runtime.GOARCH, "target architecture")
		binary  = flag.String("binary", "", "use this already built static linux binary instead of building one")
		source  = flag.String("source", "https://github.com/meshguard/meshguard", "org.opencontainers.image.source label")
	)
	flag.Parse()
	if err := run(*out, *version, *ldflags, *goarch, *binary, *source); err != nil {
		fmt.Fprintf(os.Stderr, "image: %v\n", err)
		os.Exit(1)
	}
}

func run(out, version, ldflags, goarch, binary, source string) error {
	if binary == "" {
		tmp, err := os.MkdirTemp("", "meshguard-image-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		binary = filepath.Join(tmp, "meshguard")
		// The Makefile's BUILD_ENV, BUILD_FLAGS and LDFLAGS: the same
		// configuration as `make build`, so both share the build cache.
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w "+ldflags, "-o", binary, "./cmd/meshguard")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("build meshguard: %w", err)
		}
	}
	bin, err := os.ReadFile(binary)
	if err != nil {
		return fmt.Errorf("read binary: %w", err)
	}
	layer, diffID, err := rootfs(bin)
	if err != nil {
		return fmt.Errorf("layer: %w", err)
	}
	labels := map[string]string{
		"org.opencontainers.image.title":       "meshguard",
		"org.opencontainers.image.description": "Istio-aware admission webhook and default-deny NetworkPolicy controller",
		"org.opencontainers.image.version":     version,
		"org.opencontainers.image.source":      source,
		"org.opencontainers.image.licenses":    "Apache-2.0",
	}
	config := map[string]any{
		"created":      epoch.Format(time.RFC3339),
		"architecture": goarch,
		"os":           "linux",
		"config": map[string]any{
			"User":       User,
			"Entrypoint": []string{BinaryPath},
			"Env":        []string{"PATH=/usr/local/bin"},
			"WorkingDir": "/",
			"Labels":     labels,
		},
		"rootfs":  map[string]any{"type": "layers", "diff_ids": []string{diffID}},
		"history": []map[string]any{{"created": epoch.Format(time.RFC3339), "created_by": "hack/image: " + BinaryPath}},
	}
	configJSON, err := json.Marshal(config)
	if err != nil {
		return err
	}
	blobs := map[string][]byte{}
	add := func(mediaType string, b []byte) map[string]any {
		d := digest(b)
		blobs[d] = b
		return map[string]any{"mediaType": mediaType, "digest": d, "size": len(b)}
	}
	manifest := map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        add("application/vnd.oci.image.config.v1+json", configJSON),
		"layers":        []any{add("application/vnd.oci.image.layer.v1.tar+gzip", layer)},
		"annotations":   labels,
	}
	manifestJSON, err := json.Marshal(manifest)
	if err != nil {
		return err
	}
	md := add("application/vnd.oci.image.manifest.v1+json", manifestJSON)
	md["annotations"] = map[string]string{"org.opencontainers.image.ref.name": version}
	md["platform"] = map[string]string{"architecture": goarch, "os": "linux"}
	index, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.index.v1+json",
		"manifests":     []any{md},
	})
	if err != nil {
		return err
	}

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	files := []struct {
		name string
		data []byte
	}{
		{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{"index.json", index},
	}
	if err := writeDir(tw, "blobs/"); err != nil {
		return err
	}
	if err := writeDir(tw, "blobs/sha256/"); err != nil {
		return err
	}
	for _, d := range sortedKeys(blobs) {
		files = append(files, struct {
			name string
			data []byte
		}{"blobs/sha256/" + d[len("sha256:"):], blobs[d]})
	}
	for _, f := range files {
		if err := writeFile(tw, f.name, f.data, 0o644, 0, 0); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "image: wrote %s (%s, manifest %s)\n", out, version, md["digest"])
	return nil
}

// rootfs returns the gzipped layer and the digest of its uncompressed tar.
func rootfs(bin []byte) ([]byte, string, error) {
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	for _, d := range []string{"etc/", "tmp/", "usr/", "usr/local/", "usr/local/bin/"} {
		if err := writeDir(tw, d); err != nil {
			return nil, "", err
		}
	}
	steps := []struct {
		name string
		data []byte
		mode int64
	}{
		{"etc/group", []byte("root:x:0:\nnonroot:x:65532:\n"), 0o644},
		{"etc/passwd", []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"), 0o644},
		{BinaryPath[1:], bin, 0o755},
	}
	for _, s := range steps {
		if err := writeFile(tw, s.name, s.data, s.mode, 0, 0); err != nil {
			return nil, "", err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, "", err
	}
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	if err != nil {
		return nil, "", err
	}
	zw.ModTime = epoch
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return nil, "", err
	}
	if err := zw.Close(); err != nil {
		return nil, "", err
	}
	return gz.Bytes(), digest(raw.Bytes()), nil
}

func writeDir(tw *tar.Writer, name string) error {
	mode := int64(0o755)
	if name == "tmp/" {
		mode = 0o1777
	}
	return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode, ModTime: epoch, Format: tar.FormatPAX})
}

func writeFile(tw *tar.Writer, name string, data []byte, mode int64, uid, gid int) error {
	if err := tw.WriteHeader(&tar.Header{
		Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), Uid: uid, Gid: gid, ModTime: epoch, Format: tar.FormatPAX,
	}); err != nil {
		return err
	}
	_, err := tw.Write(data)
	return err
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func sortedKeys(m map[string][]byte) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
