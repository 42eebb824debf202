package scripts

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const version = "1.2.3-rc.1"

var (
	distOnce sync.Once
	distBin  string
	distErr  error
)

// distBinary builds scripts/dist once per test run.
func distBinary(t *testing.T) string {
	t.Helper()
	distOnce.Do(func() {
		dir, err := os.MkdirTemp("", "dist-bin-")
		if err != nil {
			distErr = err
			return
		}
		distBin = filepath.Join(dir, "dist")
		out, err := exec.Command("go", "build", "-o", distBin, "./dist").CombinedOutput()
		if err != nil {
			distErr = fmt.Errorf("building scripts/dist: %v\n%s", err, out)
		}
	})
	if distErr != nil {
		t.Fatal(distErr)
	}
	return distBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if distBin != "" {
		os.RemoveAll(filepath.Dir(distBin))
	}
	os.Exit(code)
}

// runDist runs scripts/dist in the repository root root with env, into a new
// directory, and returns it.
func runDist(t *testing.T, root string, env ...string) (dir string, output string, err error) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds release archives; skipped with -short")
	}
	dir = t.TempDir()
	cmd := exec.Command(distBinary(t))
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "DIST_DIR="+dir, "DIST_TARGETS=")
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	return dir, string(out), err
}

func TestDist_linuxAMD64(t *testing.T) {
	dir, out, err := runDist(t, "..", "VERSION=v"+version, "DIST_TARGETS=linux/amd64")
	if err != nil {
		t.Fatalf("dist: %v\n%s", err, out)
	}
	want := []string{
		"aliyun_fc_chatgpt_reverse_proxy_v" + version + "_linux_amd64.zip",
		"aws_lambda_chatgpt_reverse_proxy_v" + version + "_linux_amd64.zip",
		"chatgpt_reverse_proxy_v" + version + "_checksums.txt",
		"chatgpt_reverse_proxy_v" + version + "_linux_amd64.tar.gz",
		"tencentcloud_scf_chatgpt_reverse_proxy_v" + version + "_linux_amd64.zip",
		"tencentcloud_scf_event_chatgpt_reverse_proxy_v" + version + "_linux_amd64.zip",
	}
	if got := list(t, dir); !slices.Equal(got, want) {
		t.Fatalf("dist contains %q; want %q", got, want)
	}
	fcName, lambdaName, sumsName, serverName, scfName, scfEventName := want[0], want[1], want[2], want[3], want[4], want[5]
	checkChecksums(t, dir, sumsName, []string{fcName, lambdaName, serverName, scfName, scfEventName})

	lambdaZip := readZip(t, filepath.Join(dir, lambdaName))
	checkNames(t, "aws lambda", lambdaZip, "bootstrap", "LICENSE", "README.md")
	checkBinary(t, "lambda bootstrap", lambdaZip["bootstrap"])

	scfEvent := readZip(t, filepath.Join(dir, scfEventName))
	checkNames(t, "scf event", scfEvent, "main", "LICENSE", "README.md")
	checkBinary(t, "scf event main", scfEvent["main"])

	scf := readZip(t, filepath.Join(dir, scfName))
	checkNames(t, scfName, scf, "main", "scf_bootstrap", "LICENSE", "README.md")
	checkScript(t, "scf_bootstrap", scf["scf_bootstrap"], "#!/bin/bash\n")
	checkBinary(t, "scf main", scf["main"])
	t.Run("scf_bootstrap", func(t *testing.T) { checkStarts(t, scf, "scf_bootstrap", "OXY_PORT") })

	fc := readZip(t, filepath.Join(dir, fcName))
	checkNames(t, fcName, fc, "main", "bootstrap", "LICENSE", "README.md")
	checkScript(t, "bootstrap", fc["bootstrap"], "#!/bin/sh\n")
	checkBinary(t, "fc main", fc["main"])
	t.Run("bootstrap", func(t *testing.T) { checkStarts(t, fc, "bootstrap", "FC_CUSTOM_LISTEN_PORT") })

	server := readTarGz(t, filepath.Join(dir, serverName))
	checkNames(t, serverName, server, "chatgpt_reverse_proxy", "LICENSE", "README.md")
	checkBinary(t, "server", server["chatgpt_reverse_proxy"])
	for _, f := range []string{"LICENSE", "README.md"} {
		if server[f].mode.Perm() != 0o644 {
			t.Errorf("%s: %s mode = %v; want 0644", serverName, f, server[f].mode.Perm())
		}
	}
}

