package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// smallResult is one timed run of small non-streaming requests.
type smallResult struct {
	rps      float64
	p50, p99 time.Duration
	requests int
	errors   int
	cpu      time.Duration // the target's processes, during the window
	newConns int64         // accepted by the upstream during the window
}

// postChat sends one small completion request and reads the whole answer.
func postChat(c *http.Client, base string) error {
	res, err := c.Post(base+pathChat, "application/json", bytes.NewReader(chatRequest))
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", res.StatusCode)
	}
	return nil
}

// runSmall keeps conc requests in flight against t for warm+dur and measures
// the dur window: requests that completed in it, their latencies, the CPU
// used by the target's processes and the connections the upstream accepted.
func runSmall(t *target, up *upstream, conc int, warm, dur time.Duration) (smallResult, error) {
	start := time.Now()
	t0, t1 := start.Add(warm), start.Add(warm+dur)
	lat := make([][]time.Duration, conc)
	var errs atomic.Int64
	var wg sync.WaitGroup
	for w := range conc {
		wg.Go(func() {
			for {
				s := time.Now()
				if s.After(t1) {
					return
				}
				err := postChat(t.client, t.base)
				e := time.Now()
				if s.Before(t0) || e.After(t1) {
					continue
				}
				if err != nil {
					errs.Add(1)
					continue
				}
				lat[w] = append(lat[w], e.Sub(s))
			}
		})
	}
	pids := t.pids()
	time.Sleep(time.Until(t0))
	cpu0, err := cpu(pids)
	if err != nil {
		return smallResult{}, err
	}
	conns0 := up.newConns.Load()
	time.Sleep(time.Until(t1))
	cpu1, err := cpu(pids)
	if err != nil {
		return smallResult{}, err
	}
	conns1 := up.newConns.Load()
	wg.Wait()
	all := slices.Concat(lat...)
	slices.Sort(all)
	return smallResult{
		rps:      float64(len(all)) / dur.Seconds(),
		p50:      percentile(all, 50),
		p99:      percentile(all, 99),
		requests: len(all),
		errors:   int(errs.Load()),
		cpu:      cpu1 - cpu0,
		newConns: conns1 - conns0,
	}, nil
}

// stream is what the client saw of one SSE stream: when each event arrived,
// counted from just before the request was sent, and how long each took
// from the upstream's write to the client's read.
type stream struct {
	arrivals, delays []time.Duration
}

// readStream sends a streaming request and reads the events to the end,
// calling opened after the first and counting each in events (either may be
// nil).
func readStream(ctx context.Context, c *http.Client, base string, opened func(), events *atomic.Int64) (stream, error) {
	var st stream
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+pathChat, bytes.NewReader(streamRequest))
	if err != nil {
		return st, err
	}
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	res, err := c.Do(req)
	if err != nil {
		return st, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return st, fmt.Errorf("status %d", res.StatusCode)
	}
	br := bufio.NewReader(res.Body)
	for {
		line, err := br.ReadSlice('\n')
		if err == io.EOF {
			return st, fmt.Errorf("stream ended without [DONE] after %d events", len(st.arrivals))
		}
		if err != nil {
			return st, err
		}
		if !bytes.HasPrefix(line, []byte("data: ")) {
			continue
		}
		if bytes.HasPrefix(line, []byte("data: [DONE]")) {
			return st, nil
		}
		now := time.Now()
		if events != nil {
			events.Add(1)
		}
		st.arrivals = append(st.arrivals, now.Sub(start))
		if sent, ok := sentAt(line); ok {
			st.delays = append(st.delays, now.Sub(epoch)-sent)
		}
		if len(st.arrivals) == 1 && opened != nil {
			opened()
		}
	}
}

// sseResult is a series of streams read one after another.
type sseResult struct {
	firstChunk []float64 // milliseconds
	delays     []time.Duration
	bunched    int
	heldBack   int // events delayed by more than half the spacing
	chunks     int
	errors     int
}

func runSSE(t *target, streams int, spacing time.Duration) sseResult {
	var r sseResult
	for range streams {
		st, err := readStream(context.Background(), t.client, t.base, nil, nil)
		if err != nil {
			logf("%s: a stream failed after %d events: %v", t.name, len(st.arrivals), err)
			r.errors++
			continue
		}
		r.firstChunk = append(r.firstChunk, ms(st.arrivals[0]))
		r.bunched += bunched(st.arrivals, spacing)
		r.chunks += len(st.arrivals)
		for _, d := range st.delays {
			if d > spacing/2 {
				r.heldBack++
			}
		}
		r.delays = append(r.delays, st.delays...)
	}
	slices.Sort(r.delays)
	return r
}

