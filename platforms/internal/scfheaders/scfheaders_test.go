package scfheaders

import (
	"testing"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/core"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/platformtest"
)

func TestPresets_stripEverySCFHeader(t *testing.T) {
	cfg, err := core.FromEnv(func(string) (string, bool) { return "", false }, core.Options{Defaults: core.Defaults{
		StripHeaderPrefixes: StripHeaderPrefixes(),
		StripHeaders:        StripHeaders(),
	}})
	if err != nil {
		t.Fatal(err)
	}
	p := core.NewHeaderPolicy(cfg)
	for name := range platformtest.SCFHeaders() {
		if !p.Stripped(name) {
			t.Errorf("%s is forwarded; want it stripped", name)
		}
	}
	for name := range platformtest.ClientHeaders() {
		if p.Stripped(name) {
			t.Errorf("%s is stripped; want it forwarded", name)
		}
	}
}

func TestRemoteAddr(t *testing.T) {
	tests := []struct {
		values []string
		want   string // "" for no address
	}{
		{[]string{"111.206.96.145"}, "111.206.96.145"},
		{[]string{" 203.0.113.7 "}, "203.0.113.7"},
		{[]string{"2001:db8::7"}, "2001:db8::7"},
		{[]string{"::ffff:203.0.113.7"}, "203.0.113.7"},
		{[]string{"203.0.113.7:51234"}, "203.0.113.7"},
		{[]string{"[2001:db8::7]:443"}, "2001:db8::7"},
		{nil, ""},
		{[]string{""}, ""},
		{[]string{"203.0.113.7", "198.51.100.1"}, ""}, // repeated: a client's and the platform's
		{[]string{"198.51.100.1, 203.0.113.7"}, ""},   // joined
		{[]string{"not-an-ip"}, ""},
		{[]string{"fe80::1%eth0"}, ""},
		{[]string{"0.0.0.0"}, ""},
	}
	for _, tt := range tests {
		a, ok := RemoteAddr(tt.values)
		got := ""
		if ok {
			got = a.String()
		}
		if got != tt.want {
			t.Errorf("RemoteAddr(%q) = %q, %v; want %q", tt.values, got, ok, tt.want)
		}
	}
}
