package httppath

import (
	"net/http/httptest"
	"testing"
)

func TestTrimPrefix(t *testing.T) {
	tests := []struct {
		path, prefix, want string
		ok                 bool
	}{
		{"/release/v1/chat/completions", "/release", "/v1/chat/completions", true},
		{"/release", "/release", "/", true},
		{"/release/", "/release", "/", true},
		{"/releases/v1", "/release", "/releases/v1", false},
		{"/v1/models", "/release", "/v1/models", false},
		{"/v1/models", "", "/v1/models", false},
		{"/a/b/c", "/a/b", "/c", true},
	}
	for _, tt := range tests {
		got, ok := TrimPrefix(tt.path, tt.prefix)
		if got != tt.want || ok != tt.ok {
			t.Errorf("TrimPrefix(%q, %q) = %q, %v; want %q, %v", tt.path, tt.prefix, got, ok, tt.want, tt.ok)
		}
	}
}

func TestWithPath_keepsEscapesAndQuery(t *testing.T) {
	r := httptest.NewRequest("GET", "/release/v1/files/a%2Fb?x=1&y=%20", nil)
	r2 := WithPath(r, "/v1/files/a%2Fb")
	if r2.RequestURI != "/v1/files/a%2Fb?x=1&y=%20" {
		t.Errorf("RequestURI = %q; want the new path with the original query", r2.RequestURI)
	}
	if got := r2.URL.EscapedPath(); got != "/v1/files/a%2Fb" {
		t.Errorf("EscapedPath = %q; want /v1/files/a%%2Fb", got)
	}
	if r2.URL.Path != "/v1/files/a/b" {
		t.Errorf("Path = %q; want the decoded path", r2.URL.Path)
	}
	if got := Escaped(r2); got != "/v1/files/a%2Fb" {
		t.Errorf("Escaped = %q; want /v1/files/a%%2Fb", got)
	}
	if r.RequestURI != "/release/v1/files/a%2Fb?x=1&y=%20" || r.URL.Path != "/release/v1/files/a/b" {
		t.Errorf("original request changed: %q %q", r.RequestURI, r.URL.Path)
	}
}

func TestWithPath_noQuery(t *testing.T) {
	r := httptest.NewRequest("POST", "/release/v1/chat/completions", nil)
	r2 := WithPath(r, "/v1/chat/completions")
	if r2.RequestURI != "/v1/chat/completions" || r2.URL.RawQuery != "" {
		t.Errorf("RequestURI = %q, RawQuery = %q; want /v1/chat/completions and no query", r2.RequestURI, r2.URL.RawQuery)
	}
}

func TestEscaped_fallsBackToURL(t *testing.T) {
	r := httptest.NewRequest("GET", "/v1/a%2Fb", nil)
	r.RequestURI = ""
	if got := Escaped(r); got != "/v1/a%2Fb" {
		t.Errorf("Escaped = %q; want /v1/a%%2Fb", got)
	}
}
