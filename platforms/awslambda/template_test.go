package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The SAM template must deploy what the README describes: the bootstrap on
// provided.al2023 behind a RESPONSE_STREAM URL, with the matching setting.
func TestSAMTemplate_streamingSettingsMatch(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "build", "awslambda", "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Handler: bootstrap",
		"Runtime: provided.al2023",
		"InvokeMode: RESPONSE_STREAM",
		"OXY_LAMBDA_INVOKE_MODE: response_stream",
		"InvokedViaFunctionUrl: true",
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("template.yaml lacks %q", want)
		}
	}
}
