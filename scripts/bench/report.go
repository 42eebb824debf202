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
	"time"
)

// report prints the run as Markdown: the machine, the command, the table of
// medians and ratios, the targets, binary sizes and the micro-benchmarks.
func report(w io.Writer, s settings, r *results, machine []string, measured time.Duration) {
	fmt.Fprintf(w, "Run of %s UTC, measuring took %s.\n\n", time.Now().UTC().Format("2006-01-02 15:04"), measured.Round(time.Second))
	fmt.Fprintln(w, strings.Join(machine, "\n"))
	fmt.Fprintf(w, "- Command: `%s`\n", strings.TrimSpace("go run ./scripts/bench "+strings.Join(os.Args[1:], " ")))
	var cases []string
	for _, c := range s.holdCases {
		cases = append(cases, c.String())
	}
	fmt.Fprintf(w, "- Settings: %d rounds of %s (after %s warm-up) per concurrency and target; %d SSE streams of %d events %s apart per target and round; "+
		"held streams (%s) measured over %s, %d rounds; %d x %d MiB up and down per target and round; nginx worker_processes and HAProxy nbthread %d\n",
		s.rounds, s.dur, s.warm, s.streams, s.chunks, s.spacing, strings.Join(cases, "; "), s.hold, s.holdRounds, s.bulkReps, s.bulkMiB, s.workers)
	if s.base != "" {
		fmt.Fprintf(w, "- base: the server built from revision `%s`, beside the working tree's (proxy)\n", s.base)
	}
	fmt.Fprintln(w)
	if len(s.proxyEnv) > 0 {
		fmt.Fprintf(w, "- Proxy environment added: `%s`\n\n", strings.Join(s.proxyEnv, " "))
	}

	var figs []figure
	figs = append(figs, smallFigures(s, r)...)
	figs = append(figs, streamFigures(r)...)
	figs = append(figs, holdFigures(s, r)...)
	figs = append(figs, bulkFigures(s, r)...)
	cold := figure{name: "cold start: exec to first proxied 200, ms", vals: map[string]float64{proxy: median(r.cold)}}
	figs = append(figs, cold)

	printFigures(w, r.names, figs)
	fmt.Fprintln(w, "| Target | issue | wanted | measured | verdict |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	for _, t := range targets(s, figs) {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", t.name, t.issue, t.want, t.got, t.verdict)
	}
	fmt.Fprintln(w)

	if len(r.sizes) > 0 {
		fmt.Fprintln(w, "| Build (CGO_ENABLED=0 -trimpath -ldflags '-s -w' -tags lambda.norpc) | bytes | MiB |")
		fmt.Fprintln(w, "|---|---:|---:|")
		for _, b := range r.sizes {
			fmt.Fprintf(w, "| %s | %d | %.1f |\n", b.pkg, b.bytes, float64(b.bytes)/(1<<20))
		}
		fmt.Fprintln(w)
	}
	if r.micro != "" {
		fmt.Fprintf(w, "Core micro-benchmarks (`go test -run '^$' -bench . -benchmem -count %d ./core`):\n\n```text\n%s\n```\n", s.micro, r.micro)
	}
}

// printFigures prints the table of figures: a column per target, then the
// ratios of ratioColumns.
func printFigures(w io.Writer, names []string, figs []figure) {
	cols := ratioColumns(names)
	head, rule := "| Figure (median over rounds) |", "|---|"
	for _, n := range names {
		head, rule = head+" "+n+" |", rule+"---:|"
	}
	for _, c := range cols {
		head, rule = head+" "+c[0]+"/"+c[1]+" |", rule+"---:|"
	}
	fmt.Fprintln(w, head)
	fmt.Fprintln(w, rule)
	for _, f := range figs {
		if !slices.ContainsFunc(names, func(n string) bool { return !math.IsNaN(f.get(n)) }) {
			continue // a stage that did not run
		}
		line := "| " + f.name + " |"
		for _, n := range names {
			line += " " + num(f.get(n)) + " |"
		}
		for _, c := range cols {
			line += " " + ratio(f.get(c[0]), f.get(c[1])) + " |"
		}
		fmt.Fprintln(w, line)
	}
	fmt.Fprintln(w)
}

// ratioColumns returns the ratios the table shows, as {numerator,
// denominator} target names: the proxy's to every other target, then each
// floor's to nginx (how far the floor itself is from nginx).
func ratioColumns(names []string) [][2]string {
	var cols [][2]string
	for _, n := range names {
		if n != proxy {
			cols = append(cols, [2]string{proxy, n})
		}
	}
	if slices.Contains(names, nginx) {
		for _, n := range names {
			if isFloor(n) {
				cols = append(cols, [2]string{n, nginx})
			}
		}
	}
	return cols
}

// verdictRow is one target of an issue with the run's figures.
type verdictRow struct {
	name, issue, want, got, verdict string
}

func find(figs []figure, name string) figure {
	for _, f := range figs {
		if f.name == name {
			return f
		}
	}
	return figure{}
}

