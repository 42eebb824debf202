package scripts

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// releaseConfig is the part of .goreleaser.yaml the tests read.
type releaseConfig struct {
	Builds []struct {
		ID      string   `yaml:"id"`
		Targets []string `yaml:"targets"`
	} `yaml:"builds"`
	DockersV2 []struct {
		Images    []string `yaml:"images"`
		Platforms []string `yaml:"platforms"`
	} `yaml:"dockers_v2"`
}

func readReleaseConfig(t *testing.T) releaseConfig {
	t.Helper()
	data, err := os.ReadFile("../.goreleaser.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var c releaseConfig
	if err := yaml.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// serverTargets are the os_arch suffixes of the server archives, as
// .goreleaser.yaml lists them (linux_armv7 for linux_arm_7).
func serverTargets(t *testing.T) []string {
	t.Helper()
	for _, b := range readReleaseConfig(t).Builds {
		if b.ID != "server" {
			continue
		}
		var out []string
		for _, s := range b.Targets {
			p := strings.SplitN(s, "_", 3)
			arch := p[1]
			if arch == "arm" {
				arch = "armv" + p[2]
			}
			out = append(out, p[0]+"_"+arch)
		}
		return out
	}
	t.Fatal(".goreleaser.yaml has no build \"server\"")
	return nil
}

// TestRelease_everyArchitectureOfTheOriginal: the server binary is published
// for every os/arch the original tool published (its .goreleaser.yaml: linux,
// windows, darwin, freebsd, openbsd on amd64, arm64, 386, armv6/armv7;
// linux on riscv64 and the four mips; its images for linux ppc64le and
// s390x) and linux loong64; the image for linux/amd64 and linux/arm64.
func TestRelease_everyArchitectureOfTheOriginal(t *testing.T) {
	want := []string{
		"linux_amd64", "linux_arm64", "linux_386", "linux_armv6", "linux_armv7",
		"linux_riscv64", "linux_loong64", "linux_s390x", "linux_ppc64le",
		"linux_mips", "linux_mipsle", "linux_mips64", "linux_mips64le",
		"windows_amd64", "windows_arm64", "windows_386",
		"darwin_amd64", "darwin_arm64",
		"freebsd_amd64", "freebsd_arm64", "freebsd_386", "freebsd_armv6", "freebsd_armv7",
		"openbsd_amd64", "openbsd_arm64", "openbsd_386", "openbsd_armv7",
	}
	got := serverTargets(t)
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf(".goreleaser.yaml: the server build lacks %s", w)
		}
	}
	c := readReleaseConfig(t)
	if len(c.DockersV2) != 1 || !slices.Equal(c.DockersV2[0].Platforms, []string{"linux/amd64", "linux/arm64"}) {
		t.Errorf(".goreleaser.yaml dockers_v2 = %+v; want one image for linux/amd64 and linux/arm64", c.DockersV2)
	}
}

// TestRelease_docsNameEveryArchive: docs/RELEASING.md lists every server
// target and names every other archive of .goreleaser.yaml.
func TestRelease_docsNameEveryArchive(t *testing.T) {
	doc, err := os.ReadFile("../docs/RELEASING.md")
	if err != nil {
		t.Fatal(err)
	}
	var targets []string
	for _, s := range serverTargets(t) {
		targets = append(targets, "`"+strings.Replace(s, "_", "/", 1)+"`")
	}
	if line := "Server targets: " + strings.Join(targets, ", ") + "."; !bytes.Contains(doc, []byte(line)) {
		t.Errorf("docs/RELEASING.md lacks the line\n%s", line)
	}
	for _, b := range readReleaseConfig(t).Builds {
		if b.ID == "server" {
			continue
		}
		prefix := map[string]string{
			"tencentscf": "tencentcloud_scf_", "aliyunfc": "aliyun_fc_",
			"tencentscfevent": "tencentcloud_scf_event_", "awslambda": "aws_lambda_",
		}[b.ID]
		for _, s := range b.Targets {
			p := strings.SplitN(s, "_", 3)
			name := prefix + "chatgpt_reverse_proxy_v<version>_" + p[0] + "_" + p[1] + ".zip"
			if prefix == "" || !bytes.Contains(doc, []byte(name)) {
				t.Errorf("docs/RELEASING.md does not name the archive %s (build %q)", name, b.ID)
			}
		}
	}
}

