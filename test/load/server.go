package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap/zapcore"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	ctrlzap "sigs.k8s.io/controller-runtime/pkg/log/zap"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/meshguard/meshguard/internal/gotune"
	"github.com/meshguard/meshguard/rules"
	"github.com/meshguard/meshguard/test/e2e/framework"
	"github.com/meshguard/meshguard/webhook"
)

// The webhook server runs in a child process (this binary re-executed with
// envRole=server) so that its CPU time, its allocations and its garbage
// collector are its own: getrusage(RUSAGE_SELF) and runtime/metrics in the
// child measure the server and nothing else, and the load generator's GC
// pauses never show up as server latency.
//
// Protocol: the child prints one JSON line (serverHello) on stdout once it
// serves; then, for every line "stats" read on stdin, it prints one JSON line
// (serverStats). It exits when stdin closes, so it never outlives the parent.
const envRole = "MESHGUARD_LOAD_ROLE"

// envProfile names a directory where the server process writes cpu.pprof
// (the whole run) and allocs.pprof when it exits (-profile).
const envProfile = "MESHGUARD_LOAD_PROFILE"

// envHandler selects the server's HTTP handler (-handler).
const envHandler = "MESHGUARD_LOAD_HANDLER"

// Handlers the server can use.
const (
	handlerMeshguard         = "meshguard"
	handlerControllerRuntime = "controller-runtime"
	handlerFloor             = "floor"
)

func handlerDescription(h string) string {
	switch h {
	case handlerControllerRuntime:
		return "controller-runtime admission.Webhook"
	case handlerFloor:
		return "floor (reads the review, allows it without deciding: the cost of TLS, HTTP and the server alone)"
	}
	return "webhook.ReviewHandler"
}

// benchNamespace is the sidecar-injected namespace of the review objects.
const benchNamespace = "bookinfo"

type serverHello struct {
	Addr  string `json:"addr"`
	CAPEM []byte `json:"caPEM"`
	PID   int    `json:"pid"`
	// Runtime describes the server's Go runtime settings (GOMAXPROCS, GOGC
	// and memory limit as meshguard serve applies them).
	Runtime string `json:"runtime"`
	Error   string `json:"error,omitempty"`
}

// serverStats are cumulative counters of the server process.
type serverStats struct {
	CPU         time.Duration `json:"cpuNs"` // user + system time of the process
	SysCPU      time.Duration `json:"sysCpuNs"`
	Decisions   int64         `json:"decisions"`
	Handshakes  int64         `json:"handshakes"` // TLS handshakes the server started (new connections)
	AllocBytes  uint64        `json:"allocBytes"`
	AllocObjs   uint64        `json:"allocObjects"`
	GCCycles    uint64        `json:"gcCycles"`
	MaxRSSBytes int64         `json:"maxRSSBytes"`
}

func (s serverStats) sub(o serverStats) serverStats {
	return serverStats{
		CPU: s.CPU - o.CPU, SysCPU: s.SysCPU - o.SysCPU, Decisions: s.Decisions - o.Decisions, Handshakes: s.Handshakes - o.Handshakes,
		AllocBytes: s.AllocBytes - o.AllocBytes, AllocObjs: s.AllocObjs - o.AllocObjs,
		GCCycles: s.GCCycles - o.GCCycles, MaxRSSBytes: s.MaxRSSBytes,
	}
}

// counting counts decisions; it adds one atomic increment to the production handler.
type counting struct {
	admission.Handler
	n atomic.Int64
}

func (c *counting) Handle(ctx context.Context, req admission.Request) admission.Response {
	c.n.Add(1)
	return c.Handler.Handle(ctx, req)
}

