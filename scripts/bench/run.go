package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Target names, in the order of the table's columns.
const (
	direct   = "direct"
	proxy    = "proxy"
	baseline = "base"
	nginx    = "nginx"
	haproxy  = "haproxy"
	caddy    = "caddy"
	// The reference programs of -floors, built from scripts/bench.
	floorNetHTTP       = "floor-nethttp"
	floorGoRelay       = "floor-gorelay"
	floorGoRelayPooled = "floor-gorelay-pooled"
)

// floor is a -floors target: a reference program under scripts/bench, run
// with args.
type floor struct {
	name, pkg string
	args      []string
}

// floorTargets are the -floors targets, in the order of the table's columns.
var floorTargets = []floor{
	{floorNetHTTP, "floor-nethttp", nil},
	{floorGoRelay, "floor-gorelay", nil},
	{floorGoRelayPooled, "floor-gorelay", []string{"-pool"}},
}

// isFloor reports whether the target named name is a floor.
func isFloor(name string) bool {
	return slices.ContainsFunc(floorTargets, func(f floor) bool { return f.name == name })
}

// results gathers every measurement of a run, per target.
type results struct {
	names      []string                         // the targets of the run, in column order
	small      map[int]map[string][]smallResult // by concurrency, then target
	sse        map[string][]sseResult
	hold       map[holdCase]map[string][]holdResult
	up         map[string][]float64 // MiB/s
	down       map[string][]float64 // MiB/s
	base       map[string]float64   // RSS before the transfers, bytes
	peak       map[string]float64   // peak RSS over the transfers, bytes
	bulkErrors map[string]int
	cold       []float64 // ms
	sizes      []binarySize
	micro      string
}

type binarySize struct {
	pkg   string
	bytes int64
}

