// Package gotune applies meshguard serve's garbage-collector settings: a
// GOGC above Go's default, made safe by a soft memory limit derived from the
// container's memory limit.
//
// Why: a decision allocates tens of kilobytes and the webhook's live heap is
// small (a few megabytes plus the informer caches), so with Go's default
// GOGC=100 the collector runs every few hundred requests and each cycle wakes
// every P. A higher GOGC trades memory for fewer cycles; the memory limit
// (debug.SetMemoryLimit, a fraction of the cgroup's limit) makes the
// collector work harder, not the kernel's OOM killer, when the heap
// approaches the container's limit. Environment variables win: an operator's
// GOGC or GOMEMLIMIT is left alone.
package gotune

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
)

// Defaults for meshguard serve (BENCHMARKS.md, "Garbage collector").
const (
	DefaultGCPercent        = 400
	DefaultMemoryLimitRatio = 0.9
)

// Options are the settings to apply.
type Options struct {
	// GCPercent is the GOGC to set (0 keeps Go's default of 100). Ignored
	// when the GOGC environment variable is set.
	GCPercent int
	// MemoryLimitRatio is the fraction of the cgroup memory limit to set as
	// the Go memory limit, in (0, 1]; 0 sets none. Ignored when GOMEMLIMIT is
	// set, and without a cgroup memory limit.
	MemoryLimitRatio float64
}

// Validate checks the ranges.
func (o Options) Validate() error {
	if o.GCPercent < 0 || o.GCPercent > 10000 {
		return fmt.Errorf("--gc-percent: %d is not in [0, 10000] (0 keeps Go's default of 100)", o.GCPercent)
	}
	if math.IsNaN(o.MemoryLimitRatio) || o.MemoryLimitRatio < 0 || o.MemoryLimitRatio > 1 {
		return fmt.Errorf("--memory-limit-ratio: %v is not in [0, 1] (0 sets no limit)", o.MemoryLimitRatio)
	}
	return nil
}

// Applied says what Apply did, for the startup log.
type Applied struct {
	GCPercent       int    // the GOGC in effect (-1: off)
	GCPercentSource string // "flag", "GOGC", or "default"
	// MemoryLimit is the Go memory limit in effect in bytes (math.MaxInt64:
	// none), and where it came from: "cgroup", "GOMEMLIMIT", or "none".
	MemoryLimit       int64
	MemoryLimitSource string
	CgroupLimit       int64 // the cgroup memory limit found, 0 if none
}

// Env reads environment variables (os.Getenv in production).
type Env func(string) string

// Apply sets the collector's percent and memory limit. root is the cgroup
// file system's mount point ("/sys/fs/cgroup" in production). An error
// reading the cgroup's limit is returned after the percent is applied, with
// no memory limit set: the caller may log it and go on.
func Apply(o Options, getenv Env, root string) (Applied, error) {
	var a Applied
	if err := o.Validate(); err != nil {
		return a, err
	}
	switch {
	case getenv("GOGC") != "":
		a.GCPercent, a.GCPercentSource = currentGCPercent(), "GOGC"
	case o.GCPercent > 0:
		debug.SetGCPercent(o.GCPercent)
		a.GCPercent, a.GCPercentSource = o.GCPercent, "flag"
	default:
		a.GCPercent, a.GCPercentSource = currentGCPercent(), "default"
	}
	a.MemoryLimit, a.MemoryLimitSource = debug.SetMemoryLimit(-1), "none"
	if getenv("GOMEMLIMIT") != "" {
		a.MemoryLimitSource = "GOMEMLIMIT"
		return a, nil
	}
	limit, err := CgroupMemoryLimit(root)
	if err != nil {
		return a, err
	}
	a.CgroupLimit = limit
	if limit > 0 && o.MemoryLimitRatio > 0 {
		a.MemoryLimit = int64(float64(limit) * o.MemoryLimitRatio)
		debug.SetMemoryLimit(a.MemoryLimit)
		a.MemoryLimitSource = "cgroup"
	}
	return a, nil
}

func currentGCPercent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

// CgroupMemoryLimit returns the memory limit of the cgroup this process runs
// in, in bytes, or 0 when there is none (no cgroup file system, "max", or the
// cgroup v1 "unlimited" value). It reads cgroup v2's memory.max for the
// process's own cgroup (from /proc/self/cgroup), falling back to the root
// of the mount (what a container sees), then cgroup v1's
// memory/memory.limit_in_bytes.
func CgroupMemoryLimit(root string) (int64, error) {
	var candidates []string
	if rel, err := ownCgroupV2(); err == nil && rel != "" && rel != "/" {
		candidates = append(candidates, filepath.Join(root, rel, "memory.max"))
	}
	candidates = append(candidates, filepath.Join(root, "memory.max"), filepath.Join(root, "memory", "memory.limit_in_bytes"))
	for _, p := range candidates {
		data, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("read cgroup memory limit: %w", err)
		}
		return parseLimit(p, strings.TrimSpace(string(data)))
	}
	return 0, nil
}

// cgroup v1 reports "no limit" as a page-aligned value close to MaxInt64.
const v1Unlimited = int64(1) << 62

func parseLimit(path, s string) (int64, error) {
	if s == "max" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("read cgroup memory limit: %s: %q is not a byte count", path, s)
	}
	if n >= v1Unlimited {
		return 0, nil
	}
	return n, nil
}

// ownCgroupV2 returns this process's cgroup v2 path ("0::/path").
func ownCgroupV2() (string, error) {
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "0::"); ok {
			return rest, nil
		}
	}
	return "", sc.Err()
}
