package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	admissionmetrics "sigs.k8s.io/controller-runtime/pkg/webhook/admission/metrics"
)

// MaxReviewBytes bounds an AdmissionReview's body: two objects of at most
// 3 MiB each (MaxObjectBytes) and the rest of the request, as
// controller-runtime's limit.
const MaxReviewBytes = 7 << 20

// ReviewHandler serves AdmissionReviews over HTTP for an admission.Handler,
// in place of controller-runtime's admission.Webhook (it is registered on the
// same controller-runtime webhook server, which keeps TLS, certificate reload
// and the request metrics). It behaves as admission.Webhook does (the same
// errors for empty, oversized, mistyped and malformed reviews, panic recovery,
// the response echoing the request's UID in the request's AdmissionReview
// version) and decides the same, but cheaper:
//
//   - the body is read once into a pooled buffer that grows with the bytes
//     actually read (never to an announced Content-Length up front), and
//     with a Budget (WithBudget) the bytes of reviews in flight are bounded:
//     a review that does not fit is refused with 429 before it is read;
//   - the review is decoded in one pass, object and oldObject straight into
//     the maps the rules evaluate (see decodeReview), where controller-runtime
//     parses the body twice and copies the objects for the handler to decode
//     a third time; metadata.managedFields, which no rule reads, is skipped;
//   - no logger is built per request (the Validator adds the request's fields
//     to the lines it logs);
//   - the response is encoded into a pooled buffer.
//
// The request handed to Handler refers to the pooled body (RawExtension.Raw):
// it must not be kept after Handle returns.
type ReviewHandler struct {
	handler admission.Handler
	log     logr.Logger
	budget  *Budget
}

var _ http.Handler = (*ReviewHandler)(nil)

// NewReviewHandler returns the HTTP handler of a validating admission.Handler.
func NewReviewHandler(h admission.Handler) *ReviewHandler {
	log := logf.Log.WithName("admission")
	return &ReviewHandler{handler: h, log: log}
}

// WithBudget bounds the bytes of reviews in flight (nil: unbounded) and
// returns h.
func (h *ReviewHandler) WithBudget(b *Budget) *ReviewHandler {
	h.budget = b
	return h
}

// buffers pools request bodies, response bodies and decoders.
type buffers struct {
	body []byte
	out  bytes.Buffer
	dec  jsonReader
}

// maxPooledBytes keeps rare large reviews from pinning memory in the pool.
const maxPooledBytes = 256 << 10

var bufferPool = sync.Pool{New: func() any { return &buffers{body: make([]byte, 0, 16<<10)} }}

var jsonContentType = []string{"application/json"}

func (h *ReviewHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b := bufferPool.Get().(*buffers)
	defer func() {
		if cap(b.body) > maxPooledBytes || b.out.Cap() > maxPooledBytes {
			return
		}
		clear(b.dec.stack[:cap(b.dec.stack)])
		b.dec = jsonReader{stack: b.dec.stack[:0]}
		b.body = b.body[:0]
		b.out.Reset()
		bufferPool.Put(b)
	}()

	if r.Body == nil || r.Body == http.NoBody {
		err := errors.New("request body is empty")
		h.log.Error(err, "bad request")
		h.write(w, b, admission.Errored(http.StatusBadRequest, err), nil)
		return
	}
	defer r.Body.Close()
	small := r.ContentLength >= 0 && r.ContentLength <= SmallReviewBytes
	if h.budget != nil && r.ContentLength > 0 && r.ContentLength <= MaxReviewBytes {
		// Refused before reading: the announced body does not fit, or it is
		// large and the large reviews' slots are taken.
		if !h.budget.fits(r.ContentLength, small) {
			h.budget.writeOverloaded(w, RejectInflightBytes)
			return
		}
		if !small && !h.budget.largeFree() {
			h.budget.writeOverloaded(w, RejectLargeBusy)
			return
		}
	}
	var held int64
	acquire := func(n int64) bool {
		if h.budget == nil {
			return true
		}
		if !h.budget.tryAcquire(n, small) {
			return false
		}
		held += n
		return true
	}
	defer func() {
		if h.budget != nil {
			h.budget.release(held)
		}
	}()
	body, err := readBody(r, b.body[:0], acquire)
	b.body = body
	if errors.Is(err, errOverBudget) {
		h.budget.writeOverloaded(w, RejectInflightBytes)
		return
	}
	if err != nil {
		code := int32(http.StatusBadRequest)
		reason := RejectReadBody
		if errors.Is(err, errTooLarge) {
			code, reason = http.StatusRequestEntityTooLarge, RejectTooLarge
			// The rest of the body is not read: close the connection.
			w.Header().Set("Connection", "close")
		}
		h.budget.rejected(reason)
		h.log.Error(err, "unable to read the body from the incoming request")
		h.write(w, b, admission.Errored(code, err), nil)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		err := fmt.Errorf("contentType=%s, expected application/json", ct)
		h.log.Error(err, "unable to process a request with unknown content type")
		h.write(w, b, admission.Errored(http.StatusBadRequest, err), nil)
		return
	}
	if h.budget != nil && len(body) > SmallReviewBytes {
		// Large reviews are decoded and decided a few at a time, so that
		// they cannot take every core from ordinary ones.
		if !h.budget.tryLarge() {
			h.budget.writeOverloaded(w, RejectLargeBusy)
			return
		}
		defer h.budget.releaseLarge()
	}
	if h.budget != nil {
		// The decoded maps may take decodeHeapPerByte bytes per byte held;
		// JSON that decodes to more (dense empty objects) must hold more.
		b.dec.heapLimit = held * decodeHeapPerByte
		b.dec.more = func(heap int64) error {
			need := (heap-b.dec.heapLimit)/decodeHeapPerByte + minGrowBytes
			if held+need > h.budget.cap(false) {
				return errTooComplex
			}
			if !acquire(need) {
				return errOverBudget
			}
			b.dec.heapLimit += need * decodeHeapPerByte
			return nil
		}
	}
	req, gvk, err := decodeReview(body, &b.dec)
	if errors.Is(err, errOverBudget) {
		h.budget.writeOverloaded(w, RejectInflightBytes)
		return
	}
	if errors.Is(err, errTooComplex) {
		h.budget.rejected(RejectTooLarge)
		h.log.Error(err, "unable to decode the request")
		h.write(w, b, admission.Errored(http.StatusRequestEntityTooLarge, err), nil)
		return
	}
	if err != nil {
		h.log.Error(err, "unable to decode the request")
		h.write(w, b, admission.Errored(http.StatusBadRequest, err), nil)
		return
	}
	ctx := logf.IntoContext(r.Context(), h.log)
	resp := h.handle(ctx, req)
	h.write(w, b, resp, &gvk)
}

