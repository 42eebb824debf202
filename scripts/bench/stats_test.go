package main

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	tests := []struct {
		in   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
	}
	for _, tt := range tests {
		in := append([]float64(nil), tt.in...)
		if got := median(tt.in); got != tt.want {
			t.Errorf("median(%v) = %v; want %v", tt.in, got, tt.want)
		}
		for i := range in {
			if in[i] != tt.in[i] {
				t.Errorf("median modified its input: %v; want %v", tt.in, in)
			}
		}
	}
	if got := median(nil); !math.IsNaN(got) {
		t.Errorf("median(nil) = %v; want NaN", got)
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	tests := []struct {
		p    float64
		want time.Duration
	}{
		{50, 50 * time.Millisecond},
		{99, 99 * time.Millisecond},
		{100, 100 * time.Millisecond},
		{0, 1 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := percentile(d, tt.p); got != tt.want {
			t.Errorf("percentile(1..100ms, %v) = %v; want %v", tt.p, got, tt.want)
		}
	}
	if got := percentile([]time.Duration{7}, 99); got != 7 {
		t.Errorf("percentile of one = %v; want 7", got)
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("percentile(nil) = %v; want 0", got)
	}
}

func TestRatioAndNum(t *testing.T) {
	tests := []struct {
		got, want string
	}{
		{ratio(63, 100), "0.63x"},
		{ratio(1234, 10), "123x"},
		{ratio(150, 10), "15.0x"},
		{ratio(1, 0), "-"},
		{ratio(math.NaN(), 1), "-"},
		{num(math.NaN()), "-"},
		{num(0), "0"},
		{num(3), "3"},
		{num(0.0234), "0.023"},
		{num(3.456), "3.46"},
		{num(12.34), "12.3"},
		{num(24584.4), "24584"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q; want %q", tt.got, tt.want)
		}
	}
}

func TestParseProcStat(t *testing.T) {
	// A command name with spaces and a parenthesis, as /proc shows it.
	const stat = "4242 (my (odd) proc) S 4200 4242 4242 0 -1 4194560 1000 0 0 0 250 130 0 0 20 0 5 0 100 1000000 500 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0"
	cpu, ppid, err := parseProcStat(stat)
	if err != nil {
		t.Fatal(err)
	}
	if want := 3800 * time.Millisecond; cpu != want {
		t.Errorf("cpu = %v; want %v (utime 250 + stime 130 ticks)", cpu, want)
	}
	if ppid != 4200 {
		t.Errorf("ppid = %d; want 4200", ppid)
	}
	for _, bad := range []string{"", "1 (x) S 1 2", "1 (x) S z 1 1 0 -1 0 0 0 0 0 1 1"} {
		if _, _, err := parseProcStat(bad); err == nil {
			t.Errorf("parseProcStat(%q): no error", bad)
		}
	}
}

func TestParseProcStatus(t *testing.T) {
	const status = "Name:\tchatgpt_reverse\nVmPeak:\t 1250000 kB\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\nThreads:\t5\n"
	m, err := parseProcStatus(strings.NewReader(status))
	if err != nil {
		t.Fatal(err)
	}
	if m.RSS != 10<<20 || m.HWM != 20<<20 {
		t.Errorf("RSS, HWM = %d, %d; want %d, %d", m.RSS, m.HWM, 10<<20, 20<<20)
	}
	if _, err := parseProcStatus(strings.NewReader("Name:\tzombie\n")); err == nil {
		t.Error("status without VmRSS: no error")
	}
	if _, err := parseProcStatus(strings.NewReader("VmRSS:\t 12 MB\nVmHWM:\t 1 kB\n")); err == nil {
		t.Error("status with an unknown unit: no error")
	}
}

func TestCPUModel(t *testing.T) {
	const info = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Processor\nflags\t\t: fpu\n"
	if got := cpuModel(strings.NewReader(info)); got != "Intel(R) Xeon(R) Processor" {
		t.Errorf("cpuModel = %q", got)
	}
	if got := cpuModel(strings.NewReader("")); got != "unknown" {
		t.Errorf("cpuModel(empty) = %q; want unknown", got)
	}
}

func TestBunched(t *testing.T) {
	ms := func(xs ...int) []time.Duration {
		var out []time.Duration
		for _, x := range xs {
			out = append(out, time.Duration(x)*time.Millisecond)
		}
		return out
	}
	tests := []struct {
		arrivals []time.Duration
		want     int
	}{
		{ms(0, 10, 20, 30), 0},
		{ms(0, 10, 11, 30), 1}, // the third arrived 1 ms after the second
		{ms(0, 20, 20, 20), 2}, // three held back and sent together
		{ms(5), 0},
	}
	for _, tt := range tests {
		if got := bunched(tt.arrivals, 10*time.Millisecond); got != tt.want {
			t.Errorf("bunched(%v, 10ms) = %d; want %d", tt.arrivals, got, tt.want)
		}
	}
}

func TestParseFlags(t *testing.T) {
	s, err := parseFlags([]string{"-quick", "-rounds", "2"})
	if err != nil {
		t.Fatal(err)
	}
	if s.rounds != 2 {
		t.Errorf("-quick -rounds 2: rounds = %d; want 2 (an explicit flag wins)", s.rounds)
	}
	if s.hold != 4*time.Second || s.dur != 700*time.Millisecond {
		t.Errorf("-quick: hold %v, dur %v; want 4s, 700ms", s.hold, s.dur)
	}
	want := []holdCase{{1000, 100 * time.Millisecond}, {5000, time.Second}}
	if !slices.Equal(s.holdCases, want) {
		t.Errorf("hold cases = %v; want %v (1,000 and 5,000 streams)", s.holdCases, want)
	}
	s, err = parseFlags([]string{"-hold-streams", "10/5ms, 20/1s", "-nginx", "none", "-caddy", "/opt/caddy"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []holdCase{{10, 5 * time.Millisecond}, {20, time.Second}}; !slices.Equal(s.holdCases, want) {
		t.Errorf("-hold-streams 10/5ms,20/1s: %v; want %v", s.holdCases, want)
	}
	if s.refs[nginx] != "none" || s.refs[caddy] != "/opt/caddy" || s.refs[haproxy] != "" {
		t.Errorf("reference flags = %v; want nginx none, caddy /opt/caddy, haproxy unset", s.refs)
	}
	if len(s.conc) != 3 || s.conc[2] != 64 {
		t.Errorf("conc = %v; want [1 16 64]", s.conc)
	}
	for _, bad := range [][]string{{"-conc", "1,x"}, {"-stages", "small,warp"}, {"-rounds", "0"},
		{"-hold-streams", "1000"}, {"-hold-streams", "1000/x"}, {"-hold-streams", "0/1s"}, {"-hold", "1s"}} {
		if _, err := parseFlags(bad); err == nil {
			t.Errorf("parseFlags(%q): no error", bad)
		}
	}
}

func TestSentAt(t *testing.T) {
	line := []byte(`data: {"id":"chatcmpl-1234567","object":"chat.completion.chunk"}` + "\n")
	if got, ok := sentAt(line); !ok || got != 1234567 {
		t.Errorf("sentAt = %v, %v; want 1.234567ms, true", got, ok)
	}
	for _, bad := range []string{`data: {"id":"chatcmpl-bench"}`, `data: {"id":"chatcmpl-"}`, `data: [DONE]`} {
		if _, ok := sentAt([]byte(bad)); ok {
			t.Errorf("sentAt(%q) ok; want not found", bad)
		}
	}
}

func TestTargets(t *testing.T) {
	s, err := parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	f := func(name string, d, p, n float64) figure {
		return figure{name: name, vals: map[string]float64{direct: d, proxy: p, nginx: n}}
	}
	c1, c5 := s.holdCases[0], s.holdCases[1]
	figs := []figure{
		f(rssName(c1), math.NaN(), 24, 18),
		f(cpuEventName(c1), math.NaN(), 20, 19),
		f(rssName(c5), math.NaN(), 30, 17),
		f(cpuEventName(c5), math.NaN(), 25, 19),
		f(holdErrName(c5), math.NaN(), 3, 0),
		{name: "CPU s per 10k requests, c=64", vals: map[string]float64{proxy: 0.52, nginx: 0.3, baseline: 0.5}},
		f("req/s, c=16", 1000, 700, 600),
		f("req/s, c=64", 1000, 300, 600),
		f("CPU s per 10k requests, c=16", math.NaN(), 0.3, 0.25),
		f("new upstream conns per 1k requests, c=64", 0, 1, 0),
		f("first SSE chunk ms (median of round medians)", 0.2, 0.45, 0.3),
		f("SSE chunks bunched", 0, 0, 0),
		f("failed SSE streams", 0, 2, 0),
	}
	got := map[string]string{}
	for _, r := range targets(s, figs) {
		got[r.name] = r.verdict
		got[r.issue+" "+r.name] = r.verdict
	}
	want := map[string]string{
		"throughput c=16":                                    "met",
		"throughput c=64":                                    "missed: 50% below nginx's ratio",
		"6 CPU per 10k requests c=16":                        "met",
		"new upstream connections per 1k requests c=64":      "missed: 1",
		"first SSE chunk added over direct":                  "met",
		"SSE bunching":                                       "met",
		"SSE streams complete":                               "missed: 2 failed (see the stderr log for the error)",
		"cold start to first proxied 200":                    "not measured in this run",
		"6 memory per open stream (1000 streams)":            "missed: 6 KiB (33%) over nginx",
		"16 memory per open stream (1000 streams)":           "met",
		"16 memory per open stream (5000 streams)":           "missed: 5 KiB over; 3 streams failed",
		"CPU per streamed event (1000 streams, 100ms apart)": "met",
		"CPU per streamed event (5000 streams, 1s apart)":    "missed: 10% over 1.2x nginx",
		"16 CPU per 10k requests c=16":                       "no base in this run (-base REV)",
		"16 CPU per 10k requests c=64":                       "met (within 5%, the noise of one run)",
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s: verdict %q; want %q", name, got[name], w)
		}
	}
	if _, ok := got["CPU per 10k requests c=32"]; ok {
		t.Error("a target row for a figure that is not in the run")
	}
}
