package webhook

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/meshguard/meshguard/rules"
	"github.com/meshguard/meshguard/test/hostile"
)

func hostileHandler(t testing.TB) *ReviewHandler {
	t.Helper()
	cat, err := rules.DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	ev, err := rules.New(cat, nil)
	if err != nil {
		t.Fatal(err)
	}
	return NewReviewHandler(NewValidator(ev, baseSnapshot(), DefaultPolicy(), nil))
}

func TestInflightBytesFor(t *testing.T) {
	for _, c := range []struct {
		limit, want int64
	}{
		{math.MaxInt64, DefaultInflightBytes},
		{0, DefaultInflightBytes},
		{512 << 20, 512 << 20 / 4 * 3 / HeapPerReviewByte},
		{460 << 20, 460 << 20 / 4 * 3 / HeapPerReviewByte},
		{64 << 20, MinInflightBytes},
	} {
		if got := InflightBytesFor(c.limit); got != c.want {
			t.Errorf("InflightBytesFor(%d) = %d, want %d", c.limit, got, c.want)
		}
	}
}

func TestBudgetKeepsAReserveForSmallReviews(t *testing.T) {
	b := NewBudget(16<<20, nil)
	if !b.tryAcquire(12<<20, false) {
		t.Fatal("a large review within limit-reserve was refused")
	}
	if b.tryAcquire(1, false) {
		t.Fatal("a large review was admitted into the reserve")
	}
	if !b.tryAcquire(SmallReviewBytes, true) {
		t.Fatal("a small review was refused while the reserve is free")
	}
	b.release(12<<20 + SmallReviewBytes)
	if b.InUse() != 0 {
		t.Fatalf("in use after release: %d", b.InUse())
	}
	// The smallest budget still admits one review of the largest size.
	if min := NewBudget(0, nil); !min.tryAcquire(MaxReviewBytes+1, false) {
		t.Errorf("a budget of %d bytes cannot hold a %d-byte review besides its reserve of %d", min.Limit(), MaxReviewBytes, min.reserve)
	}
}

