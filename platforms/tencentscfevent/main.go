// Command chatgpt_reverse_proxy, Tencent Cloud SCF event function build: the
// proxy answering API gateway and function-URL events through the SCF Go
// runtime (scf-go-lib's net/rpc protocol), one buffered reply per request.
// Deploy it as the binary `main` of a Go event function. Its presets and
// runner are in platforms/internal/tencentscfevent.
package main

import (
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/start"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/tencentscfevent"
)

func main() {
	start.Main(tencentscfevent.Platform())
}
