package main

import (
	"net"
	"runtime"
	"strings"
	"testing"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/core"
)

// These tests run the real server binary, built once with go build and the
// version stamped through -ldflags -X, as a child process with a controlled
// environment.

func TestBinary_version(t *testing.T) {
	p := runBinary(t, nil, "-version")
	if code := p.Cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("-version exited with %d; want 0; stderr:\n%s", code, p.Stderr)
	}
	out := p.Stdout.String()
	for _, want := range []string{testVersion, testCommit, testDate, runtime.Version()} {
		if !strings.Contains(out, want) {
			t.Errorf("-version printed %q; want it to contain %q", out, want)
		}
	}
}

// TestBinary_help checks that -h lists the flags and every setting with its
// default, on stdout (so that `-h | less` works), and exits 0.
func TestBinary_help(t *testing.T) {
	p := runBinary(t, nil, "-h")
	if code := p.Cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("-h exited with %d; want 0", code)
	}
	out := p.Stdout.String()
	if p.Stderr.String() != "" {
		t.Errorf("-h wrote to stderr %q; want the usage on stdout", p.Stderr.String())
	}
	if !strings.Contains(out, "-version") || !strings.Contains(out, "-healthcheck") {
		t.Errorf("-h output does not mention -version and -healthcheck:\n%s", out)
	}
	lines := strings.Split(out, "\n")
	for _, s := range core.AllSettings(platform.Defaults) {
		def := s.Default
		if def == "" {
			def = `""`
		}
		found := false
		for _, line := range lines {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == s.Name && f[1] == def {
				found = true
			}
		}
		if !found {
			t.Errorf("-h has no line %q followed by its default %s:\n%s", s.Name, def, out)
		}
	}
}

// TestBinary_invalidSettings checks that bad settings make the binary exit 1
// before it listens, naming every bad variable at once.
func TestBinary_invalidSettings(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{
			name: "target without scheme",
			env:  map[string]string{"OXY_TARGET": "api.openai.com"},
			want: []string{`OXY_TARGET="api.openai.com": missing scheme, want https://host`},
		},
		{
			name: "port out of range",
			env:  map[string]string{"OXY_PORT": "70000"},
			want: []string{`OXY_PORT="70000"`, "1-65535"},
		},
		{
			name: "unknown setting",
			env:  map[string]string{"OXY_TARGTE": "https://api.openai.com"},
			want: []string{"OXY_TARGTE", "did you mean OXY_TARGET"},
		},
		{
			name: "bad budgets",
			env: map[string]string{"OXY_AUTH_KEYS": "alice:pk-alice-0123456789abcdef", "OXY_UPSTREAM_API_KEY": "sk-real-0123456789abcdef",
				"OXY_LIMITS": "alcie=rpm:60, *=tpd:lots"},
			want: []string{`OXY_LIMITS: entry 1: "alcie" is not a proxy-key name, did you mean "alice"?`, "OXY_LIMITS: entry 2 (*): tpd:lots: want a whole number"},
		},
		{
			name: "all reported together",
			env:  map[string]string{"OXY_TARGET": "api.openai.com", "OXY_PORT": "70000", "OXY_TARGTE": "x"},
			want: []string{`OXY_TARGET="api.openai.com": missing scheme`, `OXY_PORT="70000"`, "did you mean OXY_TARGET"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Hold the port: a binary that tried to listen before checking
			// its settings would fail with "address already in use".
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			env := withListenAddr(nil, ln.Addr().(*net.TCPAddr).Port)
			for k, v := range tt.env {
				env[k] = v
			}
			p := launch(t, env)
			code := p.Wait(t, exitTimeout)
			stderr := p.Stderr.String()
			if code != 1 {
				t.Errorf("exit code %d; want 1; stderr:\n%s", code, stderr)
			}
			for _, want := range tt.want {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr does not contain %q:\n%s", want, stderr)
				}
			}
			for _, bad := range append(listeningLine, "listening on", "address already in use") {
				if strings.Contains(stderr, bad) {
					t.Errorf("stderr contains %q: the binary got as far as listening:\n%s", bad, stderr)
				}
			}
		})
	}
}