func run(s settings, stdout io.Writer) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "oxy-bench-")
	if err != nil {
		return fmt.Errorf("making a temp dir: %w", err)
	}
	if s.keep {
		logf("keeping %s", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	bin := filepath.Join(dir, "chatgpt_reverse_proxy")
	if s.cpuProfile != "" || s.memProfile != "" {
		logf("building ./scripts/bench/profproxy (profiles to %s)", strings.TrimSpace(s.cpuProfile+" "+s.memProfile))
		if err := goBuild(root, "./scripts/bench/profproxy", bin); err != nil {
			return err
		}
	} else {
		logf("building %s", serverPackage(root))
		if err := goBuild(root, serverPackage(root), bin); err != nil {
			return err
		}
	}
	baseBin := ""
	if s.base != "" {
		baseBin = filepath.Join(dir, "chatgpt_reverse_proxy-base")
		logf("building the server build at %s", s.base)
		if err := buildRevision(root, s.base, filepath.Join(dir, "base-src"), baseBin); err != nil {
			return err
		}
	}
	var floorBins []string
	if s.floors {
		for _, f := range floorTargets {
			fb := filepath.Join(dir, f.pkg)
			if _, err := os.Stat(fb); err != nil {
				logf("building ./scripts/bench/%s", f.pkg)
				if err := goBuild(root, "./scripts/bench/"+f.pkg, fb); err != nil {
					return err
				}
			}
			floorBins = append(floorBins, fb)
		}
	}
	if err := raiseFileLimit(s); err != nil {
		return err
	}
	up, err := startUpstream(s.bulkMiB << 20)
	if err != nil {
		return err
	}
	tg := targetSet{bin: bin, baseBin: baseBin, floorBins: floorBins, dir: dir, refs: findRefs(s.refs), up: up}
	r := &results{
		names: tg.names(),
		small: map[int]map[string][]smallResult{}, sse: map[string][]sseResult{}, hold: map[holdCase]map[string][]holdResult{},
		up: map[string][]float64{}, down: map[string][]float64{}, base: map[string]float64{}, peak: map[string]float64{},
		bulkErrors: map[string]int{},
	}
	started := time.Now()
	loadBefore := loadAvg()
	stages := []struct {
		name string
		run  func(settings, *results, targetSet) error
	}{{"small", stageSmall}, {"bulk", stageBulk}, {"hold", stageHold}}
	for _, st := range stages {
		if s.stages[st.name] {
			if err := st.run(s, r, tg); err != nil {
				return err
			}
		}
	}
	if s.stages["cold"] {
		logf("cold start x%d", s.cold)
	}
	for range s.cold {
		if !s.stages["cold"] {
			break
		}
		d, err := coldStart(bin, up.addr, s.proxyEnv)
		if err != nil {
			return err
		}
		r.cold = append(r.cold, ms(d))
	}
	measured := time.Since(started)
	if s.sizes {
		if r.sizes, err = buildSizes(root, dir); err != nil {
			return err
		}
	}
	if s.micro > 0 {
		logf("core micro-benchmarks")
		r.micro = microBench(root, s.micro)
	}
	report(stdout, s, r, append(machine(tg.refs), "- Load average (1, 5, 15 min) before and after measuring: "+loadBefore+"; "+loadAvg()), measured)
	return nil
}

// targetSet is what a stage needs to start its targets.
type targetSet struct {
	bin, baseBin, dir string
	floorBins         []string // the binaries of floorTargets, with -floors
	refs              []foundRef
	up                *upstream
}

// names returns the targets' names in the order of the table's columns.
func (tg targetSet) names() []string {
	names := []string{direct, proxy}
	if tg.baseBin != "" {
		names = append(names, baseline)
	}
	for _, f := range floorTargets[:len(tg.floorBins)] {
		names = append(names, f.name)
	}
	for _, r := range tg.refs {
		names = append(names, r.name)
	}
	return names
}

// start starts the proxy, the baseline proxy and the floors when asked for,
// and the reference servers found; the returned list always begins with direct.
func (tg targetSet) start(s settings, conns int, proxyEnv ...string) ([]*target, func(), error) {
	ts := []*target{{name: direct, base: "http://" + tg.up.addr, client: newClient(conns)}}
	stop := func() {
		for _, t := range ts {
			t.stop()
		}
	}
	env := append(slices.Clone(s.proxyEnv), proxyEnv...)
	p, err := startProxy(proxy, tg.bin, tg.dir, tg.up.addr, conns, env...)
	if err != nil {
		return nil, nil, err
	}
	ts = append(ts, p)
	if tg.baseBin != "" {
		b, err := startProxy(baseline, tg.baseBin, tg.dir, tg.up.addr, conns, env...)
		if err != nil {
			stop()
			return nil, nil, err
		}
		ts = append(ts, b)
	}
	for i, fb := range tg.floorBins {
		fl := floorTargets[i]
		f, err := startFloor(fl, fb, tg.dir, tg.up.addr, conns, floorEnv(fl.name, proxyEnv))
		if err != nil {
			stop()
			return nil, nil, err
		}
		ts = append(ts, f)
	}
	for _, ref := range tg.refs {
		t, err := ref.start(s, filepath.Join(tg.dir, ref.name), tg.up.addr, conns)
		if err != nil {
			stop()
			return nil, nil, err
		}
		ts = append(ts, t)
	}
	return ts, stop, nil
}

// rotate returns ts started at the round's offset, so no target always runs
// first (or right after a given other one).
func rotate(ts []*target, round int) []*target {
	k := round % len(ts)
	return append(slices.Clone(ts[k:]), ts[:k]...)
}

func stageSmall(s settings, r *results, tg targetSet) error {
	var env []string
	if s.cpuProfile != "" {
		abs, err := filepath.Abs(s.cpuProfile)
		if err != nil {
			return fmt.Errorf("-cpuprofile: %w", err)
		}
		env = append(env, "BENCH_CPUPROFILE="+abs)
	}
	up := tg.up
	ts, stop, err := tg.start(s, 2*slices.Max(s.conc), env...)
	if err != nil {
		return err
	}
	defer stop()
	up.setStream(s.chunks, s.spacing)
	for round := range s.rounds {
		for _, c := range s.conc {
			if r.small[c] == nil {
				r.small[c] = map[string][]smallResult{}
			}
			for _, t := range rotate(ts, round) {
				res, err := runSmall(t, up, c, s.warm, s.dur)
				if err != nil {
					return err
				}
				logf("round %d c=%d %-7s %7.0f req/s p50 %v p99 %v cpu %v new conns %d errors %d",
					round+1, c, t.name, res.rps, res.p50, res.p99, res.cpu, res.newConns, res.errors)
				r.small[c][t.name] = append(r.small[c][t.name], res)
			}
		}
		for _, t := range rotate(ts, round) {
			res := runSSE(t, s.streams, s.spacing)
			logf("round %d sse %-7s first chunk %.3f ms, event delay p50 %v p99 %v max %v, %d bunched, %d held back of %d, %d errors",
				round+1, t.name, median(res.firstChunk), percentile(res.delays, 50), percentile(res.delays, 99),
				percentile(res.delays, 100), res.bunched, res.heldBack, res.chunks, res.errors)
			r.sse[t.name] = append(r.sse[t.name], res)
		}
	}
	return nil
}

func stageBulk(s settings, r *results, tg targetSet) error {
	ts, stop, err := tg.start(s, 4)
	if err != nil {
		return err
	}
	defer stop()
	body := make([]byte, s.bulkMiB<<20)
	for i := range body {
		body[i] = byte('a' + i%26)
	}
	for _, t := range ts[1:] {
		m, err := mem(t.pids())
		if err != nil {
			return err
		}
		r.base[t.name] = float64(m.RSS)
	}
	size := float64(len(body)) / (1 << 20)
	for round := range s.rounds {
		for _, t := range rotate(ts, round) {
			for range s.bulkReps {
				d, err := upload(t, body)
				if err != nil {
					logf("upload %s: %v", t.name, err)
					r.bulkErrors[t.name]++
				} else {
					r.up[t.name] = append(r.up[t.name], size/d.Seconds())
				}
				d, err = download(t, len(body))
				if err != nil {
					logf("download %s: %v", t.name, err)
					r.bulkErrors[t.name]++
				} else {
					r.down[t.name] = append(r.down[t.name], size/d.Seconds())
				}
			}
			logf("round %d bulk %-7s upload %.0f MiB/s download %.0f MiB/s", round+1, t.name,
				median(r.up[t.name]), median(r.down[t.name]))
		}
	}
	for _, t := range ts[1:] {
		m, err := mem(t.pids())
		if err != nil {
			return err
		}
		r.peak[t.name] = float64(m.HWM)
	}
	return nil
}

func stageHold(s settings, r *results, tg targetSet) error {
	for _, c := range s.holdCases {
		r.hold[c] = map[string][]holdResult{}
		var env []string
		for _, p := range []struct{ file, env string }{{s.memProfile, "BENCH_MEMPROFILE"}, {s.cpuProfile, "BENCH_CPUPROFILE"}} {
			if p.file == "" {
				continue
			}
			abs, err := filepath.Abs(fmt.Sprintf("%s-%d", p.file, c.streams))
			if err != nil {
				return fmt.Errorf("-memprofile or -cpuprofile: %w", err)
			}
			env = append(env, p.env+"="+abs)
		}
		for round := range s.holdRounds {
			ts, stop, err := tg.start(s, c.streams+8, env...)
			if err != nil {
				return err
			}
			for _, t := range rotate(ts[1:], round) {
				res, err := runHold(t, tg.up, c, s.hold, s.memProfile != "")
				// Close the client's idle connections now, so that the
				// next target's streams do not share the fd limit with them.
				t.client.CloseIdleConnections()
				if err != nil {
					stop()
					return err
				}
				logf("round %d hold %-7s %d streams, events %s apart: %.1f KiB per stream, %.1f µs CPU per event (%d events, %.2f s CPU), %d errors",
					round+1, t.name, c.streams, c.spacing, res.perStream/1024, res.cpuPerEvent()*1e6, res.events, res.cpu.Seconds(), res.errors)
				r.hold[c][t.name] = append(r.hold[c][t.name], res)
			}
			stop()
		}
	}
	return nil
}

// raiseFileLimit raises the harness's open-file limit (which the targets
// inherit) to its hard limit: the largest held-streams case needs two
// descriptors per stream in the harness (client and mock upstream side) and
// in each target.
func raiseFileLimit(s settings) error {
	if !s.stages["hold"] {
		return nil
	}
	need := uint64(0)
	for _, c := range s.holdCases {
		need = max(need, uint64(2*c.streams+1024))
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("reading the open-file limit: %w", err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return fmt.Errorf("raising the open-file limit to %d: %w", lim.Max, err)
		}
	}
	if lim.Cur < need {
		return fmt.Errorf("open-file limit %d, the held streams need %d: raise the hard limit (ulimit -Hn, or run as root) or lower -hold-streams", lim.Cur, need)
	}
	return nil
}

// buildRevision builds the server platform as of the git revision rev (from
// `git archive`, into src) to out.
func buildRevision(root, rev, src, out string) error {
	if err := os.MkdirAll(src, 0o755); err != nil {
		return fmt.Errorf("making %s: %w", src, err)
	}
	cmd := exec.Command("sh", "-c", `git -C "$1" archive --format=tar "$2" | tar -x -C "$3"`, "sh", root, rev, src)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("extracting revision %s: %w\n%s", rev, err, b)
	}
	return goBuild(src, serverPackage(src), out)
}