// TestReviewHandlerRefusesWhatDoesNotFit: a review announcing more than the
// budget has free gets 429 with Retry-After and a Status body before its body
// is read, counted with the reason inflight_bytes; never an allow.
func TestReviewHandlerRefusesWhatDoesNotFit(t *testing.T) {
	m := NewLimitMetrics()
	b := NewBudget(MinInflightBytes, m)
	h := hostileHandler(t).WithBudget(b)
	body := hostile.Review(5<<20, "bookinfo", "flood-1")
	// Someone else holds most of the budget.
	if !b.tryAcquire(MinInflightBytes-b.reserve-(1<<20), false) {
		t.Fatal("setup: acquire")
	}
	cr := &countingReader{r: bytes.NewReader(body)}
	req := httptest.NewRequest(http.MethodPost, ValidatePath, cr)
	req.ContentLength = int64(len(body))
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusTooManyRequests {
		t.Fatalf("status %d, want 429; body %.300s", w.Code, w.Body.String())
	}
	if w.Header().Get("Retry-After") != "1" {
		t.Errorf("Retry-After %q", w.Header().Get("Retry-After"))
	}
	if n := cr.n; n != 0 {
		t.Errorf("read %d bytes of a refused body", n)
	}
	var st struct {
		Kind, Reason, Message string
		Code                  int
	}
	if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil || st.Kind != "Status" || st.Code != 429 || st.Reason != "TooManyRequests" || !strings.Contains(st.Message, "--max-inflight-bytes") {
		t.Errorf("body %s (%v)", w.Body.String(), err)
	}
	var got dto.Metric
	if err := m.Rejected.WithLabelValues(RejectInflightBytes).Write(&got); err != nil || got.GetCounter().GetValue() != 1 {
		t.Errorf("rejected{inflight_bytes} = %v (%v)", got.GetCounter().GetValue(), err)
	}

	// A normal review still fits in the reserve and is decided.
	small := reviewOf(t, "admission.k8s.io/v1", "CREATE", map[string]any{
		"apiVersion": "v1", "kind": "Pod", "metadata": map[string]any{"name": "p", "namespace": "bookinfo"},
		"spec": map[string]any{"containers": []any{map[string]any{"name": "app", "image": "app"}}},
	}, nil, "alice")
	out := serve(t, h, small)
	if out.status != http.StatusOK || out.review.Response == nil || out.review.Response.UID == "" {
		t.Errorf("a small review under a full budget was not decided: %d %.300s", out.status, out.raw)
	}
	if b.InUse() != MinInflightBytes-b.reserve-(1<<20) {
		t.Errorf("the handler kept %d bytes after responding", b.InUse()-(MinInflightBytes-b.reserve-(1<<20)))
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// slowBody announces a large body and delivers one byte.
type slowBody struct{ sent bool }

func (s *slowBody) Read(p []byte) (int, error) {
	if s.sent {
		return 0, io.ErrUnexpectedEOF
	}
	s.sent = true
	p[0] = '{'
	return 1, nil
}

// TestReadBodyGrowsWithBytesRead: a body that announces 7 MB and sends one
// byte costs a buffer of the bytes sent, not of the announcement.
func TestReadBodyGrowsWithBytesRead(t *testing.T) {
	req := httptest.NewRequest(http.MethodPost, ValidatePath, &slowBody{})
	req.ContentLength = MaxReviewBytes
	var acquired int64
	buf, err := readBody(req, make([]byte, 0, 16), func(n int64) bool { acquired += n; return true })
	if err == nil {
		t.Fatal("a truncated body read without error")
	}
	if cap(buf) > minGrowBytes || acquired > minGrowBytes {
		t.Errorf("buffer of %d bytes (acquired %d) for one byte read", cap(buf), acquired)
	}
}

// TestFindingMessagesAreCapped: a Deployment with 1,000 offending containers
// is denied with messages that name MaxMessageItems containers and count the
// rest.
func TestFindingMessagesAreCapped(t *testing.T) {
	out := serve(t, hostileHandler(t), hostile.ReviewWithContainers(1000, "bookinfo", "cap"))
	r := out.review.Response
	if r == nil || r.Allowed || r.Result == nil || r.Result.Code != http.StatusForbidden {
		t.Fatalf("not denied: %.300s", out.raw)
	}
	if !strings.Contains(r.Result.Message, "; and 980 more") || len(out.raw) > 16<<10 {
		t.Errorf("response of %d bytes: %.500s", len(out.raw), r.Result.Message)
	}
}

// TestHeapPerReviewByte measures the peak live heap of deciding the hostile
// reviews (GOGC=5, so the heap stays close to what is live; sampled every
// millisecond) and checks it against HeapPerReviewByte, the multiplier the
// default --max-inflight-bytes is derived from.
func TestHeapPerReviewByte(t *testing.T) {
	if testing.Short() {
		t.Skip("decides a 5.6 MB review")
	}
	h := hostileHandler(t)
	for _, n := range []int{5000, 17500} {
		body := hostile.ReviewWithContainers(n, "bookinfo", "heap")
		runtime.GC()
		var base runtime.MemStats
		runtime.ReadMemStats(&base)
		old := debug.SetGCPercent(5)
		var mu sync.Mutex
		peak := base.HeapAlloc
		stop, done := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			tick := time.NewTicker(time.Millisecond)
			defer tick.Stop()
			for {
				var m runtime.MemStats
				runtime.ReadMemStats(&m)
				mu.Lock()
				peak = max(peak, m.HeapAlloc)
				mu.Unlock()
				select {
				case <-stop:
					return
				case <-tick.C:
				}
			}
		}()
		out := serve(t, h, body)
		close(stop)
		<-done
		debug.SetGCPercent(old)
		ratio := float64(peak-base.HeapAlloc) / float64(len(body))
		t.Logf("%d containers, %d-byte review: peak live heap %d MiB, %.1fx the body (HTTP %d)", n, len(body), (peak-base.HeapAlloc)>>20, ratio, out.status)
		if ratio > HeapPerReviewByte {
			t.Errorf("peak heap is %.1fx the review, above HeapPerReviewByte (%d): update it and the --max-inflight-bytes documentation", ratio, HeapPerReviewByte)
		}
	}
}

// denseReview is an UPDATE of a Pod whose spec holds n copies of
// {"a":{}}: 9 bytes of JSON that decode to about 400 bytes of maps.
func denseReview(n int) []byte {
	junk := strings.TrimSuffix(strings.Repeat(`{"a":{}},`, n), ",")
	obj := `{"kind":"Pod","apiVersion":"v1","metadata":{"name":"p","namespace":"bookinfo"},"spec":{"containers":[{"name":"app","image":"app"}],"junk":[` + junk + `]}}`
	return []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"dense","kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},"namespace":"bookinfo","name":"p","operation":"UPDATE","userInfo":{"username":"attacker"},"object":` + obj + `,"oldObject":` + obj + `}}`)
}

// TestDenseJSONPaysForItsHeap: JSON that decodes to far more heap than its
// bytes (empty-object-dense arrays) holds budget for the estimated heap, so a
// review that could never fit is refused with 413 and one that does not fit
// now with 429; neither is allowed.
func TestDenseJSONPaysForItsHeap(t *testing.T) {
	body := denseReview(300_000) // 5.4 MB of JSON, about 230 MB of maps
	m := NewLimitMetrics()
	b := NewBudget(MinInflightBytes, m)
	out := serve(t, hostileHandler(t).WithBudget(b), body)
	r := out.review.Response
	if r == nil || r.Allowed || r.Result == nil || r.Result.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("a review decoding to more than the budget: %d %.300s", out.status, out.raw)
	}
	if b.InUse() != 0 {
		t.Errorf("%d bytes held after the response", b.InUse())
	}
	// With room for it, the same review is decoded and decided.
	big := NewBudget(64<<20, nil)
	out = serve(t, hostileHandler(t).WithBudget(big), denseReview(30_000))
	if r := out.review.Response; r == nil || r.Result == nil || r.Result.Code == http.StatusRequestEntityTooLarge {
		t.Errorf("a dense review within the budget was refused: %.300s", out.raw)
	}
}

