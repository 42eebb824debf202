package main

import (
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/internal/testkit"
)

// samTemplate is the part of build/awslambda/template.yaml the README's
// deployment depends on.
type samTemplate struct {
	Resources map[string]struct {
		Type       string `yaml:"Type"`
		Properties struct {
			Handler     string `yaml:"Handler"`
			Runtime     string `yaml:"Runtime"`
			Environment struct {
				Variables map[string]string `yaml:"Variables"`
			} `yaml:"Environment"`
			FunctionURLConfig struct {
				InvokeMode string `yaml:"InvokeMode"`
			} `yaml:"FunctionUrlConfig"`
			Action                string `yaml:"Action"`
			InvokedViaFunctionURL bool   `yaml:"InvokedViaFunctionUrl"`
		} `yaml:"Properties"`
	} `yaml:"Resources"`
}

// The SAM template must deploy what the README describes: the bootstrap on
// provided.al2023 behind a RESPONSE_STREAM URL, with the matching setting,
// and the permission a public function URL needs.
func TestSAMTemplate_streamingSettingsMatch(t *testing.T) {
	b := testkit.ReadFile(t, "..", "..", "build", "awslambda", "template.yaml")
	var tpl samTemplate
	if err := yaml.Unmarshal(b, &tpl); err != nil {
		t.Fatalf("template.yaml: %v", err)
	}
	fn, ok := tpl.Resources["Proxy"]
	if !ok || fn.Type != "AWS::Serverless::Function" {
		t.Fatalf("Resources.Proxy = %+v; want an AWS::Serverless::Function", fn)
	}
	p := fn.Properties
	if p.Handler != "bootstrap" || p.Runtime != "provided.al2023" {
		t.Errorf("Proxy Handler %q, Runtime %q; want bootstrap on provided.al2023", p.Handler, p.Runtime)
	}
	if p.FunctionURLConfig.InvokeMode != "RESPONSE_STREAM" {
		t.Errorf("Proxy FunctionUrlConfig.InvokeMode = %q; want RESPONSE_STREAM", p.FunctionURLConfig.InvokeMode)
	}
	if got := p.Environment.Variables["OXY_LAMBDA_INVOKE_MODE"]; got != "response_stream" {
		t.Errorf("Proxy OXY_LAMBDA_INVOKE_MODE = %q; want response_stream, matching the URL's InvokeMode", got)
	}
	perm := tpl.Resources["ProxyInvokeViaUrl"]
	if perm.Type != "AWS::Lambda::Permission" || perm.Properties.Action != "lambda:InvokeFunction" ||
		!perm.Properties.InvokedViaFunctionURL {
		t.Errorf("Resources.ProxyInvokeViaUrl = %+v; want lambda:InvokeFunction with InvokedViaFunctionUrl: true", perm)
	}
}
