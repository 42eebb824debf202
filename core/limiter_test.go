package core_test

import (
	"testing"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/core"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/core/limitertest"
)

func TestMemoryLimiter(t *testing.T) {
	limitertest.Run(t, func(*testing.T) core.Limiter { return core.NewMemoryLimiter() })
}