// findGoreleaser returns the goreleaser binary, or skips (fails where
// RELEASE_TESTS=require, as in .ci/run).
func findGoreleaser(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("GORELEASER"); p != "" {
		return p
	}
	if p, err := exec.LookPath("goreleaser"); err == nil {
		return p
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "bin", "goreleaser")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	msg := "goreleaser not installed (make release-check installs it; .ci/run too)"
	if os.Getenv("RELEASE_TESTS") == "require" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// TestRelease_distMatchesGoreleaser: a tagged goreleaser release and
// `make dist` of the same commit give the same archive names, and in each
// archive the same files with the same bytes, modes and times. Both run on a
// copy of the working tree committed and tagged v1.2.3, with the targets cut
// to linux/amd64 to keep it short (DIST_FULL=1: every target).
func TestRelease_distMatchesGoreleaser(t *testing.T) {
	if testing.Short() {
		t.Skip("builds release archives; skipped with -short")
	}
	goreleaser := findGoreleaser(t)
	repo := copyTree(t, os.Getenv("DIST_FULL") != "1")
	git(t, repo, "tag", "v1.2.3")

	cmd := exec.Command(goreleaser, "release", "--clean", "--skip=publish,docker")
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "GORELEASER_CURRENT_TAG=v1.2.3")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("goreleaser release: %v\n%s", err, out)
	}
	released := filepath.Join(repo, "dist")
	ours, out, err := runDist(t, repo, "VERSION=1.2.3")
	if err != nil {
		t.Fatalf("dist: %v\n%s", err, out)
	}

	artifacts := func(dir string) []string {
		var names []string
		for _, n := range list(t, dir) {
			if strings.HasSuffix(n, ".zip") || strings.HasSuffix(n, ".tar.gz") || strings.HasSuffix(n, "_checksums.txt") {
				names = append(names, n)
			}
		}
		return names
	}
	want, got := artifacts(released), artifacts(ours)
	if len(want) < 6 || !slices.Equal(got, want) {
		t.Fatalf("make dist gives %q;\ngoreleaser gives %q", got, want)
	}
	theirs, mine := readArchives(t, released), readArchives(t, ours)
	for name, files := range theirs {
		if g, w := describe(mine[name]), describe(files); g != w {
			t.Errorf("%s: make dist holds\n%s\ngoreleaser holds\n%s", name, g, w)
		}
	}
}

// describe lists an archive's files: name, mode, time, sha256.
func describe(files map[string]file) string {
	var lines []string
	for name, f := range files {
		h := sha256.Sum256(f.data)
		lines = append(lines, fmt.Sprintf("  %s %v %s %s", name, f.mode.Perm(), f.mtime.UTC().Format("2006-01-02T15:04:05Z"), hex.EncodeToString(h[:8])))
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// copyTree copies the working tree (tracked and new files, as git sees them)
// into a new git repository with one commit at a fixed time and the
// project's remote, and returns it. With short, the release targets are cut
// to linux/amd64.
func copyTree(t *testing.T, short bool) string {
	t.Helper()
	out, err := exec.Command("git", "-C", "..", "ls-files", "-co", "--exclude-standard", "-z").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	repo := t.TempDir()
	for _, name := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		src := filepath.Join("..", name)
		st, err := os.Lstat(src)
		if os.IsNotExist(err) {
			continue // deleted in the working tree
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(repo, name)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, st.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	if short {
		cutTargets(t, filepath.Join(repo, ".goreleaser.yaml"))
	}
	git(t, repo, "init", "-q")
	git(t, repo, "add", "-A")
	git(t, repo, "commit", "-q", "-m", "release test")
	git(t, repo, "remote", "add", "origin", "https://github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy.git")
	return repo
}

// cutTargets keeps only the linux/amd64 targets of every build.
func cutTargets(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	root := doc.Content[0]
	for i := 0; i < len(root.Content); i += 2 {
		if root.Content[i].Value != "builds" {
			continue
		}
		for _, b := range root.Content[i+1].Content {
			for j := 0; j < len(b.Content); j += 2 {
				if b.Content[j].Value != "targets" {
					continue
				}
				seq := b.Content[j+1]
				seq.Content = slices.DeleteFunc(seq.Content, func(n *yaml.Node) bool {
					return !strings.HasPrefix(n.Value, "linux_amd64")
				})
			}
		}
	}
	out, err := yaml.Marshal(&doc)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

func git(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.name=test", "-c", "user.email=test@example.com"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_DATE=2026-01-02T03:04:05Z", "GIT_COMMITTER_DATE=2026-01-02T03:04:05Z")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}