// TestOversizedBodiesAreRefusedUnread: a review announcing more than
// MaxReviewBytes gets 413 and the connection is closed without its body being
// read (decrypting it would let a flood of them take the CPU).
func TestOversizedBodiesAreRefusedUnread(t *testing.T) {
	cr := &countingReader{r: bytes.NewReader(make([]byte, MaxReviewBytes+10))}
	req := httptest.NewRequest(http.MethodPost, ValidatePath, cr)
	req.ContentLength = MaxReviewBytes + 10
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	hostileHandler(t).WithBudget(NewBudget(MinInflightBytes, nil)).ServeHTTP(w, req)
	var ar struct {
		Response struct {
			Allowed bool
			Status  struct{ Code int }
		}
	}
	if err := json.Unmarshal(w.Body.Bytes(), &ar); err != nil || ar.Response.Allowed || ar.Response.Status.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("response %s (%v)", w.Body.String(), err)
	}
	if cr.n != 0 || w.Header().Get("Connection") != "close" {
		t.Errorf("read %d bytes; Connection %q", cr.n, w.Header().Get("Connection"))
	}
}

// TestLargeReviewsAreDecidedAFewAtATime: while LargeReviewsAtOnce large
// reviews are being decided, another gets 429 unread; a small one is decided.
func TestLargeReviewsAreDecidedAFewAtATime(t *testing.T) {
	b := NewBudget(64<<20, nil)
	for range cap(b.large) {
		if !b.tryLarge() {
			t.Fatal("setup: a free slot was refused")
		}
	}
	h := hostileHandler(t).WithBudget(b)
	body := hostile.ReviewWithContainers(1000, "bookinfo", "large")
	cr := &countingReader{r: bytes.NewReader(body)}
	req := httptest.NewRequest(http.MethodPost, ValidatePath, cr)
	req.ContentLength = int64(len(body))
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusTooManyRequests || cr.n != 0 || !strings.Contains(w.Body.String(), "reviews larger than 64 KiB are being decided") {
		t.Fatalf("status %d after reading %d bytes: %s", w.Code, cr.n, w.Body.String())
	}
	small := reviewOf(t, "admission.k8s.io/v1", "CREATE", map[string]any{
		"apiVersion": "v1", "kind": "Pod", "metadata": map[string]any{"name": "p", "namespace": "bookinfo"},
		"spec": map[string]any{"containers": []any{map[string]any{"name": "app", "image": "app"}}},
	}, nil, "alice")
	if out := serve(t, h, small); out.status != http.StatusOK || out.review.Response == nil {
		t.Errorf("a small review while the large slots are taken: %d %.300s", out.status, out.raw)
	}
	b.releaseLarge()
	w = httptest.NewRecorder()
	req = httptest.NewRequest(http.MethodPost, ValidatePath, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	h.ServeHTTP(w, req)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"allowed":false`) {
		t.Errorf("a large review with a free slot: %d %.300s", w.Code, w.Body.String())
	}
}

// TestGuardBoundsOtherHandlers: the mutating webhook's handler, guarded, gets
// no request that does not fit (429) or is over the size limit (413), and the
// budget is released after each request.
func TestGuardBoundsOtherHandlers(t *testing.T) {
	b := NewBudget(MinInflightBytes, nil)
	calls := 0
	h := b.Guard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		if b.InUse() == 0 {
			t.Error("the request holds nothing while it is handled")
		}
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	do := func(n int64) int {
		req := httptest.NewRequest(http.MethodPost, MutatePath, bytes.NewReader(make([]byte, max(n, 0))))
		req.ContentLength = n
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w.Code
	}
	if code := do(2 << 10); code != http.StatusOK || calls != 1 {
		t.Errorf("a small review: %d, %d calls", code, calls)
	}
	if code := do(MaxReviewBytes + 1); code != http.StatusRequestEntityTooLarge || calls != 1 {
		t.Errorf("an oversized review: %d, %d calls", code, calls)
	}
	b.tryAcquire(b.cap(false), false)
	if code := do(1 << 20); code != http.StatusTooManyRequests || calls != 1 {
		t.Errorf("a large review over a full budget: %d, %d calls", code, calls)
	}
	b.release(b.cap(false))
	if b.InUse() != 0 {
		t.Errorf("%d bytes held after the requests", b.InUse())
	}
}
