package start

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/core"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/internal/testkit"
)

// refuseRunner fails the test if start-up ever gets as far as running.
func refuseRunner(t *testing.T) func(core.Config, *slog.Logger, core.LookupFunc) (Runner, error) {
	return func(core.Config, *slog.Logger, core.LookupFunc) (Runner, error) {
		t.Error("the runner was built")
		return nil, errors.New("not reached")
	}
}

func TestRun_flagsAndSettings(t *testing.T) {
	var out, errOut bytes.Buffer
	none := func(string) (string, bool) { return "", false }
	if err := Run(context.Background(), Platform{Name: "test", NewRunner: refuseRunner(t)}, []string{"-version"}, none, nil, &out, &errOut); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-version: %v", err)
	}
	if !strings.HasPrefix(out.String(), "chatgpt_reverse_proxy ") || !strings.Contains(out.String(), "go1.") {
		t.Errorf("-version printed %q", out.String())
	}
	out.Reset()
	errOut.Reset()
	if err := Run(context.Background(), Platform{Name: "test", NewRunner: refuseRunner(t)}, []string{"-h"}, none, nil, &out, &errOut); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	for _, want := range []string{"OXY_TARGET", "https://api.openai.com", "OXY_PORT", "9000", "OXY_HOP_HEADER_PREFIX", "-healthcheck"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("-h on stdout lacks %q:\n%s", want, out.String())
		}
	}
	if errOut.Len() != 0 {
		t.Errorf("-h wrote to stderr: %q; want the usage on stdout only", errOut.String())
	}
	errOut.Reset()
	if err := Run(context.Background(), Platform{Name: "test", NewRunner: refuseRunner(t)}, []string{"-bogus"}, none, nil, &out, &errOut); !errors.As(err, new(usageError)) ||
		!strings.Contains(err.Error(), "-bogus") || errOut.Len() != 0 {
		t.Errorf("-bogus: err %v, stderr %q; want a usage error, printed by Exit only", err, errOut.String())
	}
	bad := func(k string) (string, bool) {
		if k == "OXY_PORT" {
			return "0", true
		}
		return "", false
	}
	err := Run(context.Background(), Platform{Name: "test", NewRunner: refuseRunner(t)}, nil, bad, []string{"OXY_PORT=0"}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), `OXY_PORT="0": must be a port number 1-65535`) {
		t.Errorf("bad port: %v", err)
	}
	var ue usageError
	if err := Run(context.Background(), Platform{Name: "test", NewRunner: refuseRunner(t)}, []string{"extra"}, none, nil, &out, &errOut); !errors.As(err, &ue) {
		t.Errorf("stray argument: %v; want a usage error", err)
	}
}

// A platform's Check refuses settings before anything listens.
func TestRun_platformCheckRefusesBeforeListening(t *testing.T) {
	port := testkit.FreePort(t)
	env := map[string]string{"OXY_HOST": "127.0.0.1", "OXY_PORT": fmt.Sprint(port)}
	lookup := testkit.Lookup(env)
	refused := errors.New("OXY_TARGET: not on this platform")
	var seen bool
	p := Platform{Name: "test", NewRunner: refuseRunner(t), Check: func(cfg core.Config) error {
		seen = cfg.Port == port
		return refused
	}}
	err := Run(context.Background(), p, nil, lookup, nil, io.Discard, io.Discard)
	if !errors.Is(err, refused) {
		t.Fatalf("Run = %v; want the Check error", err)
	}
	if !seen {
		t.Error("Check did not get the parsed settings")
	}
	if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
		c.Close()
		t.Error("something listens after Check refused the settings")
	}
}
