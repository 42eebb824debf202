package core

import (
	"context"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/internal/testkit"
)

// limitsEnv is keyedEnv (alice:testProxyKey and the unnamed key#2) with OXY_LIMITS.
func limitsEnv(limits string) map[string]string {
	env := keyedEnv()
	env["OXY_LIMITS"] = limits
	return env
}

func TestFromEnv_limits(t *testing.T) {
	for _, tc := range []struct {
		limits string
		want   map[string]Limits
	}{
		{"alice=rpm:60/tpm:200000/concurrent:4/tpd:5000000, *=rpm:20",
			map[string]Limits{"alice": {RPM: 60, TPM: 200000, Concurrent: 4, TPD: 5000000}, "key#2": {RPM: 20}}},
		{"key#2=concurrent:1", map[string]Limits{"key#2": {Concurrent: 1}}},
		{" alice = TPD:10 / rpm : 5 ,", map[string]Limits{"alice": {RPM: 5, TPD: 10}}},
		// A key with its own entry gets only its own limits.
		{"*=tpd:100, alice=rpm:1", map[string]Limits{"alice": {RPM: 1}, "key#2": {TPD: 100}}},
		{"", nil},
	} {
		c, err := FromEnv(testkit.Lookup(limitsEnv(tc.limits)), Options{})
		if err != nil {
			t.Errorf("OXY_LIMITS=%q: %v", tc.limits, err)
			continue
		}
		if !reflect.DeepEqual(c.Limits, tc.want) {
			t.Errorf("OXY_LIMITS=%q: Limits = %v; want %v", tc.limits, c.Limits, tc.want)
		}
	}
	if got := (Limits{RPM: 60, TPM: 200000, Concurrent: 4, TPD: 5000000}).String(); got != "rpm:60/tpm:200000/concurrent:4/tpd:5000000" {
		t.Errorf("String() = %q", got)
	}
}

func TestFromEnv_limitsInvalid(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"without auth keys", map[string]string{"OXY_LIMITS": "*=rpm:1"}, "OXY_LIMITS: set without OXY_AUTH_KEYS"},
		{"unknown name, nearest", limitsEnv("alcie=rpm:1"), `OXY_LIMITS: entry 1: "alcie" is not a proxy-key name, did you mean "alice"?`},
		{"unknown name, far", limitsEnv("rpm=rpm:1"), `OXY_LIMITS: entry 1: "rpm" is not a proxy-key name; names are those of OXY_AUTH_KEYS`},
		{"unnamed key past the end", limitsEnv("key#3=rpm:1"), `entry 1: "key#3" is not a proxy-key name, did you mean "key#2"?`},
		{"no equals", limitsEnv("alice"), `OXY_LIMITS: entry 1 "alice": want NAME=KIND:NUMBER/...`},
		{"no limits", limitsEnv("alice="), "OXY_LIMITS: entry 1 (alice): no limits after '='"},
		{"unknown kind", limitsEnv("alice=rmp:1"), `OXY_LIMITS: entry 1 (alice): "rmp" is not a kind of limit, did you mean rpm?`},
		{"per-hour kind", limitsEnv("alice=concurency:1"), `"concurency" is not a kind of limit, did you mean concurrent?`},
		{"zero", limitsEnv("alice=rpm:0"), "OXY_LIMITS: entry 1 (alice): rpm:0: want a whole number from 1 to"},
		{"negative", limitsEnv("alice=tpd:-5"), "entry 1 (alice): tpd:-5: want a whole number"},
		{"not a number", limitsEnv("alice=tpm:2e5"), "entry 1 (alice): tpm:2e5: want a whole number"},
		{"too large", limitsEnv("alice=tpm:99999999999999999999"), "tpm:99999999999999999999: want a whole number"},
		{"no colon", limitsEnv("alice=rpm60"), `entry 1 (alice): "rpm60": want KIND:NUMBER`},
		{"kind twice", limitsEnv("alice=rpm:1/rpm:2"), "entry 1 (alice): rpm given twice"},
		{"name twice", limitsEnv("alice=rpm:1,alice=tpd:2"), `entry 2: "alice" has limits already`},
		{"key instead of name", limitsEnv(testProxyKey + "=rpm:1"), "OXY_LIMITS: entry 1 holds a proxy key itself"},
		{"fail closed without redis", map[string]string{"OXY_LIMITS_FAIL_CLOSED": "true"}, `OXY_LIMITS_FAIL_CLOSED="true": set without OXY_REDIS_URL`},
		{"fail closed not a bool", map[string]string{"OXY_LIMITS_FAIL_CLOSED": "yes please"}, `OXY_LIMITS_FAIL_CLOSED="yes please": must be true or false`},
		{"redis scheme", map[string]string{"OXY_REDIS_URL": "http://:hunter2secret@host:6379"}, `OXY_REDIS_URL: scheme "http" not supported, want redis://`},
		{"redis no scheme", map[string]string{"OXY_REDIS_URL": "localhost:6379"}, "OXY_REDIS_URL: missing scheme"},
		{"redis no host", map[string]string{"OXY_REDIS_URL": "redis://:hunter2secret@/0"}, "OXY_REDIS_URL: missing host"},
		{"redis bad port", map[string]string{"OXY_REDIS_URL": "redis://:hunter2secret@host:99999"}, "OXY_REDIS_URL: the port is not a number 1-65535"},
		{"redis bad db", map[string]string{"OXY_REDIS_URL": "redis://:hunter2secret@host:6379/x"}, "OXY_REDIS_URL: the database after the host must be a number"},
		// An unescaped '/' in the password makes the rest of it a "port"
		// or a "database": neither may be shown.
		{"redis slash in password", map[string]string{"OXY_REDIS_URL": "redis://:hunter2/secret@host:6379"}, "OXY_REDIS_URL: the port is not a number"},
		{"redis slash in password, user", map[string]string{"OXY_REDIS_URL": "redis://default:hunter2/secret@host"}, "OXY_REDIS_URL: the port is not a number"},
		{"redis fragment", map[string]string{"OXY_REDIS_URL": "rediss://:hunter2#secret@host"}, "OXY_REDIS_URL: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := FromEnv(testkit.Lookup(tc.env), Options{Environ: testkit.Environ(tc.env)})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v; want %q", err, tc.want)
			}
			for _, secret := range []string{testRealKey, testProxyKey, testProxyKey2, "hunter2", "secret@"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error shows a secret (%q):\n%v", secret, err)
				}
			}
		})
	}
}

