package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// poster sends one AdmissionReview body and returns the HTTP status and the
// response body. worker is the index of the calling worker (0..conns-1); a
// worker never calls post concurrently with itself.
type poster interface {
	post(ctx context.Context, worker int, body []byte) (status int, data []byte, err error)
	close()
}

// Clients the load generator can use (-client).
const (
	clientRaw     = "raw"
	clientNetHTTP = "net/http"
)

// maxResponse bounds what is read of a response.
const maxResponse = 4 << 20

// httpPoster posts with net/http's client (its Transport: a connection pool,
// and a reader and a writer goroutine per connection, as the API server's
// webhook client has).
type httpPoster struct {
	client *http.Client
	url    string
}

func (p *httpPoster) post(ctx context.Context, _ int, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	resp.Body.Close()
	if err != nil {
		return 0, nil, fmt.Errorf("read response: %w", err)
	}
	return resp.StatusCode, data, nil
}

func (p *httpPoster) close() { p.client.CloseIdleConnections() }

// newHTTPPoster returns a keep-alive HTTP/1.1 client over TLS 1.2+ that
// trusts only pool, with at most conns connections, like the API server's
// webhook client.
func newHTTPPoster(pool *x509.CertPool, url string, conns int) *httpPoster {
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}},
		ForceAttemptHTTP2:   false,
		TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{}, // never HTTP/2
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &httpPoster{client: &http.Client{Transport: tr, Timeout: requestTimeout}, url: url}
}

// rawPoster gives every worker its own keep-alive TLS connection and speaks
// HTTP/1.1 on it directly: the request is written in one call, the response
// parsed with net/http's own reader (http.ReadResponse: status line, headers,
// Content-Length or chunked bodies). Without the Transport's pool and its two
// goroutines per connection the generator needs a fifth to a quarter less
// CPU per request, which on a 2-core machine it would otherwise take from the
// server it measures, and requests do not wait for a connection's goroutines
// to be scheduled. A connection that fails or that the server closes is dropped
// and dialed again for the worker's next request.
type rawPoster struct {
	addr, host, path string
	tls              *tls.Config
	conns            []*rawConn
}

type rawConn struct {
	c   *tls.Conn
	br  *bufio.Reader
	req []byte // the request being written, reused
}

func newRawPoster(pool *x509.CertPool, addr, path string, conns int) *rawPoster {
	host, _, _ := net.SplitHostPort(addr)
	return &rawPoster{
		addr: addr, host: host, path: path,
		tls:   &tls.Config{RootCAs: pool, ServerName: host, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}},
		conns: make([]*rawConn, conns),
	}
}

func (p *rawPoster) post(ctx context.Context, worker int, body []byte) (int, []byte, error) {
	rc := p.conns[worker]
	if rc == nil {
		d := tls.Dialer{NetDialer: &net.Dialer{Timeout: requestTimeout}, Config: p.tls}
		dctx, cancel := context.WithTimeout(ctx, requestTimeout)
		c, err := d.DialContext(dctx, "tcp", p.addr)
		cancel()
		if err != nil {
			return 0, nil, err
		}
		rc = &rawConn{c: c.(*tls.Conn)}
		rc.br = bufio.NewReaderSize(rc.c, 16<<10)
		p.conns[worker] = rc
	}
	status, data, keep, err := rc.roundTrip(p.host, p.path, body)
	if err != nil || !keep {
		rc.c.Close()
		p.conns[worker] = nil
	}
	return status, data, err
}

func (rc *rawConn) roundTrip(host, path string, body []byte) (status int, data []byte, keep bool, err error) {
	if err := rc.c.SetDeadline(time.Now().Add(requestTimeout)); err != nil {
		return 0, nil, false, err
	}
	b := rc.req[:0]
	b = append(b, "POST "...)
	b = append(b, path...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, host...)
	b = append(b, "\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\n\r\n"...)
	b = append(b, body...)
	rc.req = b
	if _, err := rc.c.Write(b); err != nil {
		return 0, nil, false, err
	}
	resp, err := http.ReadResponse(rc.br, nil)
	if err != nil {
		return 0, nil, false, err
	}
	data, err = io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	resp.Body.Close()
	if err != nil {
		return 0, nil, false, fmt.Errorf("read response: %w", err)
	}
	return resp.StatusCode, data, !resp.Close, nil
}

func (p *rawPoster) close() {
	for i, rc := range p.conns {
		if rc != nil {
			rc.c.Close()
			p.conns[i] = nil
		}
	}
}

// newPoster returns the -client kind of poster for https://addr/path,
// trusting only caPEM.
func newPoster(kind string, caPEM []byte, addr, path string, conns int) (poster, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("no CA certificate")
	}
	switch kind {
	case clientRaw:
		return newRawPoster(pool, addr, path, conns), nil
	case clientNetHTTP:
		return newHTTPPoster(pool, "https://"+addr+path, conns), nil
	}
	return nil, fmt.Errorf("unknown client %q", kind)
}
