package main

import (
	"archive/tar"
	"archive/zip"
	"compress/flate"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// gitInfo is what goreleaser's templates know of the commit.
type gitInfo struct {
	ShortCommit, FullCommit string
	Time                    time.Time
}

func readGit() (gitInfo, error) {
	out, err := exec.Command("git", "log", "-1", "--format=%h %H %ct").Output()
	if err != nil {
		return gitInfo{}, fmt.Errorf("reading the commit with git: %w", err)
	}
	f := strings.Fields(string(out))
	if len(f) != 3 {
		return gitInfo{}, fmt.Errorf("git log printed %q", out)
	}
	sec, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil {
		return gitInfo{}, fmt.Errorf("commit time %q: %w", f[2], err)
	}
	return gitInfo{ShortCommit: f[0], FullCommit: f[1], Time: time.Unix(sec, 0).UTC()}, nil
}

// plan is one run of dist.
type plan struct {
	Version string
	Git     gitInfo
	Dir     string
	Only    []string // os/arch; empty: every target
	Log     io.Writer
}

func (p plan) data() map[string]string {
	return map[string]string{
		"Version":         p.Version,
		"ShortCommit":     p.Git.ShortCommit,
		"FullCommit":      p.Git.FullCommit,
		"CommitDate":      p.Git.Time.Format(time.RFC3339),
		"CommitTimestamp": strconv.FormatInt(p.Git.Time.Unix(), 10),
	}
}

// entry is one file of an archive.
type entry struct {
	name  string
	path  string
	mode  fs.FileMode
	mtime time.Time
}

func dist(cfg *config, p plan) error {
	if err := os.MkdirAll(p.Dir, 0o755); err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "dist-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	builds := map[string]buildSpec{}
	for _, b := range cfg.Builds {
		builds[b.ID] = b
	}
	selected := map[string]bool{}
	for _, s := range p.Only {
		selected[s] = true
	}
	var archives []string
	for _, a := range cfg.Archives {
		b := builds[a.IDs[0]]
		for _, ts := range b.Targets {
			t, _ := parseTarget(ts) // checked by parseConfig
			if len(selected) > 0 && !selected[t.Goos+"/"+t.Arch()] {
				continue
			}
			name, err := p.pack(cfg, a, b, t, work)
			if err != nil {
				return err
			}
			archives = append(archives, name)
		}
	}
	if len(archives) == 0 {
		return fmt.Errorf("DIST_TARGETS=%q selects no build", strings.Join(p.Only, ","))
	}
	sums, err := expand(cfg.Checksum.NameTemplate, p.withProject(cfg))
	if err != nil {
		return err
	}
	if err := writeChecksums(p.Dir, sums, archives); err != nil {
		return err
	}
	fmt.Fprintf(p.Log, "dist: %d archives and %s in %s\n", len(archives), sums, p.Dir)
	return nil
}

func (p plan) withProject(cfg *config) map[string]string {
	d := p.data()
	d["ProjectName"] = cfg.ProjectName
	return d
}

// pack builds one target of a build and writes its archive; it returns the
// archive's file name.
func (p plan) pack(cfg *config, a archive, b buildSpec, t target, work string) (string, error) {
	d := p.withProject(cfg)
	d["Os"], d["Arch"], d["Arm"] = t.Goos, t.Goarch, t.Arm()
	base, err := expand(a.NameTemplate, d)
	if err != nil {
		return "", err
	}
	name := base + "." + a.format(t.Goos)
	fmt.Fprintf(p.Log, "dist: %s\n", name)

	binary := b.Binary
	if t.Goos == "windows" {
		binary += ".exe"
	}
	bin := filepath.Join(work, b.ID+"_"+t.Goos+"_"+t.Arch(), binary)
	mtime, err := p.buildBinary(b, t, bin, d)
	if err != nil {
		return "", err
	}
	entries := []entry{{name: binary, path: bin, mode: 0o755, mtime: mtime}}
	for _, f := range a.Files {
		dst := f.Src
		if f.StripParent {
			dst = filepath.Base(f.Src)
		}
		s, err := expand(f.Info.Mtime, d)
		if err != nil {
			return "", err
		}
		mt, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return "", fmt.Errorf("archive %q: file %q: mtime %q: %w", a.ID, f.Src, s, err)
		}
		entries = append(entries, entry{name: filepath.ToSlash(dst), path: f.Src, mode: fs.FileMode(f.Info.Mode), mtime: mt})
	}
	write := writeTarGz
	if strings.HasSuffix(name, ".zip") {
		write = writeZip
	}
	return name, writeFile(filepath.Join(p.Dir, name), func(w io.Writer) error { return write(w, entries) })
}