func yes(ok bool, miss string) string {
	if ok {
		return "met"
	}
	return "missed: " + miss
}

func targets(s settings, figs []figure) []verdictRow {
	var out []verdictRow
	// add appends row, or a "not measured" row when a stage was skipped.
	add := func(row verdictRow, measured ...float64) {
		for _, v := range measured {
			if math.IsNaN(v) {
				row.got, row.verdict = "-", "not measured in this run"
			}
		}
		out = append(out, row)
	}
	hasNginx := !math.IsNaN(find(figs, "req/s, c=1").get(nginx)) || !math.IsNaN(find(figs, "req/s, c=16").get(nginx)) ||
		(len(s.holdCases) > 0 && !math.IsNaN(find(figs, rssName(s.holdCases[0])).get(nginx)))
	// vsNginx fills in a verdict that needs nginx's figure.
	vsNginx := func(row verdictRow, ok bool, miss string) verdictRow {
		if hasNginx {
			row.verdict = yes(ok, miss)
		} else {
			row.verdict = "no nginx in this run"
		}
		return row
	}
	for _, c := range []int{16, 64} {
		f := find(figs, fmt.Sprintf("req/s, c=%d", c))
		if f.vals == nil {
			continue
		}
		p, n := f.get(proxy)/f.get(direct), f.get(nginx)/f.get(direct)
		row := verdictRow{name: fmt.Sprintf("throughput c=%d", c), issue: "6", want: "proxy/direct >= nginx/direct",
			got: fmt.Sprintf("%.2fx vs %.2fx", p, n)}
		add(vsNginx(row, p >= n, fmt.Sprintf("%.0f%% below nginx's ratio", (1-p/n)*100)), p)
	}
	for _, c := range []int{16, 64} {
		f := find(figs, fmt.Sprintf("CPU s per 10k requests, c=%d", c))
		if f.vals == nil {
			continue
		}
		p, n, b := f.get(proxy), f.get(nginx), f.get(baseline)
		row := verdictRow{name: fmt.Sprintf("CPU per 10k requests c=%d", c), issue: "6", want: "<= 1.5x nginx", got: fmt.Sprintf("%.2f s vs nginx %.2f s (%s)", p, n, ratio(p, n))}
		add(vsNginx(row, p <= 1.5*n, fmt.Sprintf("%.0f%% over 1.5x nginx", (p/(1.5*n)-1)*100)), p)
		row = verdictRow{name: fmt.Sprintf("CPU per 10k requests c=%d", c), issue: "16", want: "<= base (not above the build it changes)",
			got: fmt.Sprintf("%.2f s vs base %.2f s (%s)", p, b, ratio(p, b))}
		if math.IsNaN(b) {
			row.verdict = "no base in this run (-base REV)"
		} else {
			// Runs move by several percent; a change within 5% is
			// within the noise of one run.
			row.verdict = yes(p <= 1.05*b, fmt.Sprintf("%.0f%% over base", (p/b-1)*100))
			if p > b && p <= 1.05*b {
				row.verdict += " (within 5%, the noise of one run)"
			}
		}
		add(row, p)
	}
	if f := find(figs, "new upstream conns per 1k requests, c=64"); f.vals != nil {
		p := f.get(proxy)
		add(verdictRow{"new upstream connections per 1k requests c=64", "6", "< 1", num(p), yes(p < 1, num(p))}, p)
	}
	for i, c := range s.holdCases {
		f := find(figs, rssName(c))
		if f.vals == nil {
			continue
		}
		p, n := f.get(proxy), f.get(nginx)
		failed := ""
		if held := find(figs, holdErrName(c)).get(proxy); held > 0 {
			failed = fmt.Sprintf("; %s streams failed", num(held))
		}
		if i == 0 {
			row := verdictRow{name: fmt.Sprintf("memory per open stream (%d streams)", c.streams), issue: "6", want: "<= nginx",
				got: fmt.Sprintf("%s KiB vs nginx %s KiB", num(p), num(n))}
			row = vsNginx(row, p <= n, fmt.Sprintf("%s KiB (%.0f%%) over nginx", num(p-n), (p/n-1)*100))
			row.verdict += failed
			add(row, p)
		}
		add(verdictRow{fmt.Sprintf("memory per open stream (%d streams)", c.streams), "16", "<= 25 KiB", num(p) + " KiB",
			yes(p <= 25, fmt.Sprintf("%s KiB over", num(p-25))) + failed}, p)
		e := find(figs, cpuEventName(c))
		pe, ne := e.get(proxy), e.get(nginx)
		row := verdictRow{name: fmt.Sprintf("CPU per streamed event (%d streams, %s apart)", c.streams, c.spacing), issue: "16", want: "<= 1.2x nginx",
			got: fmt.Sprintf("%s µs vs nginx %s µs (%s)", num(pe), num(ne), ratio(pe, ne))}
		add(vsNginx(row, pe <= 1.2*ne, fmt.Sprintf("%.0f%% over 1.2x nginx", (pe/(1.2*ne)-1)*100)), pe)
	}
	first := find(figs, "first SSE chunk ms (median of round medians)")
	added := first.get(proxy) - first.get(direct)
	add(verdictRow{"first SSE chunk added over direct", "6", "<= 0.3 ms", fmt.Sprintf("%+.3f ms", added),
		yes(added <= 0.3, fmt.Sprintf("%.3f ms over", added-0.3))}, added)
	b := find(figs, "SSE chunks bunched").get(proxy)
	hb := find(figs, "SSE events delayed over half the spacing").get(proxy)
	add(verdictRow{"SSE bunching", "6, 16", "none", fmt.Sprintf("%s bunched, %s held back over %s", num(b), num(hb), s.spacing/2),
		yes(b == 0, num(b)+" chunks bunched")}, b)
	cut := find(figs, "failed SSE streams").get(proxy)
	add(verdictRow{"SSE streams complete", "6, 16", "every stream ends with [DONE]", fmt.Sprintf("%s of %d failed", num(cut), s.streams*s.rounds),
		yes(cut == 0, num(cut)+" failed (see the stderr log for the error)")}, cut)
	for _, name := range []string{fmt.Sprintf("upload %d MiB, MiB/s", s.bulkMiB), fmt.Sprintf("download %d MiB, MiB/s", s.bulkMiB)} {
		f := find(figs, name)
		r := f.get(proxy) / f.get(direct)
		add(verdictRow{strings.Split(name, ",")[0] + " throughput", "6", ">= 0.7x direct", fmt.Sprintf("%.2fx", r),
			yes(r >= 0.7, fmt.Sprintf("%.0f%% below 0.7x", (1-r/0.7)*100))}, r)
		if b := f.get(baseline); !math.IsNaN(b) {
			p := f.get(proxy)
			add(verdictRow{strings.Split(name, ",")[0] + " throughput", "16", ">= base (no slower than the build it changes)", fmt.Sprintf("%s vs base %s MiB/s (%s)", num(p), num(b), ratio(p, b)),
				yes(p >= 0.95*b, fmt.Sprintf("%.0f%% below base", (1-p/b)*100))}, p)
		}
	}
	g := find(figs, "peak RSS growth over idle MiB").get(proxy)
	body := float64(s.bulkMiB)
	add(verdictRow{"peak RSS during transfers", "6", fmt.Sprintf("growth well under the body (< 25%% of %d MiB)", s.bulkMiB),
		fmt.Sprintf("+%s MiB (peak %s MiB)", num(g), num(find(figs, "peak RSS during transfers MiB").get(proxy))),
		yes(g < body/4, fmt.Sprintf("%s MiB over", num(g-body/4)))}, g)
	c := find(figs, "cold start: exec to first proxied 200, ms").get(proxy)
	add(verdictRow{"cold start to first proxied 200", "6", "< 10 ms", num(c) + " ms", yes(c < 10, fmt.Sprintf("%s ms over", num(c-10)))}, c)
	return out
}

