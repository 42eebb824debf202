package main

import (
	"os/exec"
	"testing"
)

// TestRefConfigs checks the configuration written for every reference server
// with the server's own checker (nginx -t, haproxy -c, caddy validate), for
// those installed here.
func TestRefConfigs(t *testing.T) {
	s, err := parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range refServers {
		t.Run(r.name, func(t *testing.T) {
			bin, err := exec.LookPath(r.name)
			if err != nil {
				for _, p := range r.paths {
					if bin, err = exec.LookPath(p); err == nil {
						break
					}
				}
			}
			if err != nil {
				t.Skipf("%s not installed (Debian package %s)", r.name, r.pkg)
			}
			if err := (foundRef{r, bin}).checkConfig(s, t.TempDir()); err != nil {
				t.Error(err)
			}
		})
	}
}
