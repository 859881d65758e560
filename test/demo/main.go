// Command demo is `make demo`: it starts a local control plane (kube-apiserver
// and etcd from bin/, built by `make tools`), runs the real `bin/meshguard
// serve` on 127.0.0.1 with a throwaway certificate, registers the webhook
// configurations that `meshguard webhook-config` prints, and applies the
// Bookinfo examples with the real kubectl, one file at a time: first
// examples/bookinfo/insecure, showing what the API server denied and why,
// then examples/bookinfo/fixed, which is admitted. Everything it started or
// wrote is removed when it ends, on Ctrl-C too.
//
// It builds nothing: the Makefile target depends on `tools` and `build`.
//
//	go run ./test/demo [-bin DIR] [-meshguard FILE] [-short]
//
// The exit code is 0 when every insecure file had at least one denial and
// every fixed file was admitted, 1 otherwise, 2 when the demo could not run.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/meshguard/meshguard/test/e2e/framework"
)

// options are the demo's flags.
type options struct {
	// binDir holds kube-apiserver, etcd and kubectl. Default <repo>/bin.
	binDir string
	// meshguard is the meshguard binary. Default <binDir>/meshguard.
	meshguard string
	// short prints one line per applied file instead of kubectl's full output.
	short bool
}

func main() {
	var o options
	flag.StringVar(&o.binDir, "bin", "", "directory with kube-apiserver, etcd and kubectl (default: <repo>/bin, built by `make tools`)")
	flag.StringVar(&o.meshguard, "meshguard", "", "meshguard binary (default: <bin>/meshguard, built by `make build`)")
	flag.BoolVar(&o.short, "short", false, "print one line per applied file instead of kubectl's full output")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d := &demo{opts: o, out: os.Stdout}
	code := d.run(ctx)
	d.cleanup()
	os.Exit(code)
}

// demo is one run; cleanup undoes whatever was started.
type demo struct {
	opts options
	out  io.Writer
	root string

	tmp      string
	env      *framework.Env
	serve    *exec.Cmd
	served   chan error
	logPath  string
	kubectlB string
}

func (d *demo) heading(format string, a ...any) {
	fmt.Fprintf(d.out, "\n== %s\n", fmt.Sprintf(format, a...))
}

func (d *demo) say(format string, a ...any) {
	fmt.Fprintf(d.out, "   %s\n", fmt.Sprintf(format, a...))
}

func (d *demo) run(ctx context.Context) int {
	failed := func(err error) int {
		if ctx.Err() != nil {
			fmt.Fprintln(d.out, "\ninterrupted")
		} else {
			fmt.Fprintf(d.out, "\ndemo: %v\n", err)
		}
		return 2
	}
	if err := d.setup(ctx); err != nil {
		return failed(err)
	}
	insecure, err := d.applyDir(ctx, "4. Apply examples/bookinfo/insecure, one file at a time", filepath.Join("examples", "bookinfo", "insecure"))
	if err != nil {
		return failed(err)
	}
	fixed, err := d.applyDir(ctx, "5. Apply examples/bookinfo/fixed", filepath.Join("examples", "bookinfo", "fixed"))
	if err != nil {
		return failed(err)
	}

	d.heading("Summary")
	ok := true
	var denied, warned int
	for _, r := range insecure {
		denied += r.denied
		warned += r.warnings
		if r.denied == 0 {
			ok = false
			d.say("UNEXPECTED: nothing in %s was denied", r.file)
		}
	}
	d.say("insecure: %d objects denied, %d warnings, in %d files", denied, warned, len(insecure))
	for _, r := range fixed {
		if r.exit != 0 || r.denied > 0 {
			ok = false
			d.say("UNEXPECTED: %s was not admitted (kubectl exit %d)", r.file, r.exit)
		}
	}
	if ok {
		d.say("fixed:    every object admitted (%d files)", len(fixed))
		d.say("details of any rule: %s rules explain MESH0150", d.rel(d.opts.meshguard))
		return 0
	}
	return 1
}

