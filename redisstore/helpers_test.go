package redisstore

import (
	"bytes"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/core"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func fmtSscan(s string, n *int) (int, error) { return fmt.Sscan(s, n) }

func minuteID(now time.Time) string {
	id, _ := core.Window(core.LimitRPM, now)
	return strconv.FormatInt(id, 10)
}
