// Command tencentscf is the Tencent Cloud SCF web function build of
// chatgpt_reverse_proxy. scf_bootstrap starts it; it listens on 0.0.0.0:9000.
// Its presets and adapter are in platforms/internal/tencentscf.
package main

import (
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/start"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/tencentscf"
)

func main() {
	start.Main(tencentscf.Platform())
}
