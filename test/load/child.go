package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// child is the webhook server process, seen from the load generator.
type child struct {
	Addr    string
	CAPEM   []byte
	Runtime string // the server's Go runtime settings

	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
	mu    sync.Mutex
}

// childOptions say how the webhook server process runs.
type childOptions struct {
	Handler string   // handlerMeshguard, handlerControllerRuntime or handlerFloor
	Profile string   // directory for CPU and allocation profiles, or ""
	Env     []string // extra environment (GOGC=..., GOMAXPROCS=...)
	// CPU pins the server to this CPU (with taskset) when >= 0; the Go
	// runtime then sees one CPU and runs with GOMAXPROCS 1.
	CPU int
}

// startChild re-executes this binary (the load tool, or the test binary) as
// the webhook server and waits (at most 30 s) until it serves.
func startChild(o childOptions) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	if o.CPU >= 0 {
		taskset, err := exec.LookPath("taskset")
		if err != nil {
			return nil, fmt.Errorf("-pin needs taskset (Debian's util-linux): %w", err)
		}
		cmd = exec.Command(taskset, "--cpu-list", strconv.Itoa(o.CPU), exe)
	}
	cmd.Env = append(os.Environ(), envRole+"=server", envHandler+"="+o.Handler, envProfile+"="+o.Profile)
	cmd.Env = append(cmd.Env, o.Env...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start webhook server process: %w", err)
	}
	c := &child{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
	type result struct {
		h   serverHello
		err error
	}
	done := make(chan result, 1)
	go func() {
		var h serverHello
		line, err := c.out.ReadBytes('\n')
		if err == nil {
			err = json.Unmarshal(line, &h)
		}
		done <- result{h, err}
	}()
	select {
	case r := <-done:
		if r.err != nil || r.h.Error != "" {
			c.Close()
			if r.err == nil {
				r.err = errors.New(r.h.Error)
			}
			return nil, fmt.Errorf("webhook server process: %w", r.err)
		}
		c.Addr, c.CAPEM, c.Runtime = r.h.Addr, r.h.CAPEM, r.h.Runtime
		return c, nil
	case <-time.After(30 * time.Second):
		c.Close()
		return nil, errors.New("webhook server process did not report ready within 30s")
	}
}

// Stats asks the server process for its cumulative counters.
func (c *child) Stats() (serverStats, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var s serverStats
	if _, err := io.WriteString(c.stdin, "stats\n"); err != nil {
		return s, fmt.Errorf("webhook server process: %w", err)
	}
	line, err := c.out.ReadBytes('\n')
	if err != nil {
		return s, fmt.Errorf("webhook server process: %w", err)
	}
	return s, json.Unmarshal(line, &s)
}

// Close ends the server process: closing stdin asks it to stop; if it has
// not exited within 10 s, this process kills it (its own child, by PID).
func (c *child) Close() {
	_ = c.stdin.Close()
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
	}
}

// pinSelf keeps this process (every thread it has now, and so every thread
// they start) off CPU notCPU, and sizes GOMAXPROCS to the CPUs left; -1
// allows every CPU again.
func pinSelf(notCPU int) error {
	var set unix.CPUSet
	n := 0
	for c := 0; c < runtime.NumCPU(); c++ {
		if c != notCPU {
			set.Set(c)
			n++
		}
	}
	if n == 0 {
		return errors.New("-pin: no CPU left for the load generator")
	}
	runtime.GOMAXPROCS(n)
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return fmt.Errorf("-pin: %w", err)
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, &set); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("-pin: set CPU affinity of thread %d: %w", tid, err)
		}
	}
	return nil
}
