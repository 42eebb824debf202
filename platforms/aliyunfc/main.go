// Command aliyunfc is the Aliyun Function Compute custom runtime build of
// chatgpt_reverse_proxy (startup command /code/main, or /code/bootstrap). It
// listens on 0.0.0.0 at the port FC assigns. Its presets and adapter are in
// platforms/internal/aliyunfc.
package main

import (
	"os"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/aliyunfc"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/start"
)

func main() {
	start.Main(aliyunfc.Platform(os.LookupEnv))
}