// serverPackage is the plain server build's package in the tree at root:
// ./platforms/chatgpt_reverse_proxy, or ./platforms/server in revisions
// before it was named for the command go install makes.
func serverPackage(root string) string {
	if _, err := os.Stat(filepath.Join(root, "platforms", "chatgpt_reverse_proxy", "main.go")); err == nil {
		return "./platforms/chatgpt_reverse_proxy"
	}
	return "./platforms/server"
}

// loadAvg returns the first three fields of /proc/loadavg: how busy the
// machine was, for reading the figures' noise.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// figure is one row of the results table: a median per target.
type figure struct {
	name string
	vals map[string]float64
}

func (f figure) get(name string) float64 {
	if v, ok := f.vals[name]; ok {
		return v
	}
	return math.NaN()
}

// smallFigures derives the small-request rows from the runs.
func smallFigures(s settings, r *results) []figure {
	var out []figure
	for _, c := range s.conc {
		rps, p50, p99 := figure{name: fmt.Sprintf("req/s, c=%d", c), vals: map[string]float64{}},
			figure{name: fmt.Sprintf("p50 latency ms, c=%d", c), vals: map[string]float64{}},
			figure{name: fmt.Sprintf("p99 latency ms, c=%d", c), vals: map[string]float64{}}
		for name, runs := range r.small[c] {
			var a, b, d []float64
			for _, x := range runs {
				a, b, d = append(a, x.rps), append(b, ms(x.p50)), append(d, ms(x.p99))
			}
			rps.vals[name], p50.vals[name], p99.vals[name] = median(a), median(b), median(d)
		}
		out = append(out, rps, p50, p99)
	}
	for _, c := range s.conc {
		if c == 1 {
			continue
		}
		f := figure{name: fmt.Sprintf("CPU s per 10k requests, c=%d", c), vals: map[string]float64{}}
		for name, runs := range r.small[c] {
			if name == direct {
				continue
			}
			var xs []float64
			for _, x := range runs {
				if x.requests > 0 {
					xs = append(xs, x.cpu.Seconds()/float64(x.requests)*10000)
				}
			}
			f.vals[name] = median(xs)
		}
		out = append(out, f)
	}
	for _, c := range s.conc {
		f := figure{name: fmt.Sprintf("new upstream conns per 1k requests, c=%d", c), vals: map[string]float64{}}
		for name, runs := range r.small[c] {
			var conns, reqs int64
			for _, x := range runs {
				conns += x.newConns
				reqs += int64(x.requests)
			}
			if reqs > 0 {
				f.vals[name] = float64(conns) / float64(reqs) * 1000
			}
		}
		out = append(out, f)
	}
	errs := figure{name: "failed small requests (all runs)", vals: map[string]float64{}}
	for _, byTarget := range r.small {
		for name, runs := range byTarget {
			for _, x := range runs {
				errs.vals[name] += float64(x.errors)
			}
		}
	}
	return append(out, errs)
}