// setup starts the control plane and meshguard and registers the webhooks.
func (d *demo) setup(ctx context.Context) error {
	root, err := framework.RepoRoot()
	if err != nil {
		return err
	}
	d.root = root
	if d.opts.binDir == "" {
		d.opts.binDir = filepath.Join(root, "bin")
	}
	if d.opts.meshguard == "" {
		d.opts.meshguard = filepath.Join(d.opts.binDir, "meshguard")
	}
	if missing := framework.MissingBinaries(d.opts.binDir); len(missing) > 0 {
		return fmt.Errorf("%s: missing %s: run `make tools` (or `make demo`, which does)", d.opts.binDir, strings.Join(missing, ", "))
	}
	if _, err := os.Stat(d.opts.meshguard); err != nil {
		return fmt.Errorf("%s: run `make build` (or `make demo`, which does): %w", d.opts.meshguard, err)
	}
	d.kubectlB = filepath.Join(d.opts.binDir, "kubectl")
	if d.tmp, err = os.MkdirTemp("", "meshguard-demo-"); err != nil {
		return err
	}
	fmt.Fprintf(d.out, "meshguard demo: a real kube-apiserver and etcd, `meshguard serve` and kubectl, all on 127.0.0.1.\n")
	fmt.Fprintf(d.out, "Everything is removed when the demo ends; Ctrl-C stops it.\n")

	d.heading("1. Start the control plane")
	if d.env, err = framework.Start(framework.Options{BinDir: d.opts.binDir}); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	d.say("kube-apiserver and etcd from %s, Istio CRDs installed, in %s", d.opts.binDir, d.env.StartupTime.Round(100*time.Millisecond))

	d.heading("2. Start meshguard serve")
	certs, err := framework.WriteServingCerts(filepath.Join(d.tmp, "certs"))
	if err != nil {
		return err
	}
	var port, metrics, health int
	for _, p := range []*int{&port, &metrics, &health} {
		if *p, err = framework.FreeLoopbackPort(); err != nil {
			return err
		}
	}
	args := []string{"serve",
		"--kubeconfig", d.env.KubeconfigPath,
		"--host", "127.0.0.1", "--port", fmt.Sprint(port),
		"--cert-mode", "files", "--cert-dir", certs.Dir,
		"--metrics-bind-address", fmt.Sprintf("127.0.0.1:%d", metrics),
		"--health-probe-bind-address", fmt.Sprintf("127.0.0.1:%d", health),
		"--enroll-namespaces", "istio-injection=enabled",
		// One replica and nobody behind it: no connections to drain on stop.
		"--shutdown-delay", "0s",
	}
	d.say("$ %s %s", d.rel(d.opts.meshguard), strings.Join(args, " "))
	d.logPath = filepath.Join(d.tmp, "meshguard.log")
	logFile, err := os.Create(d.logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	d.serve = exec.Command(d.opts.meshguard, args...)
	d.serve.Stdout, d.serve.Stderr = logFile, logFile
	began := time.Now()
	if err := d.serve.Start(); err != nil {
		return fmt.Errorf("start meshguard serve: %w", err)
	}
	d.served = make(chan error, 1)
	go func() { d.served <- d.serve.Wait() }()
	if err := d.waitReady(ctx, health); err != nil {
		return err
	}
	d.say("ready in %s (self-signed CA for 127.0.0.1; JSON logs in %s)", time.Since(began).Round(100*time.Millisecond), d.logPath)

	d.heading("3. Register the webhook configurations")
	url := fmt.Sprintf("https://127.0.0.1:%d", port)
	gen := []string{"webhook-config", "--url", url, "--ca-bundle", filepath.Join(certs.Dir, framework.CAFile), "--enroll"}
	d.say("$ %s %s | kubectl apply -f -", d.rel(d.opts.meshguard), strings.Join(gen, " "))
	var cfg, genErr bytes.Buffer
	c := exec.CommandContext(ctx, d.opts.meshguard, gen...)
	c.Stdout, c.Stderr = &cfg, &genErr
	if err := c.Run(); err != nil {
		return fmt.Errorf("meshguard webhook-config: %w: %s", err, genErr.String())
	}
	res, err := d.env.Kubectl(ctx, &cfg, "apply", "-f", "-")
	if err != nil {
		return err
	}
	d.print(res.Stdout + res.Stderr)
	if res.ExitCode != 0 {
		return fmt.Errorf("kubectl apply of the webhook configurations failed")
	}
	return d.waitRegistered(ctx)
}

// waitReady polls /readyz until it answers 200, meshguard exits, or 60s pass.
func (d *demo) waitReady(ctx context.Context, port int) error {
	hc := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-d.served:
			d.served <- err
			return fmt.Errorf("meshguard serve exited: %v; its log:\n%s", err, tailFile(d.logPath, 20))
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if resp, err := hc.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", port)); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("meshguard serve was not ready within 60s; its log:\n%s", tailFile(d.logPath, 20))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitRegistered waits until the API server calls the webhook: it picks the
// configuration up through an informer, a moment after the apply.
func (d *demo) waitRegistered(ctx context.Context) error {
	probe := `apiVersion: v1
kind: Pod
metadata: {name: meshguard-demo-probe, namespace: default}
spec:
  containers:
  - {name: probe, image: probe, securityContext: {capabilities: {add: [NET_ADMIN]}}}
`
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := d.env.Kubectl(ctx, strings.NewReader(probe), "apply", "--dry-run=server", "-f", "-")
		if err != nil {
			return err
		}
		if res.ExitCode != 0 && strings.Contains(res.Stderr, "meshguard") {
			d.say("the API server now sends every covered request to meshguard")
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the webhook did not take effect within 30s:\n%s", res)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// result is what one `kubectl apply -f FILE` did.
type result struct {
	file                       string
	exit                       int
	admitted, denied, warnings int
	// findingCodes are the codes in the denials, in order of appearance.
	findingCodes []string
}

func (d *demo) applyDir(ctx context.Context, title, rel string) ([]*result, error) {
	d.heading("%s", title)
	files, err := filepath.Glob(filepath.Join(d.root, rel, "*.yaml"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	if len(files) == 0 {
		return nil, fmt.Errorf("no manifests in %s", rel)
	}
	var out []*result
	for _, f := range files {
		name := filepath.ToSlash(filepath.Join(rel, filepath.Base(f)))
		in, err := os.Open(f)
		if err != nil {
			return nil, err
		}
		res, err := d.env.Kubectl(ctx, in, "apply", "-f", "-")
		_ = in.Close()
		if err != nil {
			return nil, err
		}
		r := summarize(name, res)
		out = append(out, r)
		if d.opts.short {
			codes := ""
			if len(r.findingCodes) > 0 {
				codes = " (" + strings.Join(r.findingCodes, " ") + ")"
			}
			d.say("kubectl apply -f %-46s %d admitted, %d warnings, %d denied%s", name, r.admitted, r.warnings, r.denied, codes)
			continue
		}
		fmt.Fprintf(d.out, "\n-- kubectl apply -f %s   (exit %d: %d admitted, %d denied, %d warnings)\n", name, r.exit, r.admitted, r.denied, r.warnings)
		d.print(res.Stderr + res.Stdout)
	}
	return out, nil
}

func summarize(file string, res framework.KubectlResult) *result {
	r := &result{file: file, exit: res.ExitCode}
	seen := map[string]bool{}
	for _, l := range strings.Split(res.Stdout, "\n") {
		if strings.HasSuffix(l, " created") || strings.HasSuffix(l, " configured") || strings.HasSuffix(l, " unchanged") {
			r.admitted++
		}
	}
	for _, l := range strings.Split(res.Stderr, "\n") {
		switch {
		case strings.HasPrefix(l, "Error from server"):
			r.denied++
		case strings.HasPrefix(l, "Warning: "):
			r.warnings++
		}
		for _, w := range strings.Fields(l) {
			w = strings.Trim(w, "():,.")
			if len(w) == 8 && strings.HasPrefix(w, "MESH") && !seen[w] && strings.HasPrefix(l, "Error from server") {
				seen[w] = true
				r.findingCodes = append(r.findingCodes, w)
			}
		}
	}
	return r
}

// print writes kubectl's output indented and wrapped at word boundaries, so
// that the one-line denials read well in a terminal; the words are kubectl's.
func (d *demo) print(s string) {
	const width = 116
	for _, line := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		if line == "" {
			continue
		}
		prefix := "   "
		cur := prefix
		for _, w := range strings.Fields(line) {
			if len(cur)+len(w)+1 > width && strings.TrimSpace(cur) != "" {
				fmt.Fprintln(d.out, cur)
				cur = prefix + "    "
			}
			if strings.TrimSpace(cur) != "" {
				cur += " "
			} else if !strings.HasSuffix(cur, " ") {
				cur += " "
			}
			cur += w
		}
		fmt.Fprintln(d.out, cur)
	}
}

// rel shortens a path below the repository root for display.
func (d *demo) rel(p string) string {
	if r, err := filepath.Rel(d.root, p); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return p
}

// cleanup stops meshguard and the control plane and removes every file the
// demo wrote. It is safe after a partial setup.
func (d *demo) cleanup() {
	d.heading("Cleaning up")
	if d.serve != nil && d.serve.Process != nil {
		select {
		case err := <-d.served:
			d.say("meshguard serve had already stopped (%v)", err)
		default:
			_ = d.serve.Process.Signal(os.Interrupt)
			select {
			case <-d.served:
				d.say("stopped meshguard serve")
			case <-time.After(20 * time.Second):
				_ = d.serve.Process.Kill()
				<-d.served
				d.say("killed meshguard serve (it did not stop within 20s)")
			}
		}
	}
	if d.env != nil {
		if err := d.env.Stop(); err != nil {
			d.say("stopping the control plane: %v", err)
		} else {
			d.say("stopped kube-apiserver and etcd")
		}
	}
	if d.tmp != "" {
		if err := os.RemoveAll(d.tmp); err != nil {
			d.say("remove %s: %v", d.tmp, err)
		} else {
			d.say("removed %s", d.tmp)
		}
	}
}

func tailFile(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
