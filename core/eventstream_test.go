package core

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
)

// callWriter is a ResponseWriter that logs the calls made on it.
type callWriter struct {
	*httptest.ResponseRecorder
	calls []string
}

func (w *callWriter) WriteHeader(code int) {
	w.calls = append(w.calls, "WriteHeader")
	w.ResponseRecorder.WriteHeader(code)
}

func (w *callWriter) Write(b []byte) (int, error) {
	w.calls = append(w.calls, "Write")
	return w.ResponseRecorder.Write(b)
}

func (w *callWriter) FlushError() error {
	w.calls = append(w.calls, "Flush")
	w.ResponseRecorder.Flush()
	return nil
}

// TestRecord_eventStreamHeaderSentAtOnce: an event stream's header is
// flushed as soon as it is written (from high up the handler's stack, see
// isEventStream), and the events are still written one by one; any other
// response keeps its header for the first body write.
func TestRecord_eventStreamHeaderSentAtOnce(t *testing.T) {
	for _, tt := range []struct {
		contentType string
		want        []string
	}{
		{"text/event-stream", []string{"WriteHeader", "Flush", "Write"}},
		{"text/event-stream; charset=utf-8", []string{"WriteHeader", "Flush", "Write"}},
		{"application/json", []string{"WriteHeader", "Write"}},
	} {
		w := &callWriter{ResponseRecorder: httptest.NewRecorder()}
		rec := startRecord(w, newIdleLimits(http.NewResponseController(w), Config{}))
		rec.Header().Set("Content-Type", tt.contentType)
		rec.WriteHeader(http.StatusOK)
		if _, err := rec.Write([]byte("data: {}\n\n")); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(w.calls, tt.want) {
			t.Errorf("%s: calls %v; want %v", tt.contentType, w.calls, tt.want)
		}
	}
}
