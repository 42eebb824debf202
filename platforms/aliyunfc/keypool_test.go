package main

import (
	"testing"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/platformtest"
)

// TestBinary_keyPool runs the key-pool checks through the FC custom runtime
// binary, with the headers FC adds.
func TestBinary_keyPool(t *testing.T) {
	platformtest.NeedBinary(t, bin)
	up := platformtest.NewKeyedUpstream(t)
	p := platformtest.Start(t, bin, "OXY_PORT", platformtest.PoolEnvList(up)...)
	platformtest.CheckKeyPool(t, up, platformtest.SendHTTP(p.URL, platformtest.FCHeaders()))
}
