package core

import (
	"go/build"
	"strings"
	"testing"
)

// TestCore_importsStandardLibraryOnly keeps core (and its subpackages) free
// of third-party code: adapters such as the Prometheus exporter and the br
// and zstd decoders live outside it, behind interfaces core defines.
func TestCore_importsStandardLibraryOnly(t *testing.T) {
	const module = "github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/"
	for _, dir := range []string{".", "usage", "limitertest"} {
		pkg, err := build.ImportDir(dir, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range pkg.Imports {
			first, _, _ := strings.Cut(imp, "/")
			if strings.Contains(first, ".") && !strings.HasPrefix(imp, module+"core") {
				t.Errorf("core/%s imports %s; core uses the standard library only", dir, imp)
			}
		}
	}
}
