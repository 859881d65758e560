package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	admissionv1 "k8s.io/api/admission/v1"
)

// requestTimeout is the client's bound on one review: the timeoutSeconds of
// meshguard's webhook configuration (the API server gives up after it).
const requestTimeout = 5 * time.Second

// runResult is one open-loop run of one review at one rate.
type runResult struct {
	Review    string
	Offered   float64 // requests/s scheduled
	Scheduled int     // requests scheduled
	Completed int     // responses that were decisions (allow or deny)
	Allowed   int
	Denied    int
	Errors    int    // transport errors, timeouts, non-200, undecodable, wrong UID, error responses
	ErrorText string // the first error
	Elapsed   time.Duration
	// Latency of every request (errors included), from its scheduled send
	// time to the end of its response; sorted.
	Latency []time.Duration
	// SendLag is the client's own delay between the scheduled time and the
	// start of the send (timer overshoot, waiting for a free connection); sorted.
	SendLag []time.Duration
	// Server is the webhook process's counters over the run.
	Server serverStats
	// ClientCPU is the load generator's process CPU over the run.
	ClientCPU time.Duration
	// MachineBusy is the CPU time the whole machine spent busy over the run
	// (/proc/stat); what is neither server nor client is other load.
	MachineBusy time.Duration
}

// OtherCores is the average number of cores busy with neither the server nor
// the load generator during the run: other processes sharing the machine.
func (r *runResult) OtherCores() float64 {
	if r.Elapsed <= 0 || r.MachineBusy <= 0 {
		return 0
	}
	other := r.MachineBusy - r.Server.CPU - r.ClientCPU
	if other < 0 {
		other = 0
	}
	return other.Seconds() / r.Elapsed.Seconds()
}

// Achieved is decisions per second over the run (first scheduled send to last response).
func (r *runResult) Achieved() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Completed) / r.Elapsed.Seconds()
}

// Pct returns the q-quantile (0..1) of sorted durations (nearest rank).
func Pct(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := int(q*float64(len(d))+0.999999) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(d) {
		i = len(d) - 1
	}
	return d[i]
}

// CPUPerDecision is the server's CPU time per decision.
func (r *runResult) CPUPerDecision() time.Duration {
	if r.Server.Decisions == 0 {
		return 0
	}
	return r.Server.CPU / time.Duration(r.Server.Decisions)
}

// BytesPerRequest is what the server allocated per request.
func (r *runResult) BytesPerRequest() float64 {
	if r.Server.Decisions == 0 {
		return 0
	}
	return float64(r.Server.AllocBytes) / float64(r.Server.Decisions)
}

// AllocsPerRequest is how many heap objects the server allocated per request.
func (r *runResult) AllocsPerRequest() float64 {
	if r.Server.Decisions == 0 {
		return 0
	}
	return float64(r.Server.AllocObjs) / float64(r.Server.Decisions)
}

type sample struct {
	latency, lag time.Duration
	allowed, ok  bool
	err          string
}

// openLoop sends rev to url at a fixed rate for dur: request i is scheduled at
// start + i/rate whatever happened to the earlier ones, and its latency is
// measured from that scheduled time, so a slow server cannot hide the requests
// it delayed (coordinated omission). conns workers send the scheduled requests
// over keep-alive connections; a request waits in the queue while every worker
// is busy, and that wait is part of its latency. The run is bounded: rate*dur
// requests, and at most requestTimeout after the last one is scheduled.
func openLoop(ctx context.Context, client poster, rev *review, rate float64, dur time.Duration, conns, uidBase int) *runResult {
	n := int(rate * dur.Seconds())
	if n < 1 {
		n = 1
	}
	interval := time.Duration(float64(time.Second) / rate)
	type job struct {
		i  int
		at time.Time
	}
	queue := make(chan job, n) // never blocks the scheduler
	samples := make([]sample, n)
	var wg sync.WaitGroup
	for w := 0; w < conns; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range queue {
				samples[j.i] = send(ctx, client, w, rev, uidBase+j.i, j.at)
			}
		}()
	}
	start := time.Now().Add(5 * time.Millisecond)
	scheduled := 0
	// The scheduler runs on its own OS thread and sleeps with nanosleep:
	// time.Sleep wakes through the runtime's network poller, whose timeout
	// has millisecond granularity, so it overshoots by 0.5 ms at the median
	// and 1 ms at p99 on an idle process, and that overshoot would be counted
	// as server latency (see preciseSleep).
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		lowerTimerSlack()
		for i := 0; i < n && ctx.Err() == nil; i++ {
			at := start.Add(time.Duration(i) * interval)
			preciseSleep(time.Until(at))
			queue <- job{i, at}
			scheduled++
		}
	}()
	<-done
	close(queue)
	wg.Wait()
	end := time.Now()

	r := &runResult{Review: rev.Name, Offered: rate, Scheduled: scheduled}
	var last time.Time
	for i := 0; i < scheduled; i++ {
		s := samples[i]
		r.Latency = append(r.Latency, s.latency)
		r.SendLag = append(r.SendLag, s.lag)
		if done := start.Add(time.Duration(i)*interval + s.latency); done.After(last) {
			last = done
		}
		switch {
		case !s.ok:
			r.Errors++
			if r.ErrorText == "" {
				r.ErrorText = s.err
			}
		case s.allowed:
			r.Completed++
			r.Allowed++
		default:
			r.Completed++
			r.Denied++
		}
	}
	if last.IsZero() {
		last = end
	}
	r.Elapsed = last.Sub(start)
	sort.Slice(r.Latency, func(i, j int) bool { return r.Latency[i] < r.Latency[j] })
	sort.Slice(r.SendLag, func(i, j int) bool { return r.SendLag[i] < r.SendLag[j] })
	return r
}

