package main

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshguard/meshguard/test/e2e/framework"
)

// TestMain lets the test binary be the webhook server process too (the load
// tool re-executes itself, and under `go test` that is the test binary).
func TestMain(m *testing.M) {
	if os.Getenv(envRole) == "server" {
		if err := runServer(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "load: server:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestLoadSmoke runs the whole tool briefly at a low rate against the real
// server process: every review is decided, the counters add up, and the
// table and verdicts are printed.
func TestLoadSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server process")
	}
	cfg, err := parseFlags([]string{"-duration", "300ms", "-warmup", "100ms", "-rates", "50,1000", "-api", "off"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := measureAll(ctx, cfg, &out)
	if err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + out.String())
	if len(rep.Runs) != 6 {
		t.Fatalf("want 3 reviews x 2 rates, got %d runs", len(rep.Runs))
	}
	for _, r := range rep.Runs {
		want := int(r.Offered * 0.3)
		if r.Scheduled != want || r.Errors != 0 || r.Completed != want || len(r.Latency) != want {
			t.Errorf("%s @%.0f/s: scheduled %d, completed %d, errors %d (%s); want %d decided", r.Review, r.Offered, r.Scheduled, r.Completed, r.Errors, r.ErrorText, want)
		}
		// The warm-up is outside the window: the server decided exactly the measured requests.
		if r.Server.Decisions != int64(want) || r.Server.CPU <= 0 || r.Server.AllocBytes == 0 {
			t.Errorf("%s @%.0f/s: server counters %+v, want %d decisions with CPU and allocations", r.Review, r.Offered, r.Server, want)
		}
		if r.Latency[0] <= 0 || r.Achieved() <= 0 {
			t.Errorf("%s: no latency or rate measured", r.Review)
		}
		// The bench Deployment adds NET_RAW: the whole catalog runs and denies it.
		if r.Review == "Deployment" && r.Denied != want {
			t.Errorf("Deployment: want every review denied, got %d allowed, %d denied", r.Allowed, r.Denied)
		}
	}
	// -floor is on by default: the same matrix against the floor handler,
	// which decides nothing and so allows everything.
	if len(rep.Floor) != len(rep.Runs) {
		t.Fatalf("want a floor run per run, got %d", len(rep.Floor))
	}
	for i, f := range rep.Floor {
		want := int(f.Offered * 0.3)
		if f.Review != rep.Runs[i].Review || f.Offered != rep.Runs[i].Offered || f.Allowed != want || f.Errors != 0 || f.Server.Decisions != int64(want) {
			t.Errorf("floor %s @%.0f/s: allowed %d, errors %d, server counted %d; want %d allowed and counted", f.Review, f.Offered, f.Allowed, f.Errors, f.Server.Decisions, want)
		}
	}
	for _, s := range []string{"p99.9", "srv CPU/decision", "server CPU per decision <= 150 µs", "Pod7KB @1000/s: p99 <= 2 ms",
		"deciding alone (handler - floor)", "GOGC 400 (flag)", "GOMAXPROCS"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("output lacks %q", s)
		}
	}
}

// TestLoadPinned runs the server pinned to CPU 0: it must see one CPU and
// report GOMAXPROCS 1, and the environment from -server-env must reach it.
func TestLoadPinned(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server process")
	}
	if runtime.NumCPU() < 2 {
		t.Skip("-pin needs 2 CPUs")
	}
	cfg, err := parseFlags([]string{"-duration", "200ms", "-warmup", "0s", "-rates", "100", "-reviews", "PeerAuthentication", "-api", "off",
		"-floor=false", "-pin", "-server-env", "GOGC=250"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := pinSelf(-1); err != nil { // every CPU again
			t.Error(err)
		}
	}()
	var out strings.Builder
	rep, err := measureAll(context.Background(), cfg, &out)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Runs) != 1 || rep.Runs[0].Completed != 20 || rep.Floor != nil {
		t.Fatalf("want one run of 20 decisions and no floor, got %+v", rep.Runs)
	}
	for _, s := range []string{"GOMAXPROCS 1, GOGC 250 (GOGC)", "pinned: server on CPU 0"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("output lacks %q:\n%s", s, out.String())
		}
	}
}