// TestFromEnv_limitsEveryProblemAtOnce proves that a bad OXY_LIMITS, a bad
// OXY_REDIS_URL and other bad settings are all reported in one error.
func TestFromEnv_limitsEveryProblemAtOnce(t *testing.T) {
	env := limitsEnv("alcie=rpm:1, key#2=rpm:0/tmp:5, *=concurrent:x")
	env["OXY_REDIS_URL"] = "redis://:pw@host:6379/db"
	env["OXY_PORT"] = "70000"
	_, err := FromEnv(testkit.Lookup(env), Options{Environ: testkit.Environ(env)})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{`"alcie" is not a proxy-key name, did you mean "alice"?`, "entry 2 (key#2): rpm:0:",
		`entry 2 (key#2): "tmp" is not a kind of limit, did you mean tpm?`, "entry 3 (*): concurrent:x:",
		"OXY_REDIS_URL: the database", `OXY_PORT="70000"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestCheckRedisURL_accepts(t *testing.T) {
	for _, v := range []string{"redis://127.0.0.1:6379", "redis://localhost", "rediss://:p%40ss%2Fword@cache.example.com:6380/3",
		"redis://user:pass@[::1]:6379/0", "REDIS://h/", "redis://h:6379/15?dial_timeout=3s&protocol=3"} {
		if err := CheckRedisURL(v); err != nil {
			t.Errorf("CheckRedisURL(%q) = %v; want nil", v, err)
		}
	}
}

// at parses an RFC 3339 time.
func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestWindow(t *testing.T) {
	id, ends := Window(LimitTPD, at("2026-12-01T23:59:59Z"))
	if !ends.Equal(at("2026-12-02T00:00:00Z")) {
		t.Errorf("day window ends %v; want UTC midnight", ends)
	}
	if id2, _ := Window(LimitTPD, at("2026-12-02T00:00:00Z")); id2 != id+1 {
		t.Errorf("next day's window %d; want %d", id2, id+1)
	}
	// The day is UTC's whatever the clock's zone.
	shanghai := time.FixedZone("CST", 8*3600)
	if _, ends := Window(LimitTPD, time.Date(2026, 12, 2, 7, 0, 0, 0, shanghai)); !ends.Equal(at("2026-12-02T00:00:00Z")) {
		t.Errorf("day window at 07:00 +08:00 ends %v; want 2026-12-02T00:00:00Z", ends)
	}
	if _, ends := Window(LimitRPM, at("2026-12-01T12:00:01Z")); !ends.Equal(at("2026-12-01T12:01:00Z")) {
		t.Errorf("minute window ends %v", ends)
	}
}

// countingLimiter wraps a Limiter and counts its calls.
type countingLimiter struct {
	Limiter
	admits, dones atomic.Int64
}

func (c *countingLimiter) Admit(ctx context.Context, b Budget, now time.Time) (Verdict, error) {
	c.admits.Add(1)
	return c.Limiter.Admit(ctx, b, now)
}

func (c *countingLimiter) Done(ctx context.Context, b Budget, lease string, tokens int64, now time.Time) error {
	c.dones.Add(1)
	return c.Limiter.Done(ctx, b, lease, tokens, now)
}