// buildSizes builds every main package under platforms/ as a release would.
func buildSizes(root, dir string) ([]binarySize, error) {
	cmd := exec.Command("go", "list", "-tags", "lambda.norpc", "-f", `{{if eq .Name "main"}}{{.ImportPath}}{{end}}`, "./platforms/...")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("listing the platforms: %w", err)
	}
	var sizes []binarySize
	for _, pkg := range strings.Fields(string(out)) {
		rel := "./" + strings.TrimPrefix(pkg, modulePath(root)+"/")
		logf("building %s", rel)
		bin := filepath.Join(dir, "size-"+filepath.Base(rel))
		if err := goBuild(root, rel, bin, "lambda.norpc"); err != nil {
			return nil, err
		}
		st, err := os.Stat(bin)
		if err != nil {
			return nil, fmt.Errorf("sizing %s: %w", rel, err)
		}
		sizes = append(sizes, binarySize{pkg: rel, bytes: st.Size()})
	}
	return sizes, nil
}

func modulePath(root string) string {
	cmd := exec.Command("go", "list", "-m")
	cmd.Dir = root
	b, err := cmd.Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// microBench runs the core package's Go benchmarks and returns their output
// lines (or the failure).
func microBench(root string, count int) string {
	cmd := exec.Command("go", "test", "-run", "^$", "-bench", ".", "-benchmem", "-count", fmt.Sprint(count), "./core")
	cmd.Dir = root
	b, err := cmd.CombinedOutput()
	var keep []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "Benchmark") || strings.HasPrefix(l, "goos") || strings.HasPrefix(l, "goarch") || strings.HasPrefix(l, "cpu") {
			keep = append(keep, l)
		}
	}
	if err != nil {
		keep = append(keep, "go test failed: "+err.Error(), strings.TrimSpace(string(b)))
	}
	return strings.Join(keep, "\n")
}
