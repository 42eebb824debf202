package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// median returns the middle value of xs (the mean of the two middle values
// for an even count), or NaN for none. xs is not modified.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// percentile returns the p-th percentile (0-100) of sorted durations by the
// nearest-rank method, or 0 for none.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = max(1, min(rank, len(sorted)))
	return sorted[rank-1]
}

// ratio formats a/b as "0.63x", or "-" when either side is missing or b is 0.
func ratio(a, b float64) string {
	if math.IsNaN(a) || math.IsNaN(b) || b == 0 {
		return "-"
	}
	r := a / b
	switch {
	case r >= 100:
		return fmt.Sprintf("%.0fx", r)
	case r >= 10:
		return fmt.Sprintf("%.1fx", r)
	}
	return fmt.Sprintf("%.2fx", r)
}

// num formats a figure with three significant digits, or "-" when missing.
func num(x float64) string {
	if math.IsNaN(x) {
		return "-"
	}
	switch ax := math.Abs(x); {
	case x == math.Trunc(x):
		return strconv.FormatFloat(x, 'f', 0, 64)
	case ax >= 1000:
		return strconv.FormatFloat(x, 'f', 0, 64)
	case ax >= 100:
		return strconv.FormatFloat(x, 'f', 0, 64)
	case ax >= 10:
		return strconv.FormatFloat(x, 'f', 1, 64)
	case ax >= 1:
		return strconv.FormatFloat(x, 'f', 2, 64)
	}
	return strconv.FormatFloat(x, 'f', 3, 64)
}

// clockTicks is the kernel's USER_HZ, the unit of utime and stime in
// /proc/<pid>/stat. It is 100 on every Linux architecture Go supports.
const clockTicks = 100

// parseProcStat returns a process's user plus system CPU time from the text
// of /proc/<pid>/stat. The command name (field 2) is in parentheses and may
// hold spaces or parentheses itself, so fields are counted after the last ')'.
func parseProcStat(text string) (cpu time.Duration, ppid int, err error) {
	i := strings.LastIndexByte(text, ')')
	if i < 0 {
		return 0, 0, errors.New("parsing /proc stat: no command name")
	}
	// After ')' come field 3 (state), 4 (ppid), ... 14 (utime), 15 (stime).
	f := strings.Fields(text[i+1:])
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("parsing /proc stat: %d fields after the command name, want at least 13", len(f))
	}
	ppid, err = strconv.Atoi(f[1])
	if err != nil {
		return 0, 0, fmt.Errorf("parsing /proc stat ppid: %w", err)
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("parsing /proc stat cpu time: %w", err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, ppid, nil
}

// memInfo is the memory figures of /proc/<pid>/status, in bytes.
type memInfo struct {
	RSS, HWM int64
}

// parseProcStatus reads VmRSS and VmHWM (peak RSS) from /proc/<pid>/status.
func parseProcStatus(r io.Reader) (memInfo, error) {
	var m memInfo
	found := 0
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return memInfo{}, fmt.Errorf("parsing /proc status %s: unexpected %q", name, rest)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return memInfo{}, fmt.Errorf("parsing /proc status %s: %w", name, err)
		}
		if name == "VmRSS" {
			m.RSS = kb << 10
		} else {
			m.HWM = kb << 10
		}
		found++
	}
	if err := sc.Err(); err != nil {
		return memInfo{}, fmt.Errorf("reading /proc status: %w", err)
	}
	if found != 2 {
		return memInfo{}, errors.New("parsing /proc status: VmRSS or VmHWM missing (process gone?)")
	}
	return m, nil
}

// cpuModel returns the first "model name" of /proc/cpuinfo.
func cpuModel(r io.Reader) string {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if name, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(name) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// bunched counts the gaps between consecutive arrivals that are shorter than
// a quarter of the spacing the upstream used: chunks sent apart that reached
// the client together, held back somewhere on the way.
func bunched(arrivals []time.Duration, spacing time.Duration) int {
	n := 0
	for i := 1; i < len(arrivals); i++ {
		if arrivals[i]-arrivals[i-1] < spacing/4 {
			n++
		}
	}
	return n
}

// sentAt returns the send time stamped into an SSE event by the mock
// upstream: the digits after `"id":"chatcmpl-`.
func sentAt(line []byte) (time.Duration, bool) {
	const key = `"id":"chatcmpl-`
	i := strings.Index(string(line), key)
	if i < 0 {
		return 0, false
	}
	rest := string(line[i+len(key):])
	j := strings.IndexByte(rest, '"')
	if j <= 0 {
		return 0, false
	}
	ns, err := strconv.ParseInt(rest[:j], 10, 64)
	if err != nil {
		return 0, false
	}
	return time.Duration(ns), true
}
