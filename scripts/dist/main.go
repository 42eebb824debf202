// Command dist builds the release archives that .goreleaser.yaml defines, with
// the same names and contents as a goreleaser release, without goreleaser:
// static, -trimpath binaries stamped with the version, packed with their extra
// files (every file carrying the commit's time), plus a sha256 checksum file.
// It needs only Go and git. From the repository root:
//
//	VERSION=1.2.3 go run ./scripts/dist                           # every archive, into dist/
//	VERSION=1.2.3 DIST_TARGETS=linux/amd64 go run ./scripts/dist  # only these os/arch
//	VERSION=1.2.3 DIST_DIR=out go run ./scripts/dist              # elsewhere
//	VERSION=1.2.3 go run ./scripts/dist -notes                    # print the release notes
//
// DIST_TARGETS is a comma-separated list of os/arch as in the archive names
// (linux/armv7, windows/arm64). -notes prints the version's section of
// CHANGELOG.md, which goreleaser publishes with --release-notes.
package main

import (
	"flag"
	"fmt"
	"os"
	"regexp"
	"strings"
)

var versionRE = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.+-]+)?$`)

func main() {
	notes := flag.Bool("notes", false, "print the release notes of VERSION from CHANGELOG.md and exit")
	flag.Parse()
	if err := run(*notes); err != nil {
		fmt.Fprintf(os.Stderr, "dist: error: %v\n", err)
		os.Exit(1)
	}
}

func run(notes bool) error {
	version := strings.TrimPrefix(os.Getenv("VERSION"), "v")
	if version == "" {
		return fmt.Errorf("VERSION is not set, want e.g. VERSION=1.2.3")
	}
	if !versionRE.MatchString(version) {
		return fmt.Errorf("VERSION=%q is not a version, want e.g. 1.2.3 or 1.2.3-rc.1", version)
	}
	if notes {
		text, err := releaseNotes("CHANGELOG.md", version)
		if err != nil {
			return err
		}
		fmt.Print(text)
		return nil
	}
	cfg, err := loadConfig(".goreleaser.yaml")
	if err != nil {
		return err
	}
	dir := os.Getenv("DIST_DIR")
	if dir == "" {
		dir = "dist"
	}
	var only []string
	if s := os.Getenv("DIST_TARGETS"); s != "" {
		only = strings.Split(s, ",")
	}
	git, err := readGit()
	if err != nil {
		return err
	}
	return dist(cfg, plan{Version: version, Git: git, Dir: dir, Only: only, Log: os.Stderr})
}
