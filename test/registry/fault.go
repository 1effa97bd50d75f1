package registry

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Fault is a way for the registry to misbehave when serving one blob or
// manifest. Faults apply to authorized GET requests (and, for
// FaultServerError, FaultNotFound and FaultHang, HEAD requests) for a blob
// by digest or a manifest by tag or digest whose content has that digest.
type Fault int

const (
	// FaultCorrupt answers 200 with the right Content-Length and
	// Docker-Content-Digest but with bytes in the middle of the body
	// inverted: a client that checks digests must reject it.
	FaultCorrupt Fault = iota + 1
	// FaultTruncate answers 200 with the full Content-Length, sends the
	// first half of the body and closes the connection: the client sees an
	// unexpected EOF.
	FaultTruncate
	// FaultServerError answers 500 with a distribution error body.
	FaultServerError
	// FaultNotFound answers 404 BLOB_UNKNOWN / MANIFEST_UNKNOWN although
	// the content exists.
	FaultNotFound
	// FaultHang sends nothing until the client cancels the request (or the
	// registry closes, which drops the connection).
	FaultHang
	// FaultStall answers 200 with the full Content-Length, sends the first
	// half of the body and then sends nothing until the client cancels.
	FaultStall
)

func (f Fault) String() string {
	switch f {
	case FaultCorrupt:
		return "corrupt"
	case FaultTruncate:
		return "truncate"
	case FaultServerError:
		return "server-error"
	case FaultNotFound:
		return "not-found"
	case FaultHang:
		return "hang"
	case FaultStall:
		return "stall"
	}
	return fmt.Sprintf("fault(%d)", int(f))
}

type fault struct {
	kind   Fault
	left   int // faulted responses still to serve; < 0 for unlimited
	served int
}

// InjectFault makes the registry misbehave on the next `times` requests for
// the blob or manifest with digest d (every request if times <= 0). It
// replaces an earlier fault for d.
func (r *Registry) InjectFault(d v1.Hash, f Fault, times int) {
	if times <= 0 {
		times = -1
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.faults[d] = &fault{kind: f, left: times}
}

// ClearFaults removes every injected fault.
func (r *Registry) ClearFaults() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.faults = map[v1.Hash]*fault{}
}

// FaultsServed is how many faulted responses were served for d since its
// fault was injected.
func (r *Registry) FaultsServed(d v1.Hash) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if f, ok := r.faults[d]; ok {
		return f.served
	}
	return 0
}

// take consumes one use of d's fault, if it applies to method.
func (r *Registry) take(d v1.Hash, method string) (Fault, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f, ok := r.faults[d]
	if !ok || f.left == 0 {
		return 0, false
	}
	if method != http.MethodGet {
		if method != http.MethodHead || (f.kind != FaultServerError && f.kind != FaultNotFound && f.kind != FaultHang) {
			return 0, false
		}
	}
	if f.left > 0 {
		f.left--
	}
	f.served++
	return f.kind, true
}

func (r *Registry) hasFaults() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.faults) > 0
}

// serveFault answers the request with a fault if one applies and reports
// whether it did. Manifests requested by tag are resolved through the inner
// handler to learn their digest.
func (r *Registry) serveFault(w http.ResponseWriter, req *http.Request, rt route, inner http.Handler) bool {
	if (rt.kind != "blobs" && rt.kind != "manifests") || !r.hasFaults() {
		return false
	}
	var rec *httptest.ResponseRecorder
	d, err := v1.NewHash(rt.ref)
	if err != nil && rt.kind == "manifests" {
		rec = httptest.NewRecorder()
		inner.ServeHTTP(rec, req)
		d, err = v1.NewHash(rec.Header().Get("Docker-Content-Digest"))
	}
	if err != nil {
		return replay(w, rec)
	}
	kind, ok := r.take(d, req.Method)
	if !ok {
		return replay(w, rec)
	}
	switch kind {
	case FaultServerError:
		writeError(w, http.StatusInternalServerError, "UNKNOWN", "injected fault: server error")
		return true
	case FaultNotFound:
		code := "BLOB_UNKNOWN"
		if rt.kind == "manifests" {
			code = "MANIFEST_UNKNOWN"
		}
		writeError(w, http.StatusNotFound, code, "injected fault: not found")
		return true
	case FaultHang:
		r.hang(req)
		// Drop the connection rather than answer an empty 200.
		panic(http.ErrAbortHandler)
	}
	if rec == nil {
		rec = httptest.NewRecorder()
		inner.ServeHTTP(rec, req)
	}
	if rec.Code != http.StatusOK {
		return replay(w, rec)
	}
	body := rec.Body.Bytes()
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	switch kind {
	case FaultCorrupt:
		bad := append([]byte(nil), body...)
		mid := len(bad) / 2
		for i := mid; i < len(bad) && i < mid+64; i++ {
			bad[i] ^= 0xff
		}
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(bad)
	case FaultTruncate, FaultStall:
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body[:len(body)/2])
		if fl, ok := w.(http.Flusher); ok {
			fl.Flush()
		}
		if kind == FaultStall {
			r.hang(req)
		}
		// Abort the handler: net/http closes the connection without
		// finishing the body, so the client sees an unexpected EOF.
		panic(http.ErrAbortHandler)
	}
	return true
}

// hang blocks until the request is cancelled or the registry closes.
func (r *Registry) hang(req *http.Request) {
	select {
	case <-req.Context().Done():
	case <-r.closing:
	}
}

// replay copies a recorded response to w; with no recording it reports
// false so that the caller serves the request normally.
func replay(w http.ResponseWriter, rec *httptest.ResponseRecorder) bool {
	if rec == nil {
		return false
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
	return true
}