// newValidator builds the production validating handler: the embedded
// catalog, the default policy, and a context with the sidecar-injected
// namespace and a mesh-wide STRICT PeerAuthentication.
func newValidator() (*webhook.Validator, error) {
	cat, err := rules.DefaultCatalog()
	if err != nil {
		return nil, err
	}
	ev, err := rules.New(cat, nil)
	if err != nil {
		return nil, err
	}
	pol := webhook.DefaultPolicy()
	if err := pol.Validate(cat); err != nil {
		return nil, err
	}
	snap := rules.NewSnapshot()
	snap.AddNamespace(rules.Namespace{Name: benchNamespace, Labels: map[string]string{"istio-injection": "enabled", "kubernetes.io/metadata.name": benchNamespace}})
	snap.Add(rules.Object{"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
		"metadata": map[string]any{"name": "default", "namespace": "istio-system"},
		"spec":     map[string]any{"mtls": map[string]any{"mode": "STRICT"}}}, "default")
	m := webhook.NewMetrics()
	return webhook.NewValidator(ev, snap, pol, m), nil
}

// handshakes counts TLS handshakes (GetConfigForClient runs once per handshake).
var handshakes atomic.Int64

func readStats(decisions int64) serverStats {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	samples := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}, {Name: "/gc/heap/allocs:objects"}, {Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(samples)
	return serverStats{
		CPU: cpu, SysCPU: time.Duration(ru.Stime.Nano()), Decisions: decisions, Handshakes: handshakes.Load(),
		AllocBytes: samples[0].Value.Uint64(), AllocObjs: samples[1].Value.Uint64(), GCCycles: samples[2].Value.Uint64(),
		MaxRSSBytes: ru.Maxrss * 1024,
	}
}

