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

// The presets are fresh slices: a platform appending to its copy cannot
// change another's.
func TestPresets_freshSlices(t *testing.T) {
	a := StripHeaders()
	a[0] = "Changed"
	if StripHeaders()[0] == "Changed" {
		t.Error("StripHeaders returned shared storage")
	}
}
