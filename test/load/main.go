// Command load is a loopback load test of meshguard's HTTPS validating
// webhook, run by `make bench` (see BENCHMARKS.md, "Webhook over HTTPS").
//
// It starts the production validating handler (the embedded catalog, the
// default policy, controller-runtime's webhook server with TLS 1.2+ and
// HTTP/1.1 only) in a child process on 127.0.0.1, sends AdmissionReviews to it
// open-loop at fixed rates over keep-alive connections, and reports latency
// percentiles from the scheduled send time, achieved rate, errors, and the
// server's CPU time and allocations per decision. Then, when bin/ holds the
// control plane (`make tools`), it measures Deployment creates through a real
// kube-apiserver with and without meshguard registered.
//
//	go run ./test/load                                # the full run of `make bench`
//	go run ./test/load -duration 3s -rates 1000 -api=off
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/meshguard/meshguard/test/e2e/framework"
	"github.com/meshguard/meshguard/webhook"
)

type config struct {
	Duration, Warmup time.Duration
	Rates            []float64
	Reviews          []string
	Conns            int
	API              string // auto, off, required
	Creates, Rounds  int
	Strict           bool
	Profile          string
	Handler          string // meshguard, controller-runtime or floor
	Floor            bool   // also measure the floor handler, for the cost of deciding alone
	Pin              bool   // server on CPU 0, load generator on the others
	ServerEnv        []string
	Etcd             []string // etcdNoFsync and/or etcdFsync
	Client           string   // clientRaw or clientNetHTTP
	// Hostile runs the hostile-load table instead (runHostile).
	Hostile          bool
	HostileSizes     []int
	HostileConns     []int
	HostileProbeRate float64
}

// The etcd configurations the API server measurement can use.
const (
	etcdNoFsync = "no-fsync" // envtest's default: etcd never waits for the disk
	etcdFsync   = "fsync"    // as a production etcd: every commit is fsynced
)