// runServer is the child process: it serves the validating handler the way
// `meshguard serve` registers it (webhook.ReviewHandler on controller-runtime's
// webhook server, or its admission.Webhook with -handler controller-runtime; TLS 1.2
// minimum, HTTP/1.1 only, certificates from a directory, JSON logs) on
// 127.0.0.1 until stdin closes.
func runServer(stdin io.Reader, stdout io.Writer) error {
	out := json.NewEncoder(stdout)
	fail := func(err error) error {
		_ = out.Encode(serverHello{Error: err.Error()})
		return err
	}
	// The production logger (JSON, info level), writing where a container's
	// stderr would go but discarded: the cost of formatting and writing each
	// "decided" line is part of a decision.
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return fail(err)
	}
	defer devnull.Close()
	logger := ctrlzap.New(ctrlzap.WriteTo(devnull), ctrlzap.JSONEncoder(), ctrlzap.Level(zapcore.InfoLevel))
	ctrllog.SetLogger(logger)

	// The garbage collector settings of meshguard serve (its flag defaults;
	// GOGC or GOMEMLIMIT in -server-env win, as they do for serve).
	tuned, err := gotune.Apply(gotune.Options{GCPercent: gotune.DefaultGCPercent, MemoryLimitRatio: gotune.DefaultMemoryLimitRatio}, os.Getenv, "/sys/fs/cgroup")
	if err != nil {
		return fail(err)
	}
	rt := fmt.Sprintf("GOMAXPROCS %d, GOGC %d (%s), memory limit %s (%s), in-flight budget %.1f MiB", runtime.GOMAXPROCS(0), tuned.GCPercent, tuned.GCPercentSource,
		memLimit(tuned.MemoryLimit), tuned.MemoryLimitSource, float64(webhook.InflightBytesFor(tuned.MemoryLimit))/(1<<20))
	if pdir := os.Getenv(envProfile); pdir != "" {
		stop, err := startProfiles(pdir)
		if err != nil {
			return fail(err)
		}
		defer stop()
	}
	dir, err := os.MkdirTemp("", "meshguard-load-certs-")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(dir)
	certs, err := framework.WriteServingCerts(dir)
	if err != nil {
		return fail(err)
	}
	port, err := framework.FreeLoopbackPort()
	if err != nil {
		return fail(err)
	}
	v, err := newValidator()
	if err != nil {
		return fail(err)
	}
	h := &counting{Handler: v}
	// As `meshguard serve` builds it: controller-runtime's webhook server
	// with meshguard's connection timeouts, and (below) the review handler
	// with the in-flight budget derived from the Go memory limit.
	whs := webhook.NewWebhookServer(crwebhook.Options{
		Host: "127.0.0.1", Port: port, CertDir: dir, CertName: framework.CertFile, KeyName: framework.KeyFile,
		TLSOpts: []func(*tls.Config){func(c *tls.Config) {
			c.MinVersion = tls.VersionTLS12
			c.NextProtos = []string{"http/1.1"}
			c.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
				handshakes.Add(1)
				return nil, nil // the config as it is
			}
		}},
	}, webhook.DefaultTimeouts())
	switch os.Getenv(envHandler) {
	case handlerControllerRuntime:
		recoverPanic := true
		whs.Register(webhook.ValidatePath, &crwebhook.Admission{Handler: h, RecoverPanic: &recoverPanic})
	case handlerFloor:
		whs.Register(webhook.ValidatePath, &floorHandler{n: &h.n})
	default:
		// As `meshguard serve` registers it.
		whs.Register(webhook.ValidatePath, webhook.NewReviewHandler(h).WithBudget(webhook.NewBudget(webhook.InflightBytesFor(tuned.MemoryLimit), nil)))
	}

	ctx, cancel := context.WithCancel(ctrllog.IntoContext(context.Background(), logger))
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- whs.Start(ctx) }()
	// Ready once a TLS handshake succeeds (bounded: 10 s).
	ready := whs.StartedChecker()
	deadline := time.Now().Add(10 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodGet, "/", nil)
		if err := ready(req); err == nil {
			break
		}
		select {
		case err := <-errc:
			return fail(fmt.Errorf("webhook server: %v", err))
		default:
		}
		if time.Now().After(deadline) {
			return fail(errors.New("webhook server did not start within 10s"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := out.Encode(serverHello{Addr: fmt.Sprintf("127.0.0.1:%d", port), CAPEM: certs.CAPEM, PID: os.Getpid(), Runtime: rt}); err != nil {
		return err
	}
	sc := bufio.NewScanner(stdin)
	for sc.Scan() {
		if sc.Text() == "stats" {
			if err := out.Encode(readStats(h.n.Load())); err != nil {
				return err
			}
		}
	}
	cancel()
	select {
	case <-errc:
	case <-time.After(5 * time.Second):
	}
	return nil
}

func memLimit(b int64) string {
	if b == math.MaxInt64 {
		return "none"
	}
	return fmt.Sprintf("%d MiB", b>>20)
}

// startProfiles starts a CPU profile into dir/cpu.pprof; the returned function
// stops it and writes the allocation profile to dir/allocs.pprof.
func startProfiles(dir string) (func(), error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.Create(filepath.Join(dir, "cpu.pprof"))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
		runtime.GC()
		if a, err := os.Create(filepath.Join(dir, "allocs.pprof")); err == nil {
			_ = pprof.Lookup("allocs").WriteTo(a, 0)
			a.Close()
		}
	}, nil
}

// floorHandler is the transport floor (-handler floor): it reads the whole
// review, finds the request UID and allows it (denies a dry-run request), with no decoding beyond that and
// no rules, on the same server, TLS and metrics as the real handler. The
// difference between its CPU per request and the real handler's is what
// deciding costs; its own is what any handler on this stack pays.
type floorHandler struct {
	n *atomic.Int64
}

var (
	uidKey    = []byte(`"uid":"`)
	dryRunKey = []byte(`"dryRun":true`)
)

func (f *floorHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 7<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	i := bytes.Index(body, uidKey)
	if i < 0 {
		http.Error(w, "no uid", http.StatusBadRequest)
		return
	}
	uid := body[i+len(uidKey):]
	if j := bytes.IndexByte(uid, '"'); j >= 0 {
		uid = uid[:j]
	}
	f.n.Add(1)
	out := make([]byte, 0, 200)
	out = append(out, `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"`...)
	out = append(out, uid...)
	if bytes.Contains(body, dryRunKey) {
		// The API server measurement's probe (a dry-run create) must be
		// denied, so that the tool can tell when the API server calls this
		// webhook; the measured creates are not dry-run.
		out = append(out, `","allowed":false,"status":{"metadata":{},"code":403,"reason":"Forbidden","message":"floor handler: dry-run probe denied"}}}`...)
	} else {
		out = append(out, `","allowed":true,"status":{"metadata":{},"code":200}}}`...)
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(out)
}
