// Command bench measures the proxy's server binary against direct requests
// and against nginx, HAProxy and Caddy (those installed), on 127.0.0.1 only,
// and prints the results as Markdown (docs/BENCHMARKS.md is its output). Run it from the repository root with
// `make bench`, or `go run ./scripts/bench -h` for the flags.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// settings are the knobs of one run.
type settings struct {
	rounds     int
	warm, dur  time.Duration
	conc       []int
	streams    int
	chunks     int
	spacing    time.Duration
	holdCases  []holdCase
	hold       time.Duration
	holdRounds int
	bulkMiB    int
	bulkReps   int
	cold       int
	refs       map[string]string // reference server name to its -flag value
	workers    int
	base       string // git revision of a baseline proxy build, "" for none
	floors     bool   // also measure the floor-* reference programs
	micro      int
	sizes      bool
	keep       bool
	cpuProfile string
	memProfile string
	stages     map[string]bool
	proxyEnv   []string
}

func main() {
	s, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: error: %v\n", err)
		os.Exit(2)
	}
	if err := run(s, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "bench: error: %v\n", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (settings, error) {
	var s settings
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.IntVar(&s.rounds, "rounds", 5, "rounds of the small-request and SSE stages; each round runs every target in turn")
	fs.DurationVar(&s.warm, "warm", 300*time.Millisecond, "warm-up before each measured window")
	fs.DurationVar(&s.dur, "dur", 2*time.Second, "measured window of each small-request run")
	conc := fs.String("conc", "1,16,64", "concurrencies of the small-request stage")
	fs.IntVar(&s.streams, "streams", 20, "SSE streams read one after another per target and round")
	fs.IntVar(&s.chunks, "chunks", 20, "events per SSE stream")
	fs.DurationVar(&s.spacing, "spacing", 10*time.Millisecond, "time between SSE events")
	cases := fs.String("hold-streams", "1000/100ms,5000/1s", "cases of concurrent SSE streams held open for the memory and CPU-per-event figures, as STREAMS/SPACING (time between events) separated by commas")
	fs.DurationVar(&s.hold, "hold", 10*time.Second, "how long those streams stay open")
	fs.IntVar(&s.holdRounds, "hold-rounds", 3, "rounds of the held-streams stage")
	fs.IntVar(&s.bulkMiB, "bulk-mib", 10, "size of the upload and download bodies, MiB")
	fs.IntVar(&s.bulkReps, "bulk-reps", 5, "uploads and downloads per target and round (rounds as -rounds)")
	fs.IntVar(&s.cold, "cold", 10, "cold starts to time")
	s.refs = map[string]string{}
	for _, r := range refServers {
		fs.Func(r.name, fmt.Sprintf("%s binary (default: %s in PATH or %s; \"none\" skips it)", r.name, r.name, strings.Join(r.paths, ", ")),
			func(v string) error { s.refs[r.name] = v; return nil })
	}
	fs.IntVar(&s.workers, "nginx-workers", runtime.NumCPU(), "nginx worker_processes and HAProxy nbthread (the proxy uses every core too)")
	fs.StringVar(&s.base, "base", "", "also measure the proxy built from this git revision (e.g. main), as target \"base\", to compare a change with it in the same run")
	fs.BoolVar(&s.floors, "floors", false, "also measure the reference programs floor-nethttp (net/http's server and ReverseProxy, nothing else: the least a proxy built as ours can cost) floor-gorelay (a TCP relay, two goroutines and two 4 KiB buffers per connection: the floor of Go's network model) and floor-gorelay-pooled (the same relay, taking a buffer from a pool only once a socket is readable), built from scripts/bench")
	fs.IntVar(&s.micro, "micro", 3, "-count of the core Go micro-benchmarks (0 skips them)")
	fs.BoolVar(&s.sizes, "sizes", true, "build every platform and report binary sizes")
	fs.BoolVar(&s.keep, "keep", false, "keep the temp dir (logs, nginx.conf, binaries)")
	fs.StringVar(&s.cpuProfile, "cpuprofile", "", "write a CPU profile of the proxy during the small-request stage to this file, and of each held-streams case to FILE-STREAMS (builds the server with profiling; figures then include its cost)")
	fs.StringVar(&s.memProfile, "memprofile", "", "write a heap profile of the proxy halfway through each held-streams case to FILE-STREAMS (builds the server with profiling; its memory figures go to the proxy log, see -keep)")
	penv := fs.String("proxy-env", "", "extra environment of the proxy, comma-separated KEY=VALUE (e.g. GOGC=200 for a tuning experiment)")
	stages := fs.String("stages", "small,bulk,hold,cold", "stages to run: small (small requests and SSE), bulk, hold, cold")
	quick := fs.Bool("quick", false, "a short run (about a minute) to try the harness; figures are noisier")
	if err := fs.Parse(args); err != nil {
		return s, err
	}
	var err error
	for _, f := range strings.Split(*conc, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return s, fmt.Errorf("-conc %q: want positive integers separated by commas", *conc)
		}
		s.conc = append(s.conc, n)
	}
	for _, kv := range strings.Split(*penv, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		if !strings.Contains(kv, "=") {
			return s, fmt.Errorf("-proxy-env %q: want KEY=VALUE pairs separated by commas", *penv)
		}
		s.proxyEnv = append(s.proxyEnv, kv)
	}
	s.stages = map[string]bool{}
	for _, st := range strings.Split(*stages, ",") {
		switch st = strings.TrimSpace(st); st {
		case "small", "bulk", "hold", "cold":
			s.stages[st] = true
		default:
			return s, fmt.Errorf("-stages: unknown stage %q, want small, bulk, hold or cold", st)
		}
	}
	if *quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		quickDefaults := map[string]string{"rounds": "1", "warm": "100ms", "dur": "700ms", "streams": "5",
			"hold": "4s", "hold-rounds": "1", "bulk-reps": "2", "cold": "3", "micro": "1"}
		for name, v := range quickDefaults {
			if !set[name] {
				_ = fs.Set(name, v)
			}
		}
	}
	if s.holdCases, err = parseHoldCases(*cases); err != nil {
		return s, err
	}
	if s.rounds < 1 || s.holdRounds < 1 || s.streams < 1 || s.chunks < 2 || s.bulkReps < 1 || s.bulkMiB < 1 {
		return s, fmt.Errorf("-rounds, -hold-rounds, -streams, -bulk-reps and -bulk-mib must be at least 1, -chunks at least 2")
	}
	for _, c := range s.holdCases {
		if s.hold < 4*c.spacing || s.hold < 2*time.Second {
			return s, fmt.Errorf("-hold %s: want at least 2s and four event spacings (%s)", s.hold, c.spacing)
		}
	}
	return s, nil
}