func main() {
	if os.Getenv(envRole) == "server" {
		if err := runServer(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "load: server:", err)
			os.Exit(1)
		}
		return
	}
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code, err := run(ctx, cfg, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &config{}
	rates := fs.String("rates", "500,1000,2000", "offered rates in requests/s, comma-separated")
	reviews := fs.String("reviews", "Pod7KB,Deployment,PeerAuthentication", "reviews to send, comma-separated")
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "measured duration of each run (review x rate)")
	fs.DurationVar(&c.Warmup, "warmup", 2*time.Second, "unmeasured warm-up before each run, at the same rate")
	fs.IntVar(&c.Conns, "conns", 32, "maximum keep-alive connections (and concurrent requests)")
	fs.StringVar(&c.API, "api", "auto", "create latency through a real API server: auto (skip if bin/kube-apiserver is missing), off, required")
	fs.IntVar(&c.Creates, "creates", 300, "measured Deployment creates per condition (with and without the webhook)")
	fs.IntVar(&c.Rounds, "rounds", 3, "alternating rounds the creates are split into")
	fs.BoolVar(&c.Strict, "strict", false, "exit 3 when a target is missed")
	fs.StringVar(&c.Profile, "profile", "", "directory for the server process's CPU and allocation profiles (go tool pprof)")
	fs.StringVar(&c.Handler, "handler", handlerMeshguard, "the server's HTTP handler: meshguard (webhook.ReviewHandler, as `meshguard serve` registers it) controller-runtime (its admission.Webhook, the handler before, for comparison) or floor (allows every review without deciding: the cost of TLS, HTTP and the server alone)")
	fs.BoolVar(&c.Floor, "floor", true, "also measure the floor handler (-handler floor) at the same reviews and rates, and report the server CPU of deciding alone (this handler minus the floor)")
	fs.BoolVar(&c.Pin, "pin", false, "pin the server to CPU 0 (it then runs with GOMAXPROCS 1) and the load generator to the other CPUs, so they do not compete for a core")
	serverEnv := fs.String("server-env", "", `extra environment of the server process, space-separated (e.g. "GOGC=100 GOMAXPROCS=1"; GOGC and GOMEMLIMIT override meshguard serve's --gc-percent and --memory-limit-ratio defaults, which the server applies)`)
	etcd := fs.String("etcd", etcdNoFsync+","+etcdFsync, "etcd configurations for the API server creates, comma-separated: no-fsync (envtest's default) and fsync (as production etcd)")
	fs.StringVar(&c.Client, "client", clientRaw, "load generator's HTTP client: raw (a TLS connection per worker, HTTP/1.1 written directly and read with net/http's parser: less client CPU and no goroutine hand-offs per request) or net/http (http.Client, as the API server's webhook client)")
	fs.BoolVar(&c.Hostile, "hostile", false, "measure the hostile-load table instead: floods of large UPDATE reviews (-hostile-sizes, -hostile-conns senders) while the 7 KB Pod review is sent at -hostile-rate; the server runs with GOMEMLIMIT=460MiB unless -server-env sets one")
	hostileSizes := fs.String("hostile-sizes", "1000000,5000000,10000000", "-hostile: flood review sizes in bytes, comma-separated")
	hostileConns := fs.String("hostile-conns", "4,16", "-hostile: concurrent flood senders, comma-separated")
	fs.Float64Var(&c.HostileProbeRate, "hostile-rate", 50, "-hostile: rate of the 7 KB review during the flood, requests/s")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		flag string
		in   *string
		out  *[]int
	}{{"-hostile-sizes", hostileSizes, &c.HostileSizes}, {"-hostile-conns", hostileConns, &c.HostileConns}} {
		for _, s := range strings.Split(*f.in, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || n <= 0 {
				fmt.Fprintf(stderr, "load: %s: %q is not a positive integer\n", f.flag, s)
				return nil, fmt.Errorf("%s: %q", f.flag, s)
			}
			*f.out = append(*f.out, n)
		}
	}
	bad := func(format string, a ...any) error {
		err := fmt.Errorf(format, a...)
		fmt.Fprintln(stderr, "load:", err)
		return err
	}
	for _, s := range strings.Split(*rates, ",") {
		r, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || r <= 0 || r > 20000 {
			return nil, bad("-rates: %q is not a rate in (0, 20000]", s)
		}
		c.Rates = append(c.Rates, r)
	}
	c.ServerEnv = strings.Fields(*serverEnv)
	for _, kv := range c.ServerEnv {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return nil, bad("-server-env: %q is not NAME=VALUE", kv)
		}
	}
	for _, e := range strings.Split(*etcd, ",") {
		switch e = strings.TrimSpace(e); e {
		case etcdNoFsync, etcdFsync:
			c.Etcd = append(c.Etcd, e)
		default:
			return nil, bad("-etcd: %q is not no-fsync or fsync", e)
		}
	}
	known := map[string]bool{}
	for _, s := range reviewSpecs {
		known[s.name] = true
	}
	for _, s := range strings.Split(*reviews, ",") {
		if s = strings.TrimSpace(s); !known[s] {
			return nil, bad("-reviews: unknown review %q", s)
		}
		c.Reviews = append(c.Reviews, s)
	}
	switch {
	case c.Duration <= 0 || c.Duration > 5*time.Minute:
		return nil, bad("-duration: must be in (0, 5m]")
	case c.Warmup < 0 || c.Warmup > time.Minute:
		return nil, bad("-warmup: must be in [0, 1m]")
	case c.Conns < 1 || c.Conns > 1024:
		return nil, bad("-conns: must be in [1, 1024]")
	case c.Pin && runtime.NumCPU() < 2:
		return nil, bad("-pin: needs at least 2 CPUs, this machine has %d", runtime.NumCPU())
	case c.Client != clientRaw && c.Client != clientNetHTTP:
		return nil, bad("-client: raw or net/http")
	case c.Handler != handlerMeshguard && c.Handler != handlerControllerRuntime && c.Handler != handlerFloor:
		return nil, bad("-handler: meshguard, controller-runtime or floor")
	case c.API != "auto" && c.API != "off" && c.API != "required":
		return nil, bad("-api: auto, off or required")
	case c.Creates < 1 || c.Creates > 10000 || c.Rounds < 1 || c.Rounds > c.Creates:
		return nil, bad("-creates must be in [1, 10000] and -rounds in [1, creates]")
	}
	return c, nil
}

