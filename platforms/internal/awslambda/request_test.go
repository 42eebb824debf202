package awslambda

import (
	"strings"
	"testing"
)

// FuzzEventRequest feeds untrusted function URL event fields to the request
// builder: it must refuse or build a request, never panic, and never forward
// the Host header or more than one Cookie header.
func FuzzEventRequest(f *testing.F) {
	f.Add("POST", "/v1/chat/completions", "api-version=1&x=a%2Fb", "accept", "text/event-stream, application/json", "a=1", "e30=", true)
	f.Add("GET", "/my/path", "parameter1=value1&parameter1=value2", "cookie", "b=2", "", "", false)
	f.Add("PUT", "/v1/%zz", "key=k", "Host", "evil.example", "c=3", "!!", true)
	f.Add("", "", "", "", "", "", "", false)
	f.Fuzz(func(t *testing.T, method, path, query, name, value, cookie, body string, b64 bool) {
		e := event{method: method, domain: "id.lambda-url.us-east-1.on.aws", rawPath: path, rawQuery: query,
			headers: map[string]string{name: value}, body: body, base64: b64, sourceIP: "203.0.113.7"}
		if cookie != "" {
			e.cookies = []string{cookie}
		}
		r, err := e.newRequest()
		if err != nil {
			if err != errBodyNotBase64 && err != errBadTarget {
				t.Fatalf("error %v; want one of the refusals", err)
			}
			return
		}
		if _, ok := r.Header["Host"]; ok {
			t.Error("Host left in the header map")
		}
		if len(r.Header["Cookie"]) > 1 {
			t.Errorf("Cookie = %q; want one header", r.Header["Cookie"])
		}
		if strings.HasPrefix(path, "/") && !strings.HasPrefix(r.RequestURI, path) {
			t.Errorf("RequestURI %q; want it to start with %q", r.RequestURI, path)
		}
		if r.RemoteAddr != "203.0.113.7:0" {
			t.Errorf("RemoteAddr %q", r.RemoteAddr)
		}
	})
}