// handle runs the handler, recovering a panic into an error response, and
// completes the response as admission.Webhook does.
func (h *ReviewHandler) handle(ctx context.Context, req admission.Request) (resp admission.Response) {
	defer func() {
		if p := recover(); p != nil {
			admissionmetrics.WebhookPanics.WithLabelValues().Inc()
			for _, fn := range utilruntime.PanicHandlers {
				fn(ctx, p)
			}
			resp = admission.Errored(http.StatusInternalServerError, fmt.Errorf("panic: %v [recovered]", p))
			resp.UID = req.UID
		}
	}()
	resp = h.handler.Handle(ctx, req)
	if err := resp.Complete(req); err != nil {
		h.log.Error(err, "unable to encode response", "requestID", req.UID)
		resp = admission.Errored(http.StatusInternalServerError, errors.New("unable to encode response"))
		resp.UID = req.UID
	}
	return resp
}

var (
	errTooLarge   = fmt.Errorf("request entity is too large; limit is %d bytes", MaxReviewBytes)
	errOverBudget = errors.New("over the in-flight budget")
	errTooComplex = errors.New("request entity is too complex: it decodes to more memory than the in-flight budget (--max-inflight-bytes) allows one review")
)

// decodeHeapPerByte is the decoded heap a held byte of budget pays for: a
// Kubernetes object decodes to 5.5x its JSON (TestHeapPerReviewByte's review),
// so only JSON built to be expensive ever needs more.
const decodeHeapPerByte = 8

// minGrowBytes is the smallest step by which a body buffer grows.
const minGrowBytes = 64 << 10

// readBody reads the request body into buf and refuses bodies over
// MaxReviewBytes. The buffer grows with the bytes actually read, doubling
// (at least minGrowBytes, at most to the announced Content-Length): a client
// announcing a large body and sending it slowly, or never, costs only what it
// sent. acquire is asked for every byte of capacity added beyond buf's; when
// it refuses, reading stops with errOverBudget.
func readBody(r *http.Request, buf []byte, acquire func(int64) bool) ([]byte, error) {
	if r.ContentLength > MaxReviewBytes {
		// Refused unread. controller-runtime reads and drops up to the limit
		// so that the client reads the response rather than a reset; but
		// decrypting 7 MiB of junk per request let a flood of oversized
		// bodies take every core (the 7 KB review's p99 reached 3.1 s). The
		// API server never sends a review this large.
		return buf, errTooLarge
	}
	// +1: the read that sees EOF.
	most := MaxReviewBytes + 1
	if r.ContentLength >= 0 {
		most = int(r.ContentLength) + 1
	}
	for {
		if len(buf) == cap(buf) {
			if len(buf) > MaxReviewBytes {
				return buf, errTooLarge
			}
			n := min(max(2*cap(buf), minGrowBytes), most)
			if n <= cap(buf) {
				n = cap(buf) + 1 // a body longer than announced: net/http stops it
			}
			if !acquire(int64(n - cap(buf))) {
				return buf, errOverBudget
			}
			grown := make([]byte, len(buf), n)
			copy(grown, buf)
			buf = grown
		}
		n, err := r.Body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if len(buf) > MaxReviewBytes {
			return buf, errTooLarge
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// write encodes the response in an AdmissionReview of the request's version
// (v1 when the request could not be decoded: gvk is nil then, and like
// controller-runtime the review carries no apiVersion and kind).
func (h *ReviewHandler) write(w http.ResponseWriter, b *buffers, resp admission.Response, gvk *schema.GroupVersionKind) {
	ar := admissionv1.AdmissionReview{Response: &resp.AdmissionResponse}
	if gvk != nil {
		ar.SetGroupVersionKind(*gvk)
	}
	b.out.Reset()
	if err := json.NewEncoder(&b.out).Encode(ar); err != nil {
		h.log.Error(err, "unable to encode the response")
		b.out.Reset()
		serverError := admission.Errored(http.StatusInternalServerError, err)
		_ = json.NewEncoder(&b.out).Encode(admissionv1.AdmissionReview{Response: &serverError.AdmissionResponse})
	}
	w.Header()["Content-Type"] = jsonContentType
	if _, err := w.Write(b.out.Bytes()); err != nil {
		h.log.Error(err, "unable to write the response")
	}
}