// holdCase is one held-streams measurement: so many streams open at once,
// each sending an event every spacing.
type holdCase struct {
	streams int
	spacing time.Duration
}

func (c holdCase) String() string {
	return fmt.Sprintf("%d streams, an event every %s", c.streams, c.spacing)
}

func parseHoldCases(v string) ([]holdCase, error) {
	var out []holdCase
	for _, f := range strings.Split(v, ",") {
		n, sp, ok := strings.Cut(strings.TrimSpace(f), "/")
		streams, err1 := strconv.Atoi(n)
		spacing, err2 := time.ParseDuration(sp)
		if !ok || err1 != nil || err2 != nil || streams < 1 || spacing < time.Millisecond {
			return nil, fmt.Errorf("-hold-streams %q: want STREAMS/SPACING pairs such as 1000/100ms, separated by commas", v)
		}
		out = append(out, holdCase{streams, spacing})
	}
	return out, nil
}

// moduleRoot is the directory of the module the harness belongs to.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("finding the module root (run from the repository): %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("not inside the module: run from the repository root")
	}
	return filepath.Dir(gomod), nil
}

// goBuild builds pkg like a release: static, trimmed, stripped.
func goBuild(root, pkg, out string, extraTags ...string) error {
	args := []string{"build", "-trimpath", "-ldflags", "-s -w", "-o", out}
	if len(extraTags) > 0 {
		args = append(args, "-tags", strings.Join(extraTags, ","))
	}
	cmd := exec.Command("go", append(args, pkg)...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return nil
}

func commandOutput(name string, args ...string) string {
	b, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

func machine(refs []foundRef) []string {
	model := "unknown"
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		model = cpuModel(f)
		f.Close()
	}
	lines := []string{
		fmt.Sprintf("- CPU: %d cores (nproc), %s", runtime.NumCPU(), model),
		"- Go: " + commandOutput("go", "version"),
		"- Kernel: " + commandOutput("uname", "-sr"),
	}
	for _, r := range refServers {
		v := "not installed, skipped"
		for _, f := range refs {
			if f.name == r.name {
				v = f.version(f.bin)
			}
		}
		lines = append(lines, "- "+r.name+": "+v)
	}
	return lines
}

func mib(b int) string { return strconv.Itoa(b>>20) + " MiB" }
