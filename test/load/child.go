package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"time"
)

// child is the webhook server process, seen from the load generator.
type child struct {
	Addr  string
	CAPEM []byte

	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
	mu    sync.Mutex
}

// startChild re-executes this binary (the load tool, or the test binary) as
// the webhook server and waits (at most 30 s) until it serves.
func startChild() (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), envRole+"=server")
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
		c.Addr, c.CAPEM = r.h.Addr, r.h.CAPEM
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
