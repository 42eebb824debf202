package core

import (
	"bytes"
	"io"
	"net/http"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/core/usage"
)

// maxStreamUsageBody bounds the request bodies OXY_STREAM_USAGE reads whole
// to add stream_options; a larger one (a conversation with inline images) is
// sent as it came.
const maxStreamUsageBody = 4 << 20

// addStreamUsage asks for the usage chunk of an OpenAI-style streamed chat
// completion (OXY_STREAM_USAGE): without stream_options.include_usage a
// stream never reports its tokens. Only POSTs to .../chat/completions with an
// uncompressed JSON body are read; every other request, and a body that needs
// no change, goes on byte for byte.
func addStreamUsage(out *http.Request) {
	if out.Method != http.MethodPost || out.Body == nil || out.Body == http.NoBody ||
		!usage.IsChatCompletions(out.URL.Path) || usage.KindOf(out.Header.Get("Content-Type")) != usage.JSON ||
		out.Header.Get("Content-Encoding") != "" || out.ContentLength > maxStreamUsageBody {
		return
	}
	body := out.Body
	buf, err := io.ReadAll(io.LimitReader(body, maxStreamUsageBody+1))
	if err != nil || len(buf) > maxStreamUsageBody {
		// Send what was read, then the rest (or the read error) as is.
		out.Body = readCloser{io.MultiReader(bytes.NewReader(buf), body), body}
		return
	}
	changed, ok := usage.AddIncludeUsage(buf)
	if !ok {
		changed = buf
	} else {
		out.ContentLength = int64(len(changed))
	}
	out.Body = readCloser{bytes.NewReader(changed), body}
	out.GetBody = nil
}

type readCloser struct {
	io.Reader
	io.Closer
}