// holdResult is n streams held open at once.
type holdResult struct {
	perStream float64       // bytes of RSS per open stream
	cpu       time.Duration // the target's CPU time over the measured window
	events    int64         // events the client read in that window
	errors    int
}

// cpuPerEvent is the target's CPU seconds per streamed event.
func (h holdResult) cpuPerEvent() float64 {
	if h.events == 0 {
		return math.NaN()
	}
	return h.cpu.Seconds() / float64(h.events)
}

// runHold opens c.streams streams through t at once, each getting an event
// every c.spacing, and once all are open measures over hold: the RSS of t's
// processes halfway (over the RSS before), and their CPU time per event read
// by the client. Then the upstream ends the streams and runHold waits for
// them.
func runHold(t *target, up *upstream, c holdCase, hold time.Duration, profiling bool) (holdResult, error) {
	pids := t.pids()
	for range 3 {
		if _, err := readStream(context.Background(), t.client, t.base, nil, nil); err != nil {
			logf("warming %s: a stream failed: %v", t.name, err)
		}
	}
	time.Sleep(200 * time.Millisecond)
	base, err := mem(pids)
	if err != nil {
		return holdResult{}, err
	}
	release := up.holdStreams(c.spacing)
	released := false
	defer func() {
		if !released {
			release()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), hold+2*time.Minute)
	defer cancel()
	var opened, done sync.WaitGroup
	var errs, events atomic.Int64
	opened.Add(c.streams)
	for range c.streams {
		done.Go(func() {
			once := sync.OnceFunc(opened.Done)
			defer once()
			if st, err := readStream(ctx, t.client, t.base, once, &events); err != nil {
				logf("%s: a held stream failed after %d events: %v", t.name, len(st.arrivals), err)
				errs.Add(1)
			}
		})
	}
	opened.Wait()
	// Let the opening settle, then measure CPU per event over the hold and
	// memory halfway, when every stream is open and idle between events.
	time.Sleep(min(c.spacing, 500*time.Millisecond))
	cpu0, err := cpu(pids)
	if err != nil {
		return holdResult{}, err
	}
	ev0 := events.Load()
	time.Sleep(hold / 2)
	during, err := mem(pids)
	if err != nil {
		return holdResult{}, err
	}
	if (t.name == proxy || isFloor(t.name)) && profiling {
		_ = t.cmd.Process.Signal(syscall.SIGUSR1)
	}
	time.Sleep(hold / 2)
	cpu1, err := cpu(pids)
	if err != nil {
		return holdResult{}, err
	}
	ev1 := events.Load()
	release()
	released = true
	done.Wait()
	return holdResult{
		perStream: float64(during.RSS-base.RSS) / float64(c.streams),
		cpu:       cpu1 - cpu0,
		events:    ev1 - ev0,
		errors:    int(errs.Load()),
	}, nil
}

// upload sends body through t and returns the time until the answer.
func upload(t *target, body []byte) (time.Duration, error) {
	start := time.Now()
	res, err := t.client.Post(t.base+pathUpload, "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	d := time.Since(start)
	if err != nil {
		return 0, err
	}
	if res.StatusCode != http.StatusOK || !bytes.Contains(b, []byte(`"bytes":`+strconv.Itoa(len(body)))) {
		return 0, fmt.Errorf("upload through %s: status %d, %s", t.name, res.StatusCode, strings.TrimSpace(string(b)))
	}
	return d, nil
}

// download fetches the large file through t and returns the time taken.
func download(t *target, size int) (time.Duration, error) {
	start := time.Now()
	res, err := t.client.Get(t.base + pathDownload)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(io.Discard, res.Body)
	res.Body.Close()
	d := time.Since(start)
	if err != nil {
		return 0, err
	}
	if res.StatusCode != http.StatusOK || n != int64(size) {
		return 0, fmt.Errorf("download through %s: status %d, %d bytes, want %d", t.name, res.StatusCode, n, size)
	}
	return d, nil
}

// coldStart runs the binary and times exec to the first proxied 200, then
// kills it.
func coldStart(bin, upstream string, extraEnv []string) (time.Duration, error) {
	port, err := freePort()
	if err != nil {
		return 0, err
	}
	cmd := exec.Command(bin)
	cmd.Env = append(proxyEnv(upstream, port), extraEnv...)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	// A fresh connection per attempt: the first ones are refused.
	c := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	url := "http://127.0.0.1:" + strconv.Itoa(port) + pathModels
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("starting the proxy: %w", err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	for {
		if err := getOK(ctx, c, url); err == nil {
			return time.Since(start), nil
		}
		if ctx.Err() != nil {
			return 0, fmt.Errorf("proxy not answering 200 after 10s")
		}
		time.Sleep(100 * time.Microsecond)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}