// send posts one review and judges the response: HTTP 200 with an
// AdmissionReview whose response echoes the UID and is a decision (allowed,
// or denied as Forbidden). Anything else is an error.
func send(ctx context.Context, client poster, worker int, rev *review, i int, at time.Time) sample {
	body, uid := rev.Body(i)
	sent := time.Now()
	s := sample{lag: sent.Sub(at)}
	status, data, err := client.post(ctx, worker, body)
	s.latency = time.Since(at)
	if err != nil {
		s.err = err.Error()
		return s
	}
	if status != http.StatusOK {
		s.err = fmt.Sprintf("HTTP %d: %.200s", status, data)
		return s
	}
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(data, &out); err != nil || out.Response == nil {
		s.err = fmt.Sprintf("undecodable response: %.200s", data)
		return s
	}
	r := out.Response
	switch {
	case string(r.UID) != uid:
		s.err = fmt.Sprintf("response UID %q, want %q", r.UID, uid)
	case r.Allowed:
		s.ok, s.allowed = true, true
	case r.Result != nil && r.Result.Code == http.StatusForbidden:
		s.ok = true
	default:
		msg := ""
		if r.Result != nil {
			msg = fmt.Sprintf("%d %s", r.Result.Code, r.Result.Message)
		}
		s.err = fmt.Sprintf("error response: %.200s", msg)
	}
	return s
}

// measure runs a warm-up and then a measured open-loop run, bracketing the
// measured run with the server's counters and this process's CPU time.
func measure(ctx context.Context, client poster, srv *child, rev *review, rate float64, warmup, dur time.Duration, conns int, uidBase *int) (*runResult, error) {
	if warmup > 0 {
		w := openLoop(ctx, client, rev, rate, warmup, conns, *uidBase)
		*uidBase += w.Scheduled
	}
	before, err := srv.Stats()
	if err != nil {
		return nil, err
	}
	cpu0, busy0 := processCPU(), machineBusy()
	r := openLoop(ctx, client, rev, rate, dur, conns, *uidBase)
	r.ClientCPU = processCPU() - cpu0
	if busy0 > 0 {
		r.MachineBusy = machineBusy() - busy0
	}
	*uidBase += r.Scheduled
	after, err := srv.Stats()
	if err != nil {
		return nil, err
	}
	r.Server = after.sub(before)
	return r, ctx.Err()
}

// lowerTimerSlack sets the calling thread's timer slack to 1 µs (the default
// is 50 µs), so that its sleeps end when asked. Best effort: without it the
// sleeps are only less precise.
func lowerTimerSlack() {
	_ = unix.Prctl(unix.PR_SET_TIMERSLACK, 1000, 0, 0, 0)
}

// preciseSleep blocks the calling OS thread for d with nanosleep. Unlike
// time.Sleep, whose wake-up goes through the runtime's network poller with a
// millisecond timeout, it returns within tens of microseconds of the deadline.
// The runtime hands the thread's P to other goroutines while it sleeps.
func preciseSleep(d time.Duration) {
	if d <= 0 {
		return
	}
	ts := unix.NsecToTimespec(int64(d))
	for unix.Nanosleep(&ts, &ts) == unix.EINTR {
	}
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// machineBusy is the machine's busy CPU time since boot from /proc/stat
// (every state but idle and iowait), or 0 where that is not available.
func machineBusy() time.Duration {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0
	}
	var busy int64
	for i, v := range f[1:] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0
		}
		if i == 3 || i == 4 || i >= 8 { // idle, iowait; guest time is already in user
			continue
		}
		busy += n
	}
	return time.Duration(busy) * time.Second / 100 // USER_HZ
}
