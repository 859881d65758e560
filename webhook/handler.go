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
//   - the body is read once into a pooled buffer sized from Content-Length;
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
}

var _ http.Handler = (*ReviewHandler)(nil)

// NewReviewHandler returns the HTTP handler of a validating admission.Handler.
func NewReviewHandler(h admission.Handler) *ReviewHandler {
	log := logf.Log.WithName("admission")
	return &ReviewHandler{handler: h, log: log}
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
	body, err := readBody(r, b.body[:0])
	b.body = body
	if err != nil {
		code := int32(http.StatusBadRequest)
		if errors.Is(err, errTooLarge) {
			code = http.StatusRequestEntityTooLarge
		}
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
	req, gvk, err := decodeReview(body, &b.dec)
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

var errTooLarge = fmt.Errorf("request entity is too large; limit is %d bytes", MaxReviewBytes)

// readBody reads the request body into buf, growing it once to the announced
// Content-Length, and refuses bodies over MaxReviewBytes.
func readBody(r *http.Request, buf []byte) ([]byte, error) {
	if r.ContentLength > MaxReviewBytes {
		// Read (and drop) up to the limit, as controller-runtime does, so the
		// client gets the response rather than a reset connection.
		_, _ = io.CopyN(io.Discard, r.Body, MaxReviewBytes+1)
		return buf, errTooLarge
	}
	if n := int(r.ContentLength); n > 0 && cap(buf) < n+1 {
		buf = make([]byte, 0, n+1) // +1: the read that sees EOF
	}
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
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