func streamFigures(r *results) []figure {
	first := figure{name: "first SSE chunk ms (median of round medians)", vals: map[string]float64{}}
	d50 := figure{name: "SSE event delay p50 ms (upstream write to client read)", vals: map[string]float64{}}
	d99 := figure{name: "SSE event delay p99 ms", vals: map[string]float64{}}
	held := figure{name: "SSE events delayed over half the spacing", vals: map[string]float64{}}
	bunch := figure{name: "SSE chunks bunched", vals: map[string]float64{}}
	recv := figure{name: "SSE chunks received", vals: map[string]float64{}}
	errs := figure{name: "failed SSE streams", vals: map[string]float64{}}
	for name, runs := range r.sse {
		var meds, p50s, p99s []float64
		var b, n, e, hb int
		for _, x := range runs {
			meds = append(meds, median(x.firstChunk))
			p50s, p99s = append(p50s, ms(percentile(x.delays, 50))), append(p99s, ms(percentile(x.delays, 99)))
			b, n, e, hb = b+x.bunched, n+x.chunks, e+x.errors, hb+x.heldBack
		}
		first.vals[name] = median(meds)
		d50.vals[name], d99.vals[name], held.vals[name] = median(p50s), median(p99s), float64(hb)
		bunch.vals[name], recv.vals[name] = float64(b), float64(n)
		errs.vals[name] = float64(e)
	}
	return []figure{first, d50, d99, bunch, held, recv, errs}
}

