package core

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/internal/testkit"
)

func TestFromEnv_retrySettings(t *testing.T) {
	c, err := FromEnv(testkit.Lookup(nil), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Retries != 2 || c.RetryMaxBody != 1<<20 || c.KeyCooldown != 10*time.Minute {
		t.Errorf("defaults: retries %d, max body %d, cooldown %v; want 2, 1 MiB, 10m", c.Retries, c.RetryMaxBody, c.KeyCooldown)
	}
	for _, tt := range []struct {
		retries, maxBody, cooldown string
		want                       Config
	}{
		{"0", "0", "30s", Config{Retries: 0, RetryMaxBody: 0, KeyCooldown: 30 * time.Second}},
		{"10", "512KiB", "1h", Config{Retries: 10, RetryMaxBody: 512 << 10, KeyCooldown: time.Hour}},
		{" 3 ", "2 MiB", "90s", Config{Retries: 3, RetryMaxBody: 2 << 20, KeyCooldown: 90 * time.Second}},
		{"1", "65536", "5m", Config{Retries: 1, RetryMaxBody: 65536, KeyCooldown: 5 * time.Minute}},
		{"1", "100b", "5m", Config{Retries: 1, RetryMaxBody: 100, KeyCooldown: 5 * time.Minute}},
	} {
		env := map[string]string{"OXY_RETRIES": tt.retries, "OXY_RETRY_MAX_BODY": tt.maxBody, "OXY_KEY_COOLDOWN": tt.cooldown}
		c, err := FromEnv(testkit.Lookup(env), Options{Environ: testkit.Environ(env)})
		if err != nil {
			t.Errorf("%v: %v", env, err)
			continue
		}
		if c.Retries != tt.want.Retries || c.RetryMaxBody != tt.want.RetryMaxBody || c.KeyCooldown != tt.want.KeyCooldown {
			t.Errorf("%v: got %d, %d, %v; want %d, %d, %v", env, c.Retries, c.RetryMaxBody, c.KeyCooldown,
				tt.want.Retries, tt.want.RetryMaxBody, tt.want.KeyCooldown)
		}
	}
}

func TestFromEnv_badRetrySettings(t *testing.T) {
	env := map[string]string{"OXY_RETRIES": "11", "OXY_RETRY_MAX_BODY": "1MB", "OXY_KEY_COOLDOWN": "0"}
	_, err := FromEnv(testkit.Lookup(env), Options{})
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		`OXY_RETRIES="11": must be a whole number 0-10`,
		`OXY_RETRY_MAX_BODY="1MB": must be a size such as 1048576, 512KiB or 1MiB`,
		`OXY_KEY_COOLDOWN="0": must be a positive duration`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	for _, bad := range []string{"-1", "two", "1.5"} {
		if _, err := FromEnv(testkit.Lookup(map[string]string{"OXY_RETRIES": bad}), Options{}); err == nil {
			t.Errorf("OXY_RETRIES=%q accepted", bad)
		}
	}
	for _, bad := range []string{"-1", "1.5MiB", "MiB", "2TiB", "99999999999999999999"} {
		if _, err := FromEnv(testkit.Lookup(map[string]string{"OXY_RETRY_MAX_BODY": bad}), Options{}); err == nil {
			t.Errorf("OXY_RETRY_MAX_BODY=%q accepted", bad)
		}
	}
}

func TestSplitKeys(t *testing.T) {
	for _, tt := range []struct {
		in       string
		keys     []string
		problems []string
	}{
		{"", nil, nil},
		{"sk-one", []string{"sk-one"}, nil},
		{" sk-one , sk-two,sk-three ", []string{"sk-one", "sk-two", "sk-three"}, nil},
		{"sk-one,,sk-two,", []string{"sk-one", "sk-two"}, nil},
		{"sk-one,sk-two,sk-one", []string{"sk-one", "sk-two"}, []string{"key 3: same key as key 1"}},
		{"sk-one,sk\ttwo", []string{"sk-one"}, []string{"key 2: must be printable ASCII without spaces"}},
		{"sk\x7fone", nil, []string{"must be printable ASCII without spaces"}},
	} {
		keys, problems := splitKeys(tt.in)
		var got []string
		for _, k := range keys {
			got = append(got, k.Reveal())
		}
		if fmt.Sprint(got) != fmt.Sprint(tt.keys) || fmt.Sprint(problems) != fmt.Sprint(tt.problems) {
			t.Errorf("splitKeys(%q) = %q, %q; want %q, %q", tt.in, got, problems, tt.keys, tt.problems)
		}
	}
}

// revealAll returns the keys' values, for comparisons in tests.
func revealAll(keys []Secret) []string {
	var out []string
	for _, k := range keys {
		out = append(out, k.Reveal())
	}
	return out
}
