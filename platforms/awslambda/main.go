// Command bootstrap is the AWS Lambda build of chatgpt_reverse_proxy, for a
// function URL on the provided.al2023 runtime. Build it with
//
//	CGO_ENABLED=0 GOOS=linux go build -tags lambda.norpc -o bootstrap ./platforms/awslambda
//
// and set OXY_LAMBDA_INVOKE_MODE to the function URL's invoke mode. Its
// presets and runner are in platforms/internal/awslambda.
package main

import (
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/awslambda"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/start"
)

func main() {
	start.Main(awslambda.Platform())
}
