// Command chatgpt_reverse_proxy is the plain HTTP server build, for servers and
// Docker: a reverse proxy for the OpenAI API and other AI APIs.
package main

import (
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/httpserver"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/start"
)

// platform is the server build: no presets beyond the core's, served by a
// long-lived HTTP server.
var platform = start.Platform{Name: "server", NewRunner: httpserver.LongLived}

func main() {
	start.Main(platform)
}
