// Command chatgpt_reverse_proxy is the plain HTTP server build, for servers and
// Docker: a reverse proxy for the OpenAI API and other AI APIs.
package main

import "github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/serve"

// platform is the server build: no presets beyond the core's.
var platform = serve.Platform{Name: "server"}

func main() {
	serve.Main(platform)
}
