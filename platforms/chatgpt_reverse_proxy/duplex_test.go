package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestProxy_upstreamAnswersBeforeRequestBodyEnds checks that the upstream can
// start its answer before it has read the whole request body, and still gets
// that body intact: the proxy is a transparent pipe in both directions.
//
// net/http's server, unless the handler enabled full duplex, reacts to the
// first response write by reading and discarding what is left of a request
// body under 256 KB and then closing it (golang/go#15527). For a proxy that
// steals the body from the transport that is still forwarding it: the
// upstream gets a truncated body or a reset, and the streamed answer is cut.
// Here the client holds back the end of its body until it has the first
// event, which makes the race deterministic.
func TestProxy_upstreamAnswersBeforeRequestBodyEnds(t *testing.T) {
	body := make([]byte, 64<<10)
	if _, err := rand.Read(body); err != nil {
		t.Fatal(err)
	}
	gotBody := make(chan []byte, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A Go server must opt in to answering while the body arrives.
		if err := http.NewResponseController(w).EnableFullDuplex(); err != nil {
			t.Errorf("upstream: %v", err)
		}
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: "+firstEvent+"\n\n")
		_ = http.NewResponseController(w).Flush()
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("upstream reading the request body after %d bytes: %v", len(b), err)
		}
		gotBody <- b
		_, _ = io.WriteString(w, "data: "+secondEvent+"\n\ndata: [DONE]\n\n")
	}))
	t.Cleanup(up.Close)
	base, _ := startInProcess(t, map[string]string{"OXY_TARGET": up.URL})

	pr, pw := io.Pipe()
	defer pw.Close()
	req, err := http.NewRequest(http.MethodPost, base+"/v1/audio/transcriptions", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = int64(len(body))
	req.Header.Set("Content-Type", "application/octet-stream")
	// The first half goes out as the request starts, the second only once
	// the client has the first event and the first half was taken. The
	// upstream answers before it reads anything, so the first event can come
	// before the first half was written; io.Pipe does not order writers that
	// wait at once, and a second half written then could go first, and the
	// close after it cut the first half off (the client's transport then
	// drops the connection for a body shorter than its Content-Length).
	half := len(body) / 2
	wroteHalf := make(chan error, 1)
	go func() {
		_, err := pw.Write(body[:half])
		wroteHalf <- err
	}()

	type result struct {
		res *http.Response
		err error
	}
	resc := make(chan result, 1)
	go func() {
		res, err := newClient(t).Do(req)
		resc <- result{res, err}
	}()
	var r result
	select {
	case r = <-resc:
	case <-time.After(20 * time.Second):
		// Unblock the proxy so the test can end, then fail.
		_, _ = pw.Write(body[half:])
		_ = pw.Close()
		t.Fatal("no response headers within 20s while the client held back the end of its body: the proxy waits for the whole request body before answering")
	}
	if r.err != nil {
		t.Fatalf("POST: %v", r.err)
	}
	defer r.res.Body.Close()
	br := bufio.NewReader(r.res.Body)
	if ev, err := readEvent(br); err != nil || ev != firstEvent {
		t.Fatalf("first event = %q, %v; want %q", ev, err, firstEvent)
	}
	select {
	case err := <-wroteHalf:
		if err != nil {
			t.Fatalf("writing the first half of the body: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the proxy did not take the first half of the body within 20s")
	}
	// The client got the first event while half of its body is unsent.
	if _, err := pw.Write(body[half:]); err != nil {
		t.Fatalf("writing the rest of the body: %v", err)
	}
	_ = pw.Close()
	rest, err := io.ReadAll(br)
	if err != nil {
		t.Errorf("reading the rest of the stream: %v", err)
	}
	if want := "data: " + secondEvent + "\n\ndata: [DONE]\n\n"; string(rest) != want {
		t.Errorf("rest of the stream = %q; want %q", rest, want)
	}
	select {
	case b := <-gotBody:
		if !bytes.Equal(b, body) {
			t.Errorf("upstream got %d body bytes; want the client's %d unchanged", len(b), len(body))
		}
	case <-time.After(20 * time.Second):
		t.Error("upstream never finished reading the request body")
	}
}
