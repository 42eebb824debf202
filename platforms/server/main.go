// Command chatgpt_reverse_proxy is the plain HTTP server build, for servers and
// Docker: a reverse proxy for the OpenAI API and other AI APIs.
package main

import "github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/serve"

func main() {
	serve.Main(serve.Platform{Name: "server"})
}