// report is everything one run measured.
type report struct {
	Runs     []*runResult
	Floor    []*runResult // the floor handler's runs, in the same order (-floor)
	API      []*apiResult
	FloorAPI []*apiResult // the same with the floor handler registered instead
	Verdicts []verdict
	Missed   int
}

// run measures and prints; the exit code is 3 when -strict and a target was missed.
func run(ctx context.Context, cfg *config, out io.Writer) (int, error) {
	if cfg.Hostile {
		return runHostile(ctx, cfg, out)
	}
	rep, err := measureAll(ctx, cfg, out)
	if err != nil {
		return 1, err
	}
	if cfg.Strict && rep.Missed > 0 {
		return 3, nil
	}
	return 0, nil
}

func measureAll(ctx context.Context, cfg *config, out io.Writer) (*report, error) {
	root, err := framework.RepoRoot()
	if err != nil {
		return nil, err
	}
	all, err := loadReviews(root)
	if err != nil {
		return nil, err
	}
	var reviews []*review
	for _, name := range cfg.Reviews {
		for _, r := range all {
			if r.Name == name {
				reviews = append(reviews, r)
			}
		}
	}
	logf := func(format string, a ...any) { fmt.Fprintf(os.Stderr, "load: "+format+"\n", a...) }

	co := childOptions{Handler: cfg.Handler, Env: cfg.ServerEnv, CPU: -1}
	if cfg.Profile != "" {
		abs, err := filepath.Abs(cfg.Profile)
		if err != nil {
			return nil, err
		}
		co.Profile = abs
	}
	if cfg.Pin {
		co.CPU = 0
		if err := pinSelf(0); err != nil {
			return nil, err
		}
	}
	srv, err := startChild(co)
	if err != nil {
		return nil, err
	}
	defer srv.Close()

	host, _ := os.Hostname()
	fmt.Fprintf(out, "meshguard webhook load test: %s %s/%s, %d CPUs, host %s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), host)
	fmt.Fprintf(out, "server: child process (pid %d), controller-runtime webhook server, handler %s, TLS 1.2+, HTTP/1.1 only, https://%s, %s\n",
		srv.cmd.Process.Pid, handlerDescription(cfg.Handler), srv.Addr, srv.Runtime)
	fmt.Fprintf(out, "client: %s, up to %d keep-alive connections, open loop, GOMAXPROCS %d", cfg.Client, cfg.Conns, runtime.GOMAXPROCS(0))
	if cfg.Pin {
		fmt.Fprintf(out, "; pinned: server on CPU 0, load generator on CPUs 1-%d", runtime.NumCPU()-1)
	}
	fmt.Fprintf(out, "\nruns: %s measured after %s warm-up at the same rate; latency from the scheduled send time\n", cfg.Duration, cfg.Warmup)
	for _, r := range reviews {
		fmt.Fprintf(out, "review %s: object %d bytes, AdmissionReview %d bytes\n", r.Name, r.ObjectLen, len(r.body))
	}
	fmt.Fprintln(out)

	rep := &report{}
	uid := 0
	if rep.Runs, err = measureMatrix(ctx, srv, cfg, reviews, &uid, logf); err != nil {
		return nil, err
	}
	printRuns(out, rep.Runs)
	fmt.Fprintln(out)

	var floor *child
	if cfg.Floor && cfg.Handler != handlerFloor {
		fco := co
		fco.Handler, fco.Profile = handlerFloor, ""
		if floor, err = startChild(fco); err != nil {
			return nil, err
		}
		defer floor.Close()
		logf("floor handler (pid %d)", floor.cmd.Process.Pid)
		if rep.Floor, err = measureMatrix(ctx, floor, cfg, reviews, &uid, logf); err != nil {
			return nil, fmt.Errorf("floor: %w", err)
		}
		fmt.Fprintf(out, "floor: %s\n", handlerDescription(handlerFloor))
		printRuns(out, rep.Floor)
		fmt.Fprintln(out)
		printDecisionCost(out, rep.Runs, rep.Floor)
		fmt.Fprintln(out)
	}

	if cfg.API != "off" {
		for _, mode := range cfg.Etcd {
			api, err := runAPI(ctx, root, srv, cfg.Creates, cfg.Rounds, mode, logf)
			if err != nil {
				return nil, fmt.Errorf("API server creates (etcd %s): %w", mode, err)
			}
			if api.Skipped {
				if cfg.API == "required" {
					return nil, errors.New(api.SkipReason)
				}
				fmt.Fprintf(out, "SKIPPED creates through the API server: %s\n\n", api.SkipReason)
				break
			}
			printAPI(out, api, "meshguard")
			rep.API = append(rep.API, api)
			if floor != nil {
				fa, err := runAPI(ctx, root, floor, cfg.Creates, cfg.Rounds, mode, logf)
				if err != nil {
					return nil, fmt.Errorf("API server creates with the floor handler (etcd %s): %w", mode, err)
				}
				printAPI(out, fa, "the floor handler (what any webhook costs here)")
				rep.FloorAPI = append(rep.FloorAPI, fa)
			}
		}
	}
	rep.Verdicts = verdicts(rep.Runs, rep.API)
	rep.Missed = printVerdicts(out, rep.Verdicts)
	return rep, nil
}

// measureMatrix runs every review at every rate against srv.
func measureMatrix(ctx context.Context, srv *child, cfg *config, reviews []*review, uid *int, logf func(string, ...any)) ([]*runResult, error) {
	client, err := newPoster(cfg.Client, srv.CAPEM, srv.Addr, webhook.ValidatePath, cfg.Conns)
	if err != nil {
		return nil, err
	}
	defer client.close()
	var runs []*runResult
	for _, rev := range reviews {
		for _, rate := range cfg.Rates {
			logf("%s at %.0f/s for %s (+%s warm-up)", rev.Name, rate, cfg.Duration, cfg.Warmup)
			r, err := measure(ctx, client, srv, rev, rate, cfg.Warmup, cfg.Duration, cfg.Conns, uid)
			if err != nil {
				return nil, err
			}
			runs = append(runs, r)
		}
	}
	return runs, nil
}

func printAPI(w io.Writer, a *apiResult, webhookName string) {
	fmt.Fprintf(w, "Deployment creates through kube-apiserver, etcd %s (client-go, sequential, %d rounds alternating without/with the webhook; control plane started in %s)\n",
		a.Etcd, a.Rounds, a.Startup.Round(time.Millisecond))
	fmt.Fprintf(w, "  without webhook: n=%d  p50 %s  p90 %s  p99 %s\n", len(a.Without), ms(Pct(a.Without, .5)), ms(Pct(a.Without, .9)), ms(Pct(a.Without, .99)))
	fmt.Fprintf(w, "  with %s:  n=%d  p50 %s  p90 %s  p99 %s  (webhook decisions during these creates: %d, new TLS connections: %d)\n", webhookName, len(a.With), ms(Pct(a.With, .5)), ms(Pct(a.With, .9)), ms(Pct(a.With, .99)), a.WebhookCalls, a.Handshakes)
	fmt.Fprintf(w, "  ratio with/without: p50 %.2fx, p99 %.2fx; errors %d %s\n\n", a.Ratio(), a.RatioP99(), a.Errors, a.ErrorText)
}