// TestDist_reproducible: two runs on the same commit give the same archives,
// byte for byte, and every file in them carries the commit's time, whatever
// the files' times on disk.
func TestDist_reproducible(t *testing.T) {
	dir1, out, err := runDist(t, "..", "VERSION="+version, "DIST_TARGETS=linux/amd64")
	if err != nil {
		t.Fatalf("dist: %v\n%s", err, out)
	}
	// A checkout at another moment gives other file times.
	readme := filepath.Join("..", "README.md")
	st, err := os.Stat(readme)
	if err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(readme, later, later); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chtimes(readme, st.ModTime(), st.ModTime()) })
	dir2, out, err := runDist(t, "..", "VERSION="+version, "DIST_TARGETS=linux/amd64")
	if err != nil {
		t.Fatalf("dist: %v\n%s", err, out)
	}
	sums := "chatgpt_reverse_proxy_v" + version + "_checksums.txt"
	a, _ := os.ReadFile(filepath.Join(dir1, sums))
	b, _ := os.ReadFile(filepath.Join(dir2, sums))
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Errorf("two runs gave different archives:\n%s\n%s", a, b)
	}
	commit, err := exec.Command("git", "log", "-1", "--format=%ct").Output()
	if err != nil {
		t.Fatal(err)
	}
	sec, _ := strconv.ParseInt(strings.TrimSpace(string(commit)), 10, 64)
	want := time.Unix(sec, 0)
	for name, files := range readArchives(t, dir1) {
		for f, info := range files {
			if !info.mtime.Equal(want) {
				t.Errorf("%s: %s has time %v; want the commit's %v", name, f, info.mtime, want.UTC())
			}
		}
	}
}

func TestDist_rejectsBadVersion(t *testing.T) {
	for _, v := range []string{"", "main", "1.2", "1.2.3; rm -rf /"} {
		_, out, err := runDist(t, "..", "VERSION="+v, "DIST_TARGETS=linux/amd64")
		if err == nil || !strings.Contains(out, "VERSION") {
			t.Errorf("VERSION=%q: err = %v, output %q; want a failure naming VERSION", v, err, out)
		}
	}
}

func TestDist_rejectsUnknownTarget(t *testing.T) {
	_, out, err := runDist(t, "..", "VERSION="+version, "DIST_TARGETS=plan9/amd64")
	if err == nil || !strings.Contains(out, "DIST_TARGETS") {
		t.Errorf("err = %v, output %q; want a failure naming DIST_TARGETS", err, out)
	}
}

// TestDist_fullMatrix builds every archive; it takes minutes on a cold build
// cache, so it runs only with DIST_FULL=1.
func TestDist_fullMatrix(t *testing.T) {
	if os.Getenv("DIST_FULL") != "1" {
		t.Skip("set DIST_FULL=1 to build every release archive")
	}
	dir, out, err := runDist(t, "..", "VERSION="+version)
	if err != nil {
		t.Fatalf("dist: %v\n%s", err, out)
	}
	var archives []string
	for _, target := range serverTargets(t) {
		ext := ".tar.gz"
		if strings.HasPrefix(target, "windows_") {
			ext = ".zip"
		}
		archives = append(archives, "chatgpt_reverse_proxy_v"+version+"_"+target+ext)
	}
	archives = append(archives,
		"tencentcloud_scf_chatgpt_reverse_proxy_v"+version+"_linux_amd64.zip",
		"aliyun_fc_chatgpt_reverse_proxy_v"+version+"_linux_amd64.zip",
		"tencentcloud_scf_event_chatgpt_reverse_proxy_v"+version+"_linux_amd64.zip",
		"aws_lambda_chatgpt_reverse_proxy_v"+version+"_linux_amd64.zip",
		"aws_lambda_chatgpt_reverse_proxy_v"+version+"_linux_arm64.zip")
	sums := "chatgpt_reverse_proxy_v" + version + "_checksums.txt"
	want := slices.Sorted(slices.Values(append(slices.Clone(archives), sums)))
	if got := list(t, dir); !slices.Equal(got, want) {
		t.Fatalf("dist contains %q; want %q", got, want)
	}
	checkChecksums(t, dir, sums, archives)
	win := readZip(t, filepath.Join(dir, "chatgpt_reverse_proxy_v"+version+"_windows_amd64.zip"))
	checkNames(t, "windows_amd64", win, "chatgpt_reverse_proxy.exe", "LICENSE", "README.md")
}

