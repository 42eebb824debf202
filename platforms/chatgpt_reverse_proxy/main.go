// Command chatgpt_reverse_proxy is the plain HTTP server build, for servers and
// Docker: a reverse proxy for the OpenAI API and other AI APIs.
//
//	go install github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/chatgpt_reverse_proxy@latest
//
// The folder is named for the command that go install makes; the platform's
// name in -h and in the log is "server".
package main

import (
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/httpserver"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/start"

	// Mozilla's CA roots, used only where the system has none: the Docker
	// image is FROM scratch, with no /etc/ssl, and still reaches the vendors
	// over HTTPS. On a system with its own roots (and with SSL_CERT_FILE)
	// those are used, as before.
	_ "golang.org/x/crypto/x509roots/fallback"
)

// platform is the server build: no presets beyond the core's, served by a
// long-lived HTTP server.
var platform = start.Platform{Name: "server", NewRunner: httpserver.LongLived}

func main() {
	start.Main(platform)
}
