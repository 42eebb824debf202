// Command tencentscf is the Tencent Cloud SCF web function build of
// chatgpt_reverse_proxy. scf_bootstrap starts it; it listens on 0.0.0.0:9000.
// Its presets are in platforms/internal/scfweb.Platform.
package main

import (
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/scfweb"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/serve"
)

func main() {
	serve.Main(scfweb.Platform())
}
