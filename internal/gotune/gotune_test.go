package gotune

import (
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

// restore puts the collector back as it was after a test changed it.
func restore(t *testing.T) {
	gc := debug.SetGCPercent(100)
	debug.SetGCPercent(gc)
	lim := debug.SetMemoryLimit(-1)
	t.Cleanup(func() {
		debug.SetGCPercent(gc)
		debug.SetMemoryLimit(lim)
	})
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func noEnv(string) string { return "" }

func TestCgroupMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		name, file, data string
		want             int64
		wantErr          string
	}{
		{"v2 limit", "memory.max", "536870912\n", 512 << 20, ""},
		{"v2 no limit", "memory.max", "max\n", 0, ""},
		{"v1 limit", "memory/memory.limit_in_bytes", "268435456\n", 256 << 20, ""},
		{"v1 unlimited", "memory/memory.limit_in_bytes", "9223372036854771712\n", 0, ""},
		{"garbage", "memory.max", "lots\n", 0, `"lots" is not a byte count`},
		{"negative", "memory.max", "-1\n", 0, "is not a byte count"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			writeFile(t, filepath.Join(root, tc.file), tc.data)
			got, err := CgroupMemoryLimit(root)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), root) {
					t.Fatalf("err = %v, want one naming the file and containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("CgroupMemoryLimit = %d, %v; want %d", got, err, tc.want)
			}
		})
	}
	got, err := CgroupMemoryLimit(t.TempDir())
	if err != nil || got != 0 {
		t.Fatalf("no cgroup files: got %d, %v; want 0, nil", got, err)
	}
}

func TestApplySetsPercentAndLimit(t *testing.T) {
	restore(t)
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "memory.max"), "1000000000")
	a, err := Apply(Options{GCPercent: 300, MemoryLimitRatio: 0.5}, noEnv, root)
	if err != nil {
		t.Fatal(err)
	}
	if a.GCPercent != 300 || a.GCPercentSource != "flag" {
		t.Errorf("GC percent = %d from %s, want 300 from flag", a.GCPercent, a.GCPercentSource)
	}
	if got := debug.SetGCPercent(300); got != 300 {
		t.Errorf("runtime GOGC = %d, want 300", got)
	}
	if a.MemoryLimit != 500000000 || a.MemoryLimitSource != "cgroup" || a.CgroupLimit != 1000000000 {
		t.Errorf("memory limit = %d from %s (cgroup %d), want 500000000 from cgroup", a.MemoryLimit, a.MemoryLimitSource, a.CgroupLimit)
	}
	if got := debug.SetMemoryLimit(-1); got != 500000000 {
		t.Errorf("runtime memory limit = %d, want 500000000", got)
	}
}

func TestApplyLeavesEnvironmentAlone(t *testing.T) {
	restore(t)
	debug.SetGCPercent(123)
	debug.SetMemoryLimit(777 << 20)
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "memory.max"), "1000000000")
	env := func(k string) string {
		return map[string]string{"GOGC": "123", "GOMEMLIMIT": "777MiB"}[k]
	}
	a, err := Apply(Options{GCPercent: 400, MemoryLimitRatio: 0.9}, env, root)
	if err != nil {
		t.Fatal(err)
	}
	if a.GCPercent != 123 || a.GCPercentSource != "GOGC" || a.MemoryLimit != 777<<20 || a.MemoryLimitSource != "GOMEMLIMIT" {
		t.Errorf("Apply = %+v, want GOGC 123 and GOMEMLIMIT 777MiB kept", a)
	}
	if got := debug.SetGCPercent(123); got != 123 {
		t.Errorf("runtime GOGC changed to %d", got)
	}
}

func TestApplyWithoutCgroupLimitOrRatio(t *testing.T) {
	restore(t)
	debug.SetMemoryLimit(math.MaxInt64)
	a, err := Apply(Options{}, noEnv, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if a.GCPercentSource != "default" || a.MemoryLimit != math.MaxInt64 || a.MemoryLimitSource != "none" {
		t.Errorf("Apply = %+v, want Go's defaults untouched", a)
	}
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "memory.max"), "1000000000")
	if a, err = Apply(Options{MemoryLimitRatio: 0}, noEnv, root); err != nil || a.MemoryLimitSource != "none" {
		t.Errorf("ratio 0: Apply = %+v, %v; want no limit set", a, err)
	}
}

func TestValidate(t *testing.T) {
	for _, o := range []Options{{GCPercent: -1}, {GCPercent: 10001}, {MemoryLimitRatio: -0.1}, {MemoryLimitRatio: 1.5}, {MemoryLimitRatio: math.NaN()}} {
		if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "--") {
			t.Errorf("Validate(%+v) = %v, want an error naming the flag", o, err)
		}
	}
	if err := (Options{GCPercent: DefaultGCPercent, MemoryLimitRatio: DefaultMemoryLimitRatio}).Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
}

func TestApplyKeepsThePercentWhenTheCgroupIsUnreadable(t *testing.T) {
	restore(t)
	debug.SetMemoryLimit(math.MaxInt64)
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "memory.max"), "lots")
	a, err := Apply(Options{GCPercent: 250, MemoryLimitRatio: 0.9}, noEnv, root)
	if err == nil || !strings.Contains(err.Error(), "memory.max") {
		t.Fatalf("want an error naming memory.max, got %v", err)
	}
	if a.GCPercent != 250 || a.MemoryLimitSource != "none" || debug.SetMemoryLimit(-1) != math.MaxInt64 {
		t.Errorf("Apply = %+v; want GOGC 250 applied and no memory limit", a)
	}
}
