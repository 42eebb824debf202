package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// target is one way to reach the mock upstream: direct, through the proxy's
// server binary (or the baseline's), or through a reference server.
type target struct {
	name   string
	base   string
	client *http.Client
	cmd    *exec.Cmd // nil for direct
}

// newClient returns a keep-alive client that can hold conns connections to
// one host, without compression (bodies pass as sent).
func newClient(conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:               nil,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     5 * time.Minute,
		DisableCompression:  true,
	}}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// proxyEnv is the environment of the proxy binary: the harness's without any
// OXY_ variable, plus the settings given.
func proxyEnv(upstream string, port int) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OXY_") {
			env = append(env, kv)
		}
	}
	return append(env,
		"OXY_TARGET=http://"+upstream,
		"OXY_HOST=127.0.0.1",
		"OXY_PORT="+strconv.Itoa(port),
	)
}

// startProxy runs the server binary in front of the upstream, its log (one
// access-log line per request, the default) going to a file in dir.
func startProxy(name, bin, dir, upstream string, conns int, extraEnv ...string) (*target, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(filepath.Join(dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening the proxy log: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(bin)
	cmd.Env = append(proxyEnv(upstream, port), extraEnv...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the proxy: %w", err)
	}
	t := &target{name: name, base: "http://127.0.0.1:" + strconv.Itoa(port), client: newClient(conns), cmd: cmd}
	if err := t.waitReady(10 * time.Second); err != nil {
		t.stop()
		return nil, err
	}
	return t, nil
}

// waitReady polls until a request through t gets a 200.
func (t *target) waitReady(limit time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	for {
		if err := getOK(ctx, t.client, t.base+pathModels); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s", t.name, limit)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func getOK(ctx context.Context, c *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	res, err := c.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", res.StatusCode)
	}
	return nil
}

// stop ends the target's process and waits for it.
func (t *target) stop() {
	t.client.CloseIdleConnections()
	if t.cmd == nil || t.cmd.Process == nil {
		return
	}
	_ = t.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = t.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = t.cmd.Process.Kill()
		<-done
	}
}

// pids returns the target's process and its children (nginx's workers).
func (t *target) pids() []int {
	if t.cmd == nil || t.cmd.Process == nil {
		return nil
	}
	root := t.cmd.Process.Pid
	pids := []int{root}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == root {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		if _, ppid, err := parseProcStat(string(b)); err == nil && ppid == root {
			pids = append(pids, pid)
		}
	}
	return pids
}

// cpu returns the CPU time used so far by the given processes.
func cpu(pids []int) (time.Duration, error) {
	var total time.Duration
	for _, pid := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return 0, fmt.Errorf("reading cpu time: %w", err)
		}
		d, _, err := parseProcStat(string(b))
		if err != nil {
			return 0, err
		}
		total += d
	}
	return total, nil
}

// mem returns the summed RSS and peak RSS of the given processes.
func mem(pids []int) (memInfo, error) {
	var total memInfo
	for _, pid := range pids {
		f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
		if err != nil {
			return memInfo{}, fmt.Errorf("reading memory: %w", err)
		}
		m, err := parseProcStatus(f)
		f.Close()
		if err != nil {
			return memInfo{}, err
		}
		total.RSS += m.RSS
		total.HWM += m.HWM
	}
	return total, nil
}

// startFloor runs one of the floor-* reference programs (bin) in front of the
// upstream, its output going to a file in dir.
func startFloor(f floor, bin, dir, upstream string, conns int, env []string) (*target, error) {
	name := f.name
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, name+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening the %s log: %w", name, err)
	}
	defer logf.Close()
	listen := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(bin, append(slices.Clone(f.args), "-listen", listen, "-upstream", upstream)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	t := &target{name: name, base: "http://" + listen, client: newClient(conns), cmd: cmd}
	if err := t.waitReady(10 * time.Second); err != nil {
		t.stop()
		b, _ := os.ReadFile(logPath)
		return nil, fmt.Errorf("%w; %s said: %s", err, name, strings.TrimSpace(string(b)))
	}
	return t, nil
}

// floorEnv returns the environment a floor gets of the proxy's: only the
// profile requests (BENCH_CPUPROFILE, BENCH_MEMPROFILE), each to a file of its
// own, the proxy's name with "-" and the floor's appended. Runtime settings
// tried on the proxy (-proxy-env) are not passed: the floors stay as built.
func floorEnv(name string, proxyEnv []string) []string {
	var env []string
	for _, kv := range proxyEnv {
		if k, v, ok := strings.Cut(kv, "="); ok && (k == "BENCH_CPUPROFILE" || k == "BENCH_MEMPROFILE") {
			env = append(env, k+"="+v+"-"+name)
		}
	}
	return env
}
