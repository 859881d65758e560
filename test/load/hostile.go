package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	admissionv1 "k8s.io/api/admission/v1"

	"github.com/meshguard/meshguard/test/e2e/framework"
	"github.com/meshguard/meshguard/test/hostile"
	"github.com/meshguard/meshguard/webhook"
)

// hostileMemoryLimit is the server's Go memory limit in -hostile mode: what
// `meshguard serve` sets in the chart's 512 MiB container at its default
// --memory-limit-ratio 0.9.
const hostileMemoryLimit = "GOMEMLIMIT=460MiB"

// hostileRow is one flood: size bytes per review (0: none), conns concurrent
// senders, against a fresh server process.
type hostileRow struct {
	Size, Conns int
	// Flood outcomes.
	Decided, TooMany, TooLarge, Allowed, Errors int
	FirstError                                  string
	Probe                                       *runResult
	PeakRSS                                     int64
	Runtime                                     string
}

// runHostile measures the hostile-load table (BENCHMARKS.md): for each flood
// size and concurrency, a fresh server process (the production handler and
// budget, GOMEMLIMIT=460MiB) gets the flood of UPDATE reviews of Deployments
// with thousands of offending containers (test/hostile) from conns closed-loop
// senders for cfg.Duration, while the 7 KB Pod review is sent open-loop at
// probeRate; reported are the probe's latency, the flood's outcomes and the
// server's peak RSS.
func runHostile(ctx context.Context, cfg *config, out io.Writer) (int, error) {
	root, err := framework.RepoRoot()
	if err != nil {
		return 1, err
	}
	all, err := loadReviews(root)
	if err != nil {
		return 1, err
	}
	var probe *review
	for _, r := range all {
		if r.Name == "Pod7KB" {
			probe = r
		}
	}
	env := cfg.ServerEnv
	if !slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "GOMEMLIMIT=") }) {
		env = append([]string{hostileMemoryLimit}, env...)
	}
	fmt.Fprintf(out, "meshguard hostile load: flood of UPDATE reviews of Deployments whose every container has findings, sent straight to /validate by closed-loop senders for %s; meanwhile the 7.3 KB Pod review open-loop at %.0f/s; a fresh server per row; server environment %v\n\n",
		cfg.Duration, cfg.HostileProbeRate, env)
	var rows []*hostileRow
	cases := []hostileRow{{}}
	for _, size := range cfg.HostileSizes {
		for _, c := range cfg.HostileConns {
			cases = append(cases, hostileRow{Size: size, Conns: c})
		}
	}
	for _, c := range cases {
		row := c
		if err := measureHostile(ctx, cfg, env, probe, &row); err != nil {
			return 1, err
		}
		rows = append(rows, &row)
		fmt.Fprintf(os.Stderr, "load: hostile %d bytes x %d: probe p99 %s, peak RSS %d MiB\n", row.Size, row.Conns, ms(Pct(row.Probe.Latency, 0.99)), row.PeakRSS>>20)
	}
	fmt.Fprintf(out, "server: %s\n\n", rows[0].Runtime)
	fmt.Fprintln(out, "| flood review | concurrent | flood decided | 429 | 413 | allowed | errors | 7 KB review p50 | p99 | max | 7 KB errors | peak RSS |")
	fmt.Fprintln(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	missed := 0
	for _, r := range rows {
		name := "none"
		if r.Size > 0 {
			name = fmt.Sprintf("%.1f MB", float64(r.Size)/1e6)
		}
		lat := r.Probe.Latency
		fmt.Fprintf(out, "| %s | %d | %d | %d | %d | %d | %d | %s | %s | %s | %d | %d MiB |\n", name, r.Conns, r.Decided, r.TooMany, r.TooLarge, r.Allowed, r.Errors,
			ms(Pct(lat, 0.5)), ms(Pct(lat, 0.99)), ms(lat[len(lat)-1]), r.Probe.Errors, r.PeakRSS>>20)
		if r.FirstError != "" {
			fmt.Fprintf(os.Stderr, "load: hostile %d x %d: first flood error: %s\n", r.Size, r.Conns, r.FirstError)
		}
		if r.Allowed > 0 || r.Probe.Errors > 0 || Pct(lat, 0.99) > time.Second || r.PeakRSS >= 512<<20 {
			missed++
		}
	}
	fmt.Fprintf(out, "\ntarget: no flood allowed, every 7 KB review decided, its p99 <= 1 s, peak RSS < 512 MiB: %s\n", map[bool]string{true: "met", false: fmt.Sprintf("missed in %d rows", missed)}[missed == 0])
	if cfg.Strict && missed > 0 {
		return 3, nil
	}
	return 0, nil
}

func measureHostile(ctx context.Context, cfg *config, env []string, probe *review, row *hostileRow) error {
	srv, err := startChild(childOptions{Handler: handlerMeshguard, Env: env, CPU: -1})
	if err != nil {
		return err
	}
	defer srv.Close()
	row.Runtime = srv.Runtime
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(srv.CAPEM) {
		return errors.New("server CA: no certificate")
	}
	client, err := newPoster(cfg.Client, srv.CAPEM, srv.Addr, webhook.ValidatePath, 4)
	if err != nil {
		return err
	}
	defer client.close()

	fctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var mu sync.Mutex
	if row.Size > 0 {
		body := hostile.Review(row.Size, benchNamespace, "flood")
		hc := &http.Client{
			Timeout: 30 * time.Second,
			Transport: &http.Transport{
				TLSClientConfig:     &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12},
				MaxIdleConnsPerHost: row.Conns,
			},
		}
		defer hc.CloseIdleConnections()
		url := "https://" + srv.Addr + webhook.ValidatePath
		for range row.Conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for fctx.Err() == nil {
					outcome, detail := floodOnce(fctx, hc, url, body)
					mu.Lock()
					switch outcome {
					case "decided":
						row.Decided++
					case "429":
						row.TooMany++
					case "413":
						row.TooLarge++
					case "allowed":
						row.Allowed++
					case "cancelled":
					default:
						row.Errors++
						if row.FirstError == "" {
							row.FirstError = detail
						}
					}
					mu.Unlock()
				}
			}()
		}
	}
	row.Probe = openLoop(ctx, client, probe, cfg.HostileProbeRate, cfg.Duration, 4, 0)
	stop()
	wg.Wait()
	st, err := srv.Stats()
	if err != nil {
		return err
	}
	row.PeakRSS = st.MaxRSSBytes
	return nil
}

// floodOnce sends one flood review and classifies the answer.
func floodOnce(ctx context.Context, hc *http.Client, url string, body []byte) (outcome, detail string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return "error", err.Error()
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return "cancelled", ""
		}
		return "error", err.Error()
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		if ctx.Err() != nil {
			return "cancelled", ""
		}
		return "error", err.Error()
	}
	if resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") != "" {
		return "429", ""
	}
	if resp.StatusCode != http.StatusOK {
		return "error", fmt.Sprintf("HTTP %d", resp.StatusCode)
	}
	var ar admissionv1.AdmissionReview
	if err := json.Unmarshal(data, &ar); err != nil || ar.Response == nil {
		return "error", fmt.Sprintf("undecodable response: %v", err)
	}
	switch r := ar.Response; {
	case r.Allowed:
		return "allowed", ""
	case r.Result != nil && r.Result.Code == http.StatusRequestEntityTooLarge:
		return "413", ""
	case r.Result != nil && r.Result.Code == http.StatusForbidden:
		return "decided", ""
	default:
		return "error", fmt.Sprintf("response %+v", r.Result)
	}
}
