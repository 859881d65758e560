package certs

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestNewRefusesAMissingDirectoryAndBadOptions(t *testing.T) {
	if _, err := New(nil, Files{}); err == nil || !strings.Contains(err.Error(), "TLS only") {
		t.Fatalf("an empty certificate directory must be refused: %v", err)
	}
	o := NewOptions()
	if _, err := New(o, Files{Dir: "/certs"}); err == nil || !strings.Contains(err.Error(), "--namespace") {
		t.Fatalf("self-signed without a namespace must be refused: %v", err)
	}
	o.Complete(func(k string) string {
		if k == EnvPodNamespace {
			return "guard"
		}
		return ""
	})
	src, err := New(o, Files{Dir: "/certs"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := src.(*selfSigned); !ok {
		t.Fatalf("self-signed mode built %T", src)
	}
	if got := o.extraDNSNames(); len(got) != 1 || got[0] != "meshguard.guard.svc.cluster.local" {
		t.Fatalf("default extra DNS names: %v", got)
	}
}

func TestFilesModeIsReadyAtOnce(t *testing.T) {
	dir := t.TempDir()
	writeTestPair(t, dir, time.Now().Add(-time.Minute), time.Now().Add(time.Hour))
	src, err := New(&Options{Mode: ModeFiles}, Files{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-src.Ready():
	default:
		t.Fatal("files mode must not hold the server")
	}
	if err := src.Check(nil); err != nil {
		t.Fatal(err)
	}
}

func TestServeWhenReadyHoldsTheServer(t *testing.T) {
	r := newReadiness("waiting")
	started := make(chan struct{})
	g := ServeWhenReady(runnable(func(context.Context) error { close(started); return nil }), &fileSource{readiness: r})
	done := make(chan error, 1)
	go func() { done <- g.Start(context.Background()) }()
	select {
	case <-started:
		t.Fatal("the server started before the certificate was ready")
	case <-time.After(100 * time.Millisecond):
	}
	if err := r.Check(nil); err == nil || err.Error() != "waiting" {
		t.Fatalf("the check must give the reason: %v", err)
	}
	r.markReady("ready")
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		t.Fatal("the server did not start once ready")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := r.Check(nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := ServeWhenReady(runnable(func(context.Context) error { t.Error("started"); return nil }), &fileSource{readiness: newReadiness("x")}).Start(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestWriteFiles(t *testing.T) {
	dir := t.TempDir()
	files := []namedData{{"ca.crt", []byte("ca"), 0o644}, {"tls.key", []byte("key"), 0o600}, {"tls.crt", []byte("crt"), 0o644}}
	if err := writeFiles(dir, files); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, "tls.key"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("the key must be 0600: %v %v", st, err)
	}
	if !filesHold(Files{Dir: dir, CertName: "tls.crt", KeyName: "tls.key"}, []byte("crt"), []byte("key")) {
		t.Fatal("the files do not hold what was written")
	}
	// Unchanged files are not rewritten.
	before, _ := os.Stat(filepath.Join(dir, "tls.crt"))
	if err := writeFiles(dir, files); err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(filepath.Join(dir, "tls.crt"))
	if !os.SameFile(before, after) {
		t.Fatal("an unchanged file was replaced")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 3 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
	if os.Geteuid() != 0 {
		ro := t.TempDir()
		if err := os.Chmod(ro, 0o500); err != nil {
			t.Fatal(err)
		}
		if err := writeFiles(ro, files); err == nil || !strings.Contains(err.Error(), errReadOnly.Error()) {
			t.Fatalf("a read-only directory must be reported as such: %v", err)
		}
	}
}
