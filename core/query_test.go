package core

import (
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

func TestWithoutQueryParam(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"key=1", ""},
		{"a=1&key=2&b=3", "a=1&b=3"},
		{"key=1&a=%zz;b", "a=%zz;b"},
		{"a=1&key", "a=1"},
		{"%6Bey=1&%6b%65%79=2&k%65y&a", "a"}, // escaped spellings of the name
		{"a=1&&key=2&", "a=1&&"},
		{"keys=1&akey=2&x=key", "keys=1&akey=2&x=key"},
		{"Key=1&KEY=2", "Key=1&KEY=2"}, // names are case-sensitive
		{"a=1;key=2", "a=1;key=2"},     // ; is not a separator (Go 1.17, golang/go#25192)
		{"a=%zz&key=%zz", "a=%zz"},
	} {
		if got := withoutQueryParam(tc.in, "key"); got != tc.want {
			t.Errorf("withoutQueryParam(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
}

func TestQueryParamValues(t *testing.T) {
	var got []string
	queryParamValues("key=a%2Bb&x=1&%6Bey=c+d&key=&key=e&key=f", "key", 4, func(v string) { got = append(got, v) })
	if want := []string{"a+b", "c d", "", "e"}; !reflect.DeepEqual(got, want) {
		t.Errorf("values = %q; want %q (at most 4)", got, want)
	}
}

// TestCredential_apply covers the three schemes: Bearer, a bare header and a
// query parameter; each replaces what was there and keeps the rest.
func TestCredential_apply(t *testing.T) {
	for _, tc := range []struct {
		c                   Credential
		wantHeader, wantRaw string
	}{
		{bearerCredential, "Bearer k1", "a=1;b&key=client"},
		{Credential{Header: "X-Goog-Api-Key"}, "k1", "a=1;b&key=client"},
		{Credential{Query: "key"}, "", "a=1;b&key=k1%2F%2B"},
	} {
		out := &http.Request{URL: &url.URL{RawQuery: "a=1;b&key=client"}, Header: http.Header{"x-goog-api-key": {"client"}}}
		key := Secret("k1")
		if tc.c.Header == "" {
			key = "k1/+"
		}
		tc.c.Apply(out, key)
		if tc.c.Header != "" {
			if got := out.Header[tc.c.Header]; len(got) != 1 || got[0] != tc.wantHeader {
				t.Errorf("%v: header %q; want %q", tc.c, got, tc.wantHeader)
			}
		}
		if out.URL.RawQuery != tc.wantRaw {
			t.Errorf("%v: query %q; want %q", tc.c, out.URL.RawQuery, tc.wantRaw)
		}
		// Applying again (a retry) leaves one key, not two.
		tc.c.Apply(out, key)
		if tc.c.Header != "" {
			n := 0
			for name, v := range out.Header {
				if strings.EqualFold(name, tc.c.Header) {
					n += len(v)
				}
			}
			if n != 1 {
				t.Errorf("%v: after a second Apply, headers %q; want one %s", tc.c, out.Header, tc.c.Header)
			}
		}
		if out.URL.RawQuery != tc.wantRaw {
			t.Errorf("%v: after a second Apply, query %q; want %q", tc.c, out.URL.RawQuery, tc.wantRaw)
		}
	}
}
