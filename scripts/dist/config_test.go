package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const goodConfig = `version: 2
project_name: p
builds:
  - id: a
    main: ./a
    binary: a
    targets: [linux_amd64_v1, linux_arm_7]
archives:
  - id: a
    ids: [a]
    name_template: "{{ .ProjectName }}_{{ .Os }}_{{ .Arch }}{{ if .Arm }}v{{ .Arm }}{{ end }}"
    formats: [tar.gz]
    files:
      - src: LICENSE
        info: {mode: 0644, mtime: "{{ .CommitDate }}"}
checksum:
  name_template: sums.txt
  algorithm: sha256
`

func TestParseConfig_readsTheRelease(t *testing.T) {
	c, err := parseConfig([]byte(goodConfig))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Archives[0].Files[0].Info.Mode; got != 0o644 {
		t.Errorf("mode = %o; want 644 (YAML 0644 is octal, as goreleaser reads it)", got)
	}
	tg, _ := parseTarget(c.Builds[0].Targets[1])
	if tg.Arch() != "armv7" || !slices.Equal(tg.Env(), []string{"GOOS=linux", "GOARCH=arm", "GOARM=7"}) {
		t.Errorf("linux_arm_7: arch %q env %q; want armv7 and GOARM=7", tg.Arch(), tg.Env())
	}
	name, err := expand(c.Archives[0].NameTemplate, map[string]string{"ProjectName": "p", "Os": "linux", "Arch": "arm", "Arm": "7"})
	if err != nil || name != "p_linux_armv7" {
		t.Errorf("name = %q, %v; want p_linux_armv7", name, err)
	}
}

// TestParseConfig_refusesWhatItWouldBuildDifferently: any field or value that
// scripts/dist does not implement stops it, rather than being ignored.
func TestParseConfig_refusesWhatItWouldBuildDifferently(t *testing.T) {
	for _, tc := range []struct{ name, from, to, want string }{
		{"unknown build field", "    binary: a\n", "    binary: a\n    goamd64: [v2]\n", "goamd64"},
		{"goos/goarch instead of targets", "    targets: [linux_amd64_v1, linux_arm_7]\n", "    goos: [linux]\n", "goos"},
		{"no targets", "    targets: [linux_amd64_v1, linux_arm_7]\n", "", "targets"},
		{"bad target", "linux_arm_7]", "linux]", "linux"},
		{"variant on an arch without one", "linux_arm_7]", "linux_s390x_z15]", "s390x"},
		{"glob", "src: LICENSE", "src: LICENSE*", "glob"},
		{"file time not fixed", `info: {mode: 0644, mtime: "{{ .CommitDate }}"}`, "info: {mode: 0644}", "mtime"},
		{"unknown format", "formats: [tar.gz]", "formats: [tar.xz]", "tar.xz"},
		{"unknown top-level section", "checksum:", "nfpms: []\nchecksum:", "nfpms"},
		{"build in no archive", "    ids: [a]\n", "    ids: [b]\n", "ids"},
		{"other checksum", "algorithm: sha256", "algorithm: sha512", "sha512"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := strings.Replace(goodConfig, tc.from, tc.to, 1)
			if cfg == goodConfig {
				t.Fatalf("%q not in the config", tc.from)
			}
			_, err := parseConfig([]byte(cfg))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v; want one naming %q", err, tc.want)
			}
		})
	}
}

func TestExpand_unknownFieldIsAnError(t *testing.T) {
	if _, err := expand("{{ .Tag }}", map[string]string{"Version": "1"}); err == nil {
		t.Error("expand({{ .Tag }}) = nil error; want one (scripts/dist does not know .Tag)")
	}
}

func TestReleaseNotes_sectionOfTheVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "CHANGELOG.md")
	changelog := "# Changelog\n\nintro\n\n## [Unreleased]\n\n- next\n\n## [1.2.3] - 2026-12-01\n\n### Added\n\n- this\n\n## [1.2.2] - 2026-11-01\n\n- older\n"
	if err := os.WriteFile(path, []byte(changelog), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := releaseNotes(path, "1.2.3")
	if want := "### Added\n\n- this\n"; err != nil || got != want {
		t.Errorf("notes = %q, %v; want %q", got, err, want)
	}
	if _, err := releaseNotes(path, "1.2.4"); err == nil || !strings.Contains(err.Error(), "## [1.2.4]") {
		t.Errorf("notes for a version without a section: err = %v; want one naming the heading", err)
	}
}