type file struct {
	mode  fs.FileMode
	mtime time.Time
	data  []byte
}

// readArchives opens every zip and tar.gz in dir.
func readArchives(t *testing.T, dir string) map[string]map[string]file {
	t.Helper()
	all := map[string]map[string]file{}
	for _, name := range list(t, dir) {
		switch {
		case strings.HasSuffix(name, ".zip"):
			all[name] = readZip(t, filepath.Join(dir, name))
		case strings.HasSuffix(name, ".tar.gz"):
			all[name] = readTarGz(t, filepath.Join(dir, name))
		}
	}
	return all
}

func list(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func readZip(t *testing.T, path string) map[string]file {
	t.Helper()
	zr, err := zip.OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	files := map[string]file{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("%s: %s: %v", path, f.Name, err)
		}
		files[f.Name] = file{mode: f.Mode(), mtime: f.Modified, data: data}
	}
	return files
}

func readTarGz(t *testing.T, path string) map[string]file {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	files := map[string]file{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = file{mode: h.FileInfo().Mode(), mtime: h.ModTime, data: data}
	}
}

func checkNames(t *testing.T, archive string, files map[string]file, want ...string) {
	t.Helper()
	var got []string
	for name := range files {
		got = append(got, name)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("%s holds %q; want %q", archive, got, want)
	}
}

// checkScript: mode 0755, the shebang, LF line endings only.
func checkScript(t *testing.T, name string, f file, shebang string) {
	t.Helper()
	if f.mode.Perm() != 0o755 {
		t.Errorf("%s mode = %v; want 0755", name, f.mode.Perm())
	}
	if !bytes.HasPrefix(f.data, []byte(shebang)) {
		t.Errorf("%s starts %q; want %q", name, firstLine(f.data), shebang)
	}
	if bytes.Contains(f.data, []byte("\r")) {
		t.Errorf("%s contains CR; want LF line endings only", name)
	}
	if !bytes.HasSuffix(f.data, []byte("\n")) {
		t.Errorf("%s does not end with a newline", name)
	}
}

// checkBinary: executable, a static linux/amd64 ELF (no interpreter, no
// dynamic section), whose -version reports the version.
func checkBinary(t *testing.T, name string, f file) {
	t.Helper()
	if f.mode.Perm() != 0o755 {
		t.Errorf("%s mode = %v; want 0755", name, f.mode.Perm())
	}
	ef, err := elf.NewFile(bytes.NewReader(f.data))
	if err != nil {
		t.Fatalf("%s: not an ELF file: %v", name, err)
	}
	if ef.Machine != elf.EM_X86_64 || ef.Class != elf.ELFCLASS64 || ef.OSABI != elf.ELFOSABI_NONE && ef.OSABI != elf.ELFOSABI_LINUX {
		t.Errorf("%s: machine %v class %v osabi %v; want linux/amd64", name, ef.Machine, ef.Class, ef.OSABI)
	}
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("%s has program header %v; want a static binary", name, p.Type)
		}
	}
	if s := ef.Section(".dynamic"); s != nil {
		t.Errorf("%s has a .dynamic section; want a static binary", name)
	}
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		return
	}
	path := filepath.Join(t.TempDir(), "bin")
	if err := os.WriteFile(path, f.data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(path, "-version")
	cmd.Env = []string{}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "chatgpt_reverse_proxy "+version+" ") {
		t.Errorf("%s -version = %q, %v; want it to report %s", name, out, err, version)
	}
}

func checkChecksums(t *testing.T, dir, sums string, archives []string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, sums))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok {
			t.Fatalf("%s: bad line %q", sums, sc.Text())
		}
		got[name] = sum
	}
	if len(got) != len(archives) {
		t.Errorf("%s lists %d files; want %d", sums, len(got), len(archives))
	}
	for _, a := range archives {
		b, err := os.ReadFile(filepath.Join(dir, a))
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.Sum256(b)
		if want := hex.EncodeToString(h[:]); got[a] != want {
			t.Errorf("%s: sha256 %q; want %q", a, got[a], want)
		}
	}
}

func firstLine(b []byte) string {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	return string(line)
}
