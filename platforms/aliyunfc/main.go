// Command aliyunfc is the Aliyun Function Compute custom runtime build of
// chatgpt_reverse_proxy (startup command /code/main, or /code/bootstrap). It
// listens on 0.0.0.0 at the port FC assigns. Its presets are in
// platforms/internal/fc.Platform.
package main

import (
	"os"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/fc"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/serve"
)

func main() {
	serve.Main(fc.Platform(os.LookupEnv))
}
