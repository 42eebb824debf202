package core

import (
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/internal/testkit"
)

func TestFromEnv_defaults(t *testing.T) {
	c, err := FromEnv(testkit.Lookup(nil), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Target.String(); got != "https://api.openai.com" {
		t.Errorf("Target = %q; want https://api.openai.com", got)
	}
	if c.Port != 9000 || c.Host != "0.0.0.0" {
		t.Errorf("listen = %s:%d; want 0.0.0.0:9000", c.Host, c.Port)
	}
	if c.RequestTimeout != 0 {
		t.Errorf("RequestTimeout = %v; want 0 (no timeout by default)", c.RequestTimeout)
	}
	if c.DialTimeout != 10*time.Second || c.ShutdownGrace != 30*time.Second {
		t.Errorf("DialTimeout, ShutdownGrace = %v, %v; want 10s, 30s", c.DialTimeout, c.ShutdownGrace)
	}
	if c.ForwardClientIP {
		t.Error("ForwardClientIP on by default; want off")
	}
	if want := []string{"x-fc-", "x-scf-", "x-golambdaproxy-"}; !reflect.DeepEqual(c.StripHeaderPrefixes, want) {
		t.Errorf("StripHeaderPrefixes = %q; want %q", c.StripHeaderPrefixes, want)
	}
	if c.LogLevel != slog.LevelInfo || c.LogFormat != "text" {
		t.Errorf("log = %v %s; want INFO text", c.LogLevel, c.LogFormat)
	}
}

func TestFromEnv_values(t *testing.T) {
	env := map[string]string{
		"OXY_TARGET":            "https://docs-test-001.openai.azure.com/openai/",
		"OXY_PORT":              "8080",
		"OXY_HOST":              "127.0.0.1",
		"OXY_HOP_HEADER_PREFIX": "X-SCF, x-custom-",
		"OXY_FORWARD_CLIENT_IP": "true",
		"OXY_REQUEST_TIMEOUT":   "10m",
		"OXY_DIAL_TIMEOUT":      "3s",
		"OXY_SHUTDOWN_GRACE":    "0",
		"OXY_LOG_LEVEL":         "debug",
		"OXY_LOG_FORMAT":        "JSON",
	}
	c, err := FromEnv(testkit.Lookup(env), Options{Environ: testkit.Environ(env),
		Defaults: Defaults{Port: 1234, StripHeaderPrefixes: []string{"X-Api-"}, StripHeaders: []string{"endpoint-timeout"}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Target.String(); got != "https://docs-test-001.openai.azure.com/openai" {
		t.Errorf("Target = %q; want the base path without its trailing slash", got)
	}
	if c.Port != 8080 || c.Host != "127.0.0.1" {
		t.Errorf("listen = %s:%d; want 127.0.0.1:8080", c.Host, c.Port)
	}
	if want := []string{"x-scf", "x-custom-", "x-api-", "x-fc-", "x-scf-", "x-golambdaproxy-"}; !reflect.DeepEqual(c.StripHeaderPrefixes, want) {
		t.Errorf("StripHeaderPrefixes = %q; want %q (user's, then preset, then always)", c.StripHeaderPrefixes, want)
	}
	if want := []string{"Endpoint-Timeout"}; !reflect.DeepEqual(c.StripHeaders, want) {
		t.Errorf("StripHeaders = %q; want %q", c.StripHeaders, want)
	}
	if !c.ForwardClientIP || c.RequestTimeout != 10*time.Minute || c.DialTimeout != 3*time.Second || c.ShutdownGrace != 0 {
		t.Errorf("got %+v", c)
	}
	if c.LogLevel != slog.LevelDebug || c.LogFormat != "json" {
		t.Errorf("log = %v %s; want DEBUG json", c.LogLevel, c.LogFormat)
	}
}

func TestFromEnv_platformPortDefault(t *testing.T) {
	c, err := FromEnv(testkit.Lookup(nil), Options{Defaults: Defaults{Port: 8000}})
	if err != nil || c.Port != 8000 {
		t.Fatalf("Port = %d, %v; want the platform default 8000", c.Port, err)
	}
	c, err = FromEnv(testkit.Lookup(map[string]string{"OXY_PORT": "9100"}), Options{Defaults: Defaults{Port: 8000}})
	if err != nil || c.Port != 9100 {
		t.Fatalf("Port = %d, %v; want OXY_PORT to override the platform default", c.Port, err)
	}
}

func TestFromEnv_invalidReportsEverything(t *testing.T) {
	env := map[string]string{
		"OXY_TARGET":            "api.openai.com",
		"OXY_PORT":              "70000",
		"OXY_FORWARD_CLIENT_IP": "maybe",
		"OXY_REQUEST_TIMEOUT":   "ten",
		"OXY_DIAL_TIMEOUT":      "0",
		"OXY_LOG_LEVEL":         "loud",
		"OXY_LOG_FORMAT":        "xml",
		"OXY_TARGTE":            "sk-secret-typo",
		"OXY_SOMETHING_ELSE":    "1",
		"OXY_EXTRA":             "bad",
	}
	extra := Setting{Name: "OXY_EXTRA", Default: "good", Check: func(v string) error {
		if v != "good" {
			return errors.New("must be good")
		}
		return nil
	}}
	_, err := FromEnv(testkit.Lookup(env), Options{Environ: testkit.Environ(env), Defaults: Defaults{Extra: []Setting{extra}}})
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v; want *ConfigError", err)
	}
	msg := err.Error()
	for _, want := range []string{
		"invalid configuration:\n  ",
		`OXY_TARGET="api.openai.com": missing scheme, want https://host`,
		`OXY_PORT="70000": must be a port number 1-65535`,
		`OXY_FORWARD_CLIENT_IP="maybe": must be true or false`,
		`OXY_REQUEST_TIMEOUT="ten": must be a duration`,
		`OXY_DIAL_TIMEOUT="0": must be a positive duration`,
		`OXY_LOG_LEVEL="loud": must be debug, info, warn or error`,
		`OXY_LOG_FORMAT="xml": must be one of text, json`,
		`OXY_TARGTE: unknown setting, did you mean OXY_TARGET?`,
		`OXY_SOMETHING_ELSE: unknown setting; run with -h to list the settings`,
		`OXY_EXTRA="bad": must be good`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q; got:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "sk-secret-typo") {
		t.Errorf("error shows the value of an unknown setting (could be a key):\n%s", msg)
	}
	if len(ce.Problems) != 10 {
		t.Errorf("got %d problems; want 10:\n%s", len(ce.Problems), msg)
	}
}

func TestParseTarget(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{in: "https://api.openai.com", want: "https://api.openai.com"},
		{in: "https://api.openai.com/", want: "https://api.openai.com"},
		{in: "http://127.0.0.1:8080/prefix/", want: "http://127.0.0.1:8080/prefix"},
		{in: "https://NAME.openai.azure.com", want: "https://NAME.openai.azure.com"},
		{in: "api.openai.com", err: "missing scheme, want https://host"},
		{in: "", err: "empty, want https://host"},
		{in: "ftp://host", err: `scheme "ftp" not supported`},
		{in: "https://", err: "missing host"},
		{in: "https://user:pass@host", err: "credentials in the URL"},
		{in: "https://host/?a=1", err: "query or fragment not supported"},
		{in: "https://host:99999", err: "port must be 1-65535"},
		{in: "https://ho st", err: "not a URL"},
	} {
		u, err := ParseTarget(tc.in)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParseTarget(%q) err = %v; want %q", tc.in, err, tc.err)
		case tc.err == "" && err != nil:
			t.Errorf("ParseTarget(%q) err = %v", tc.in, err)
		case tc.err == "" && u.String() != tc.want:
			t.Errorf("ParseTarget(%q) = %q; want %q", tc.in, u.String(), tc.want)
		}
	}
}

func TestFromEnv_secretSettingValueNeverShown(t *testing.T) {
	s := Setting{Name: "OXY_KEYS", Secret: true, Check: func(string) error { return errors.New("must not be short") }}
	_, err := FromEnv(testkit.Lookup(map[string]string{"OXY_KEYS": "sk-live-123"}), Options{Defaults: Defaults{Extra: []Setting{s}}})
	if err == nil || strings.Contains(err.Error(), "sk-live-123") || !strings.Contains(err.Error(), "OXY_KEYS: must not be short") {
		t.Fatalf("err = %v; want the problem without the value", err)
	}
}