// TestLoadCountsErrors proves the load test can fail: a server that answers
// with errors, wrong UIDs or garbage gets every request counted as an error,
// and the targets are reported missed.
func TestLoadCountsErrors(t *testing.T) {
	root, err := framework.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	reviews, err := loadReviews(root)
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		switch n.Add(1) % 3 {
		case 0:
			http.Error(w, "boom", http.StatusInternalServerError)
		case 1:
			_, _ = io.WriteString(w, `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"someone-else","allowed":true}}`)
		default:
			_, _ = io.WriteString(w, `not json`)
		}
	}))
	srv.Config.SetKeepAlivesEnabled(true)
	srv.StartTLS()
	defer srv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	var r *runResult
	for _, client := range []poster{
		&httpPoster{client: srv.Client(), url: srv.URL + "/validate"},
		newRawPoster(pool, srv.Listener.Addr().String(), "/validate", 2),
	} {
		r = openLoop(context.Background(), client, reviews[0], 200, 150*time.Millisecond, 2, 0)
		client.close()
		if r.Scheduled != 30 || r.Errors != 30 || r.Completed != 0 || r.ErrorText == "" {
			t.Fatalf("%T: want 30 errors of 30, got scheduled %d, errors %d, completed %d (%q)", client, r.Scheduled, r.Errors, r.Completed, r.ErrorText)
		}
	}
	r.Offered = 1000 // judge it as the 1,000/s run
	vs := verdicts([]*runResult{r}, []*apiResult{{Etcd: etcdFsync, With: []time.Duration{3}, Without: []time.Duration{2}}})
	var missed []string
	for _, v := range vs {
		if !v.OK {
			missed = append(missed, v.Target)
		}
	}
	if len(missed) != 2 || !strings.Contains(missed[0], "p99 <= 2 ms, 0 errors") || !strings.Contains(missed[1], "1.15x") || !strings.Contains(missed[1], "etcd fsync") {
		t.Errorf("want the 1,000/s and the API server targets missed, got %q", missed)
	}
}

// TestAPISkipsWithoutControlPlane: without bin/kube-apiserver the API server
// part is skipped with a message, not failed.
func TestAPISkipsWithoutControlPlane(t *testing.T) {
	res, err := runAPI(context.Background(), t.TempDir(), nil, 10, 1, etcdFsync, t.Logf)
	if err != nil || !res.Skipped || !strings.Contains(res.SkipReason, "make tools") {
		t.Fatalf("want a skip naming make tools, got %+v, %v", res, err)
	}
}

func TestFlagsAreBounded(t *testing.T) {
	for _, args := range [][]string{{"-rates", "0"}, {"-rates", "x"}, {"-duration", "1h"}, {"-reviews", "Secret"}, {"-api", "maybe"}, {"-conns", "0"},
		{"-etcd", "ssd"}, {"-client", "curl"}, {"-server-env", "GOGC"}, {"-server-env", "=1"}} {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("%q: want an error", args)
		}
	}
}

func TestPct(t *testing.T) {
	d := make([]time.Duration, 1000)
	for i := range d {
		d[i] = time.Duration(i + 1)
	}
	for q, want := range map[float64]time.Duration{0.5: 500, 0.9: 900, 0.99: 990, 0.999: 999, 1: 1000} {
		if got := Pct(d, q); got != want {
			t.Errorf("Pct(%v) = %d, want %d", q, got, want)
		}
	}
	if Pct(nil, 0.5) != 0 {
		t.Error("Pct of nothing")
	}
}

// TestRawPosterHTTP: the raw client reads chunked bodies, follows the server
// closing the connection (and dials again), and keeps connections alive
// otherwise.
func TestRawPosterHTTP(t *testing.T) {
	var n atomic.Int64
	big := strings.Repeat("x", 10000)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		i := n.Add(1)
		if i%3 == 0 {
			w.Header().Set("Connection", "close")
		}
		_, _ = io.WriteString(w, string(body)+":")
		w.(http.Flusher).Flush() // forces a chunked response
		_, _ = io.WriteString(w, big)
	}))
	var conns atomic.Int64
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.StartTLS()
	defer srv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	p := newRawPoster(pool, srv.Listener.Addr().String(), "/validate", 1)
	defer p.close()
	for i := 0; i < 9; i++ {
		body := fmt.Sprintf("req-%d", i)
		status, data, err := p.post(context.Background(), 0, []byte(body))
		if err != nil || status != http.StatusOK || string(data) != body+":"+big {
			t.Fatalf("request %d: status %d, %d bytes, %v", i, status, len(data), err)
		}
	}
	if got := conns.Load(); got != 3 {
		t.Errorf("want 3 connections (the server closes every third response), got %d", got)
	}
}

// TestHostileSmoke runs -hostile briefly (one 1 MB flood row with two senders
// besides the baseline): no flood review is allowed, every 7 KB review is
// decided, and the table is printed.
func TestHostileSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server processes")
	}
	cfg, err := parseFlags([]string{"-hostile", "-duration", "500ms", "-hostile-sizes", "1000000", "-hostile-conns", "2", "-hostile-rate", "20", "-strict"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code, err := runHostile(ctx, cfg, &out)
	t.Log("\n" + out.String())
	if err != nil || code != 0 {
		t.Fatalf("runHostile: exit %d, %v", code, err)
	}
	for _, s := range []string{"| none | 0 |", "| 1.0 MB | 2 |", "in-flight budget 17.2 MiB", "target: no flood allowed"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("output lacks %q", s)
		}
	}
}
