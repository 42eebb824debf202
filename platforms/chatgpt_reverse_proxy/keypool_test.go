package main

import (
	"testing"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/platformtest"
)

// TestKeyPool_failoverAndAllResting runs the key-pool checks through the
// server build's start-up (start.Run, as main runs it).
func TestKeyPool_failoverAndAllResting(t *testing.T) {
	up := platformtest.NewKeyedUpstream(t)
	p := platformtest.RunInProcess(t, platform, platformtest.PoolEnv(up))
	platformtest.CheckKeyPool(t, up, platformtest.SendHTTP(p.URL, nil))
}