// writeFile creates path and fills it with write.
func writeFile(path string, write func(io.Writer) error) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	return write(f)
}

// buildBinary runs go build as goreleaser does for the build and target and
// returns the binary's modification time (mod_timestamp).
func (p plan) buildBinary(b buildSpec, t target, out string, d map[string]string) (time.Time, error) {
	var ldflags []string
	for _, l := range b.Ldflags {
		s, err := expand(l, d)
		if err != nil {
			return time.Time{}, err
		}
		ldflags = append(ldflags, s)
	}
	args := append([]string{"build"}, b.Flags...)
	if len(b.Tags) > 0 {
		args = append(args, "-tags="+strings.Join(b.Tags, ","))
	}
	args = append(args, "-ldflags="+strings.Join(ldflags, " "), "-o", out, b.Main)
	cmd := exec.Command("go", args...)
	cmd.Env = append(append(os.Environ(), b.Env...), t.Env()...)
	cmd.Stdout, cmd.Stderr = p.Log, p.Log
	if err := cmd.Run(); err != nil {
		return time.Time{}, fmt.Errorf("build %q for %s/%s: %w", b.ID, t.Goos, t.Arch(), err)
	}
	mtime := time.Now()
	if b.ModTimestamp != "" {
		s, err := expand(b.ModTimestamp, d)
		if err != nil {
			return time.Time{}, err
		}
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("build %q: mod_timestamp %q: %w", b.ID, s, err)
		}
		mtime = time.Unix(sec, 0)
	}
	return mtime, os.Chtimes(out, mtime, mtime)
}

func writeZip(f io.Writer, entries []entry) error {
	zw := zip.NewWriter(f)
	zw.RegisterCompressor(zip.Deflate, func(w io.Writer) (io.WriteCloser, error) {
		return flate.NewWriter(w, flate.BestCompression)
	})
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate, Modified: e.mtime.UTC()}
		h.SetMode(e.mode)
		w, err := zw.CreateHeader(h)
		if err != nil {
			return err
		}
		if err := copyFile(w, e.path); err != nil {
			return err
		}
	}
	return zw.Close()
}

func writeTarGz(f io.Writer, entries []entry) error {
	gz, err := gzip.NewWriterLevel(f, gzip.BestCompression)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		st, err := os.Stat(e.path)
		if err != nil {
			return err
		}
		h := &tar.Header{Typeflag: tar.TypeReg, Name: e.name, Mode: int64(e.mode.Perm()), Size: st.Size(),
			ModTime: e.mtime.UTC(), Format: tar.FormatUSTAR}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if err := copyFile(tw, e.path); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

func copyFile(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}

// writeChecksums writes "sha256  name" lines, sorted by name, as goreleaser.
func writeChecksums(dir, name string, archives []string) error {
	slices.Sort(archives)
	var b strings.Builder
	for _, a := range archives {
		f, err := os.Open(filepath.Join(dir, a))
		if err != nil {
			return err
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s  %s\n", hex.EncodeToString(h.Sum(nil)), a)
	}
	return os.WriteFile(filepath.Join(dir, name), []byte(b.String()), 0o644)
}

// releaseNotes returns the section of the changelog for version: from its
// "## [version]" heading to the next "## " heading.
func releaseNotes(path, version string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	var out []string
	in := false
	for _, line := range strings.SplitAfter(string(data), "\n") {
		if strings.HasPrefix(line, "## ") {
			if in {
				break
			}
			in = strings.HasPrefix(line, "## ["+version+"]")
			continue
		}
		if in {
			out = append(out, line)
		}
	}
	notes := strings.TrimSpace(strings.Join(out, ""))
	if notes == "" {
		return "", fmt.Errorf("%s has no section \"## [%s]\" (write the release notes there first)", path, version)
	}
	return notes + "\n", nil
}
