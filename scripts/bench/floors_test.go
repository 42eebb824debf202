package main

import (
	"slices"
	"testing"
)

// TestFloorTargets checks where the -floors targets go: their columns after
// the proxy's (and base's), before the references', and the ratio columns
// that compare each floor with nginx.
func TestFloorTargets(t *testing.T) {
	s, err := parseFlags([]string{"-floors"})
	if err != nil {
		t.Fatal(err)
	}
	if !s.floors {
		t.Fatal("-floors: floors off")
	}
	if s, _ := parseFlags(nil); s.floors {
		t.Error("floors on by default; want opt-in (-floors)")
	}
	tg := targetSet{baseBin: "b", floorBins: []string{"f1", "f2", "f2"}, refs: []foundRef{{refServer: refServers[0]}, {refServer: refServers[1]}}}
	names := tg.names()
	if want := []string{direct, proxy, baseline, floorNetHTTP, floorGoRelay, floorGoRelayPooled, nginx, haproxy}; !slices.Equal(names, want) {
		t.Errorf("names = %v; want %v", names, want)
	}
	cols := ratioColumns(names)
	want := [][2]string{{proxy, direct}, {proxy, baseline}, {proxy, floorNetHTTP}, {proxy, floorGoRelay}, {proxy, floorGoRelayPooled},
		{proxy, nginx}, {proxy, haproxy}, {floorNetHTTP, nginx}, {floorGoRelay, nginx}, {floorGoRelayPooled, nginx}}
	if !slices.Equal(cols, want) {
		t.Errorf("ratio columns = %v; want %v", cols, want)
	}
	// Without nginx, no floor/nginx column; without floors, none either.
	if cols := ratioColumns([]string{direct, proxy, floorNetHTTP, haproxy}); slices.Contains(cols, [2]string{floorNetHTTP, nginx}) || len(cols) != 3 {
		t.Errorf("ratio columns without nginx = %v; want proxy's three only", cols)
	}
	if cols := ratioColumns([]string{direct, proxy, nginx}); len(cols) != 2 {
		t.Errorf("ratio columns without floors = %v; want proxy/direct, proxy/nginx", cols)
	}
	// The pooled relay is the relay's binary with -pool.
	if f := floorTargets[2]; f.name != floorGoRelayPooled || f.pkg != "floor-gorelay" || !slices.Equal(f.args, []string{"-pool"}) {
		t.Errorf("floorTargets[2] = %+v; want floor-gorelay -pool", f)
	}
	if !isFloor(floorGoRelayPooled) || isFloor(proxy) || isFloor(nginx) {
		t.Error("isFloor: wrong for floor-gorelay-pooled, proxy or nginx")
	}
}

func TestFloorEnv(t *testing.T) {
	got := floorEnv(floorNetHTTP, []string{"GOGC=50", "BENCH_CPUPROFILE=/tmp/cpu.out-1000", "BENCH_MEMPROFILE=/tmp/heap.out-1000"})
	want := []string{"BENCH_CPUPROFILE=/tmp/cpu.out-1000-floor-nethttp", "BENCH_MEMPROFILE=/tmp/heap.out-1000-floor-nethttp"}
	if !slices.Equal(got, want) {
		t.Errorf("floorEnv = %q; want %q (profiles to files of its own, no runtime settings)", got, want)
	}
	if got := floorEnv(floorGoRelay, nil); len(got) != 0 {
		t.Errorf("floorEnv without profiles = %q; want none", got)
	}
}
