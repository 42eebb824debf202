package core

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestAccessLog_oneLinePerRequestWithFields(t *testing.T) {
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("X-Request-Id", "req_abc")
		w.Header().Set("Set-Cookie", "__cf_bm=PLANTED-COOKIE-OUT")
		w.Write([]byte(`{"answer":"PLANTED-RESPONSE-BODY"}`))
	})
	p := newTestProxy(t, up, "", map[string]string{"OXY_LOG_LEVEL": "debug"})
	body := `{"prompt":"PLANTED-REQUEST-BODY"}`
	req, _ := http.NewRequest("POST", p.URL+"/v1/chat/completions?key=PLANTED-QUERY-KEY", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer sk-PLANTED-AUTH")
	req.Header.Set("api-key", "PLANTED-AZURE")
	req.Header.Set("x-api-key", "PLANTED-XAPI")
	req.Header.Set("Cookie", "session=PLANTED-COOKIE-IN")
	req.Header.Set("X-Fc-Access-Key-Secret", "PLANTED-STS")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()

	waitFor(t, func() bool { return len(p.logLines()) == 1 })
	var line map[string]any
	if err := json.Unmarshal([]byte(p.logLines()[0]), &line); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"method": "POST", "path": "/v1/chat/completions", "status": float64(200),
		"bytes_in": float64(len(body)), "bytes_out": float64(len(`{"answer":"PLANTED-RESPONSE-BODY"}`)),
		"upstream_request_id": "req_abc"}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("log %s = %v; want %v", k, line[k], v)
		}
	}
	for _, k := range []string{"duration", "ttfb", "time", "level"} {
		if _, ok := line[k]; !ok {
			t.Errorf("log line lacks %s: %v", k, line)
		}
	}
	if all := p.Log.String(); strings.Contains(all, "PLANTED") {
		t.Errorf("log output contains a planted secret or body:\n%s", all)
	}
}