// Names of the held-streams figures of a case.
func rssName(c holdCase) string { return fmt.Sprintf("RSS per open stream KiB, %d streams", c.streams) }
func cpuEventName(c holdCase) string {
	return fmt.Sprintf("CPU µs per streamed event, %d streams (an event every %s)", c.streams, c.spacing)
}
func holdErrName(c holdCase) string {
	return fmt.Sprintf("failed held streams, %d streams (all rounds)", c.streams)
}

func holdFigures(s settings, r *results) []figure {
	var out []figure
	for _, c := range s.holdCases {
		runs, ok := r.hold[c]
		if !ok {
			continue
		}
		perStream := figure{name: rssName(c), vals: map[string]float64{}}
		perEvent := figure{name: cpuEventName(c), vals: map[string]float64{}}
		errs := figure{name: holdErrName(c), vals: map[string]float64{}}
		for name, xs := range runs {
			var rss, ev []float64
			for _, x := range xs {
				rss, ev = append(rss, x.perStream/1024), append(ev, x.cpuPerEvent()*1e6)
				errs.vals[name] += float64(x.errors)
			}
			perStream.vals[name], perEvent.vals[name] = median(rss), median(ev)
		}
		out = append(out, perStream, perEvent, errs)
	}
	return out
}

func bulkFigures(s settings, r *results) []figure {
	up := figure{name: fmt.Sprintf("upload %d MiB, MiB/s", s.bulkMiB), vals: map[string]float64{}}
	down := figure{name: fmt.Sprintf("download %d MiB, MiB/s", s.bulkMiB), vals: map[string]float64{}}
	peak := figure{name: "peak RSS during transfers MiB", vals: map[string]float64{}}
	growth := figure{name: "peak RSS growth over idle MiB", vals: map[string]float64{}}
	errs := figure{name: "failed transfers", vals: map[string]float64{}}
	for name, xs := range r.up {
		up.vals[name] = median(xs)
	}
	for name, xs := range r.down {
		down.vals[name] = median(xs)
	}
	for name, p := range r.peak {
		peak.vals[name] = p / (1 << 20)
		growth.vals[name] = (p - r.base[name]) / (1 << 20)
	}
	for _, name := range r.names {
		if _, ok := r.up[name]; ok || r.bulkErrors[name] > 0 {
			errs.vals[name] = float64(r.bulkErrors[name])
		}
	}
	return []figure{up, down, peak, growth, errs}
}
