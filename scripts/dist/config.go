package main

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"text/template"

	"go.yaml.in/yaml/v3"
)

// config is the part of .goreleaser.yaml that defines the archives. Decoding
// is strict: a field this program does not implement is an error, so that
// goreleaser and `make dist` cannot silently build different things.
type config struct {
	Version     int          `yaml:"version"`
	ProjectName string       `yaml:"project_name"`
	Builds      []buildSpec  `yaml:"builds"`
	Archives    []archive    `yaml:"archives"`
	Checksum    checksumSpec `yaml:"checksum"`

	// Sections that do not change the archives.
	DockersV2 yaml.Node `yaml:"dockers_v2"`
	Changelog yaml.Node `yaml:"changelog"`
	Release   yaml.Node `yaml:"release"`
}

type buildSpec struct {
	ID           string   `yaml:"id"`
	Main         string   `yaml:"main"`
	Binary       string   `yaml:"binary"`
	Env          []string `yaml:"env"`
	Flags        []string `yaml:"flags"`
	Tags         []string `yaml:"tags"`
	Ldflags      []string `yaml:"ldflags"`
	ModTimestamp string   `yaml:"mod_timestamp"`
	Targets      []string `yaml:"targets"`
}

type archive struct {
	ID              string           `yaml:"id"`
	IDs             []string         `yaml:"ids"`
	NameTemplate    string           `yaml:"name_template"`
	Formats         []string         `yaml:"formats"`
	FormatOverrides []formatOverride `yaml:"format_overrides"`
	Files           []archiveFile    `yaml:"files"`
}

type formatOverride struct {
	Goos    string   `yaml:"goos"`
	Formats []string `yaml:"formats"`
}

type archiveFile struct {
	Src         string   `yaml:"src"`
	StripParent bool     `yaml:"strip_parent"`
	Info        fileInfo `yaml:"info"`
}

type fileInfo struct {
	Mode  uint32 `yaml:"mode"`
	Mtime string `yaml:"mtime"`
}

type checksumSpec struct {
	NameTemplate string `yaml:"name_template"`
	Algorithm    string `yaml:"algorithm"`
}

// target is one goreleaser target, e.g. linux_arm_7 or linux_amd64_v1.
type target struct {
	Goos, Goarch string
	// Variant is the level after the architecture (GOARM, GOAMD64, ...),
	// "" when the target names none.
	Variant string
}

// variantEnv is the Go environment variable that each architecture's target
// suffix sets, as goreleaser does.
var variantEnv = map[string]string{
	"amd64": "GOAMD64", "arm64": "GOARM64", "arm": "GOARM", "386": "GO386",
	"mips": "GOMIPS", "mipsle": "GOMIPS", "mips64": "GOMIPS64", "mips64le": "GOMIPS64",
	"ppc64": "GOPPC64", "ppc64le": "GOPPC64", "riscv64": "GORISCV64",
}

func parseTarget(s string) (target, error) {
	parts := strings.SplitN(s, "_", 3)
	if len(parts) < 2 || parts[0] == "" || parts[1] == "" {
		return target{}, fmt.Errorf("target %q: want goos_goarch[_variant], e.g. linux_arm_7", s)
	}
	t := target{Goos: parts[0], Goarch: parts[1]}
	if len(parts) == 3 {
		if _, ok := variantEnv[t.Goarch]; !ok {
			return target{}, fmt.Errorf("target %q: %s takes no variant", s, t.Goarch)
		}
		t.Variant = parts[2]
	}
	return t, nil
}

// Arch is the os/arch spelling of DIST_TARGETS and of the archive names:
// armv7 for arm with GOARM=7, the plain GOARCH otherwise.
func (t target) Arch() string {
	if t.Goarch == "arm" {
		return "armv" + t.Variant
	}
	return t.Goarch
}

// Env is the go build environment for the target.
func (t target) Env() []string {
	env := []string{"GOOS=" + t.Goos, "GOARCH=" + t.Goarch}
	if t.Variant != "" {
		env = append(env, variantEnv[t.Goarch]+"="+t.Variant)
	}
	return env
}

// Arm is goreleaser's .Arm template field.
func (t target) Arm() string {
	if t.Goarch == "arm" {
		return t.Variant
	}
	return ""
}

func loadConfig(path string) (*config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseConfig(data)
}

func parseConfig(data []byte) (*config, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var c config
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("reading .goreleaser.yaml: %w", err)
	}
	if err := c.check(); err != nil {
		return nil, fmt.Errorf(".goreleaser.yaml: %w", err)
	}
	return &c, nil
}

// check refuses what this program would build differently from goreleaser.
func (c *config) check() error {
	if c.Version != 2 {
		return fmt.Errorf("version %d: want 2", c.Version)
	}
	if c.ProjectName == "" {
		return fmt.Errorf("project_name is empty")
	}
	ids := map[string]bool{}
	for _, b := range c.Builds {
		if b.ID == "" || b.Main == "" || b.Binary == "" {
			return fmt.Errorf("build %q: id, main and binary are needed", b.ID)
		}
		if ids[b.ID] {
			return fmt.Errorf("build %q defined twice", b.ID)
		}
		ids[b.ID] = true
		if len(b.Targets) == 0 {
			return fmt.Errorf("build %q: list its targets", b.ID)
		}
		for _, s := range b.Targets {
			if _, err := parseTarget(s); err != nil {
				return fmt.Errorf("build %q: %w", b.ID, err)
			}
		}
	}
	used := map[string]bool{}
	for _, a := range c.Archives {
		if len(a.IDs) != 1 || !ids[a.IDs[0]] {
			return fmt.Errorf("archive %q: ids must name exactly one build", a.ID)
		}
		if used[a.IDs[0]] {
			return fmt.Errorf("archive %q: build %q is packed twice", a.ID, a.IDs[0])
		}
		used[a.IDs[0]] = true
		for _, f := range append([][]string{a.Formats}, overrideFormats(a)...) {
			if len(f) != 1 || (f[0] != "zip" && f[0] != "tar.gz") {
				return fmt.Errorf("archive %q: formats %q: want one of zip, tar.gz", a.ID, f)
			}
		}
		for _, f := range a.Files {
			if f.Src == "" || strings.ContainsAny(f.Src, "*?[{") {
				return fmt.Errorf("archive %q: file %q: want a plain path (no glob)", a.ID, f.Src)
			}
			if f.Info.Mode == 0 || f.Info.Mtime == "" {
				return fmt.Errorf("archive %q: file %q: set info.mode and info.mtime (reproducible archives)", a.ID, f.Src)
			}
		}
	}
	for id := range ids {
		if !used[id] {
			return fmt.Errorf("build %q is in no archive", id)
		}
	}
	if c.Checksum.Algorithm != "sha256" {
		return fmt.Errorf("checksum.algorithm %q: want sha256", c.Checksum.Algorithm)
	}
	return nil
}

func overrideFormats(a archive) [][]string {
	var out [][]string
	for _, o := range a.FormatOverrides {
		out = append(out, o.Formats)
	}
	return out
}

// format is the archive format for goos.
func (a archive) format(goos string) string {
	for _, o := range a.FormatOverrides {
		if o.Goos == goos {
			return o.Formats[0]
		}
	}
	return a.Formats[0]
}

// expand renders a goreleaser template with the fields this program knows;
// any other field is an error.
func expand(tmpl string, data map[string]string) (string, error) {
	t, err := template.New("").Option("missingkey=error").Parse(tmpl)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	if err := t.Execute(&b, data); err != nil {
		return "", fmt.Errorf("template %q: %w", tmpl, err)
	}
	return b.String(), nil
}
