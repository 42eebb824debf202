package tencentscfevent

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tencentyun/scf-go-lib/events"
)

func TestEncodeQuery(t *testing.T) {
	tests := []struct {
		name string
		qs   events.APIGatewayQueryString
		want string
	}{
		{"none", nil, ""},
		{"string", events.APIGatewayQueryString{"api-version": {"2024-02-01"}}, "api-version=2024-02-01"},
		{"array", events.APIGatewayQueryString{"tag": {"a", "b"}}, "tag=a&tag=b"},
		{"flag", events.APIGatewayQueryString{"stream": {}}, "stream"},
		{"empty value", events.APIGatewayQueryString{"q": {""}}, "q="},
		{"escaping", events.APIGatewayQueryString{"a b": {"c&d=e/é"}}, "a+b=c%26d%3De%2F%C3%A9"},
		{"sorted", events.APIGatewayQueryString{"b": {"2"}, "a": {"1"}, "c": {}}, "a=1&b=2&c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := encodeQuery(tt.qs); got != tt.want {
				t.Errorf("encodeQuery(%v) = %q; want %q", tt.qs, got, tt.want)
			}
		})
	}
}

// The three queryString forms the gateway sends, parsed through scf-go-lib.
func TestEventRequest_queryStringForms(t *testing.T) {
	ev, err := ParseEvent([]byte(`{"httpMethod":"GET","path":"/v1/models","queryString":{"s":"x","a":["1","2"],"flag":true}}`))
	if err != nil {
		t.Fatal(err)
	}
	r, err := ev.Request(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := "a=1&a=2&flag&s=x"; r.URL.RawQuery != want {
		t.Errorf("query %q; want %q", r.URL.RawQuery, want)
	}
	if want := "/v1/models?a=1&a=2&flag&s=x"; r.RequestURI != want {
		t.Errorf("RequestURI %q; want %q", r.RequestURI, want)
	}
}

func TestEventRequest_fields(t *testing.T) {
	tests := []struct {
		name                      string
		event                     string
		method, uri, host, remote string
		body                      string
		contentLength             int64
	}{
		{"api gateway", `{"httpMethod":"POST","path":"/v1/chat/completions","body":"{}",
			"headers":{"Host":"svc.apigw.tencentcs.com","Content-Length":"99","Transfer-Encoding":"chunked"},
			"requestContext":{"sourceIp":"203.0.113.7"},"isBase64Encoded":false}`,
			"POST", "/v1/chat/completions", "svc.apigw.tencentcs.com", "203.0.113.7:0", "{}", 2},
		{"function url", `{"httpMethod":"GET","path":"/v1/models","headers":{"host":"1-a.ap-guangzhou.tencentscf.com","x-scf-remote-addr":"111.206.96.145"}}`,
			"GET", "/v1/models", "1-a.ap-guangzhou.tencentscf.com", "111.206.96.145:0", "", 0},
		{"base64 string flag", `{"httpMethod":"PUT","path":"/x","body":"aGk=","isBase64Encoded":"true"}`,
			"PUT", "/x", "", "", "hi", 2},
		{"no path", `{"httpMethod":"GET"}`, "GET", "/", "", "", "", 0},
		{"escaped path kept", `{"httpMethod":"GET","path":"/v1/files/a%2Fb"}`, "GET", "/v1/files/a%2Fb", "", "", "", 0},
		{"unsafe path escaped", `{"httpMethod":"GET","path":"/v1/a b"}`, "GET", "/v1/a%20b", "", "", "", 0},
		{"bad source ip", `{"httpMethod":"GET","path":"/","requestContext":{"sourceIp":"not-an-ip"}}`, "GET", "/", "", "", "", 0},
		{"api gateway ignores x-scf-remote-addr", `{"httpMethod":"GET","path":"/","headers":{"X-Scf-Remote-Addr":"198.51.100.1"},
			"requestContext":{"sourceIp":"203.0.113.7"}}`, "GET", "/", "", "203.0.113.7:0", "", 0},
		{"api gateway without sourceIp", `{"httpMethod":"GET","path":"/","headers":{"x-scf-remote-addr":"203.0.113.7"},
			"requestContext":{"serviceId":"service-f94sy04v","requestId":"c6af9ac6"}}`, "GET", "/", "", "", "", 0},
		{"function url ipv6", `{"httpMethod":"GET","path":"/","headers":{"x-scf-remote-addr":"2001:db8::7"}}`,
			"GET", "/", "", "[2001:db8::7]:0", "", 0},
		{"function url remote addr twice", `{"httpMethod":"GET","path":"/","headers":{"x-scf-remote-addr":"203.0.113.7","X-Scf-Remote-Addr":"198.51.100.1"}}`,
			"GET", "/", "", "", "", 0},
		{"function url X-Forwarded-For only", `{"httpMethod":"GET","path":"/","headers":{"x-forwarded-for":"203.0.113.7"}}`,
			"GET", "/", "", "", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := ParseEvent([]byte(tt.event))
			if err != nil {
				t.Fatal(err)
			}
			r, err := ev.Request(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(r.Body)
			if r.Method != tt.method || r.RequestURI != tt.uri || r.Host != tt.host || r.RemoteAddr != tt.remote ||
				string(body) != tt.body || r.ContentLength != tt.contentLength {
				t.Errorf("got %s %s host %q remote %q body %q length %d; want %s %s host %q remote %q body %q length %d",
					r.Method, r.RequestURI, r.Host, r.RemoteAddr, body, r.ContentLength,
					tt.method, tt.uri, tt.host, tt.remote, tt.body, tt.contentLength)
			}
			for _, h := range []string{"Host", "Content-Length", "Transfer-Encoding"} {
				if v, ok := r.Header[h]; ok {
					t.Errorf("header %s = %q; want it dropped", h, v)
				}
			}
		})
	}
}

// Errors name the problem but never repeat values: query values and headers
// can carry keys.
func TestParseEvent_errorsDoNotLeakValues(t *testing.T) {
	tests := []string{
		`{"httpMethod":"GET","queryString":{"key":{"a":"sk-secret"}}}`,
		`{"httpMethod":"GET","queryString":{"key":["sk-secret",1]}}`,
		`{"httpMethod":"GET","queryString":{"key":12345}}`,
		`{"httpMethod":"GET","headers":{"Authorization":["sk-secret"]}}`,
		`{"httpMethod":"GET","isBase64Encoded":"sk-secret"}`,
	}
	for _, event := range tests {
		_, err := ParseEvent([]byte(event))
		var ee *EventError
		if !errors.As(err, &ee) {
			t.Errorf("ParseEvent(%s) = %v; want an *EventError", event, err)
			continue
		}
		if strings.Contains(err.Error(), "sk-secret") || strings.Contains(err.Error(), "12345") {
			t.Errorf("ParseEvent(%s) error %q repeats a value", event, err)
		}
	}
}

func TestEventRequest_errorsDoNotLeakValues(t *testing.T) {
	for _, event := range []string{
		`{"httpMethod":"GET","headers":{"Authorization":"sk-secret\r\nX: y"}}`,
		`{"httpMethod":"GET","headers":{"sk-secret key":"v"}}`,
		`{"httpMethod":"POST","body":"sk-secret!","isBase64Encoded":true}`,
	} {
		ev, err := ParseEvent([]byte(event))
		if err != nil {
			t.Fatal(err)
		}
		_, err = ev.Request(context.Background())
		if err == nil || strings.Contains(err.Error(), "sk-secret") {
			t.Errorf("Request for %s: error %v; want one that does not repeat the value", event, err)
		}
	}
}

// FuzzParseEvent checks that no event payload makes the conversion panic and
// that every accepted event becomes an origin-form request.
func FuzzParseEvent(f *testing.F) {
	names, _ := filepath.Glob("testdata/*")
	for _, name := range names {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		ev, err := ParseEvent(payload)
		if err != nil {
			return
		}
		r, err := ev.Request(context.Background())
		if err != nil {
			return
		}
		if !strings.HasPrefix(r.RequestURI, "/") || r.URL.Path == "" && r.URL.RawPath == "" {
			t.Errorf("request URI %q from %q; want origin form", r.RequestURI, payload)
		}
	})
}
