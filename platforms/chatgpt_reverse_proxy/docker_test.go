package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/internal/testkit"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/platforms/internal/platformtest"
)

// The Docker tests build the image with `make docker` (FROM scratch: nothing
// is pulled) and run it with --network host, as this machine's engine allows
// (dockerd --iptables=false --bridge=none). Without an engine they skip,
// saying why; DOCKER_TESTS=require (set by .ci/run) makes that a failure.

const (
	imageSource  = "https://github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy"
	maxImageSize = 15 << 20
	dockerWait   = 60 * time.Second
)

var containerSeq atomic.Int64

// needDocker returns the docker command, or skips (fails under
// DOCKER_TESTS=require) when no engine answers.
func needDocker(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the Docker image; skipped with -short")
	}
	why := ""
	bin, err := exec.LookPath("docker")
	if err != nil {
		why = "no docker command (Debian: apt-get install docker.io; .ci/run installs it)"
	} else if out, err := exec.Command(bin, "version", "--format", "{{.Server.Version}}").CombinedOutput(); err != nil {
		why = fmt.Sprintf("no Docker engine answers (%v: %s); start one as .ci/run does: dockerd --iptables=false --bridge=none --storage-driver=vfs",
			err, bytes.TrimSpace(out))
	}
	if why != "" {
		if os.Getenv("DOCKER_TESTS") == "require" {
			t.Fatal(why)
		}
		t.Skip(why)
	}
	return bin
}

// docker runs the docker command and returns its trimmed output.
func docker(t *testing.T, bin string, args ...string) string {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// container is a running container of the image.
type container struct {
	name string
	port int
}

func (c container) base() string { return "http://127.0.0.1:" + strconv.Itoa(c.port) }

// runContainer starts the image on the host network on a free loopback port
// with env, checks its health every second, waits until it answers, and
// removes it when the test ends.
func runContainer(t *testing.T, bin, image string, env map[string]string) container {
	t.Helper()
	c := container{name: fmt.Sprintf("chatgpt_reverse_proxy-test-%d-%d", os.Getpid(), containerSeq.Add(1)), port: testkit.FreePort(t)}
	args := []string{"run", "-d", "--name", c.name, "--network", "host", "--health-interval", "1s",
		"-e", "OXY_HOST=127.0.0.1", "-e", "OXY_PORT=" + strconv.Itoa(c.port)}
	for k, v := range env {
		args = append(args, "-e", k+"="+v)
	}
	docker(t, bin, append(args, image)...)
	t.Cleanup(func() { _ = exec.Command(bin, "rm", "-f", c.name).Run() })
	if !waitServes(c.base()) {
		logs, _ := exec.Command(bin, "logs", c.name).CombinedOutput()
		t.Fatalf("container %s does not answer on %s after %v; logs:\n%s", c.name, c.base(), dockerWait, logs)
	}
	return c
}

// waitServes waits until base's health route answers 200.
func waitServes(base string) bool {
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}
	return testkit.WaitUntil(dockerWait, func() bool {
		res, err := client.Get(base + "/healthz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	})
}

// TestDocker_image builds the image and runs it: size, labels, non-root user,
// a request, a stream event by event, a WebSocket, the health check,
// `docker stop` draining a stream, and docker-compose.
func TestDocker_image(t *testing.T) {
	bin := needDocker(t)
	image := fmt.Sprintf("chatgpt_reverse_proxy:test-%d", os.Getpid())
	build := exec.Command("make", "-C", filepath.Join("..", ".."), "docker", "IMAGE="+image, "DOCKER="+bin,
		"IMAGE_CONTEXT="+t.TempDir(), "VERSION="+testVersion)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("make docker: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command(bin, "rmi", "-f", image).Run() })

	t.Run("config", func(t *testing.T) {
		var inspect []struct {
			Size   int64
			Config struct {
				User         string
				ExposedPorts map[string]any
				Entrypoint   []string
				Labels       map[string]string
				Healthcheck  struct{ Test []string }
			}
		}
		if err := json.Unmarshal([]byte(docker(t, bin, "image", "inspect", image)), &inspect); err != nil || len(inspect) != 1 {
			t.Fatalf("image inspect: %v", err)
		}
		img := inspect[0]
		if img.Size <= 0 || img.Size >= maxImageSize {
			t.Errorf("image size %d bytes; want under 15 MB", img.Size)
		}
		if img.Config.User != "65532:65532" {
			t.Errorf("User = %q; want 65532:65532 (non-root)", img.Config.User)
		}
		if _, ok := img.Config.ExposedPorts["9000/tcp"]; !ok || len(img.Config.ExposedPorts) != 1 {
			t.Errorf("ExposedPorts = %v; want 9000/tcp", img.Config.ExposedPorts)
		}
		if got := strings.Join(img.Config.Healthcheck.Test, " "); got != "CMD /chatgpt_reverse_proxy -healthcheck" {
			t.Errorf("HEALTHCHECK %q; want the binary's own -healthcheck, no shell", got)
		}
		revision, err := exec.Command("git", "rev-parse", "HEAD").Output()
		if err != nil {
			t.Fatal(err)
		}
		for k, want := range map[string]string{
			"org.opencontainers.image.version":  testVersion,
			"org.opencontainers.image.source":   imageSource,
			"org.opencontainers.image.revision": strings.TrimSpace(string(revision)),
		} {
			if got := img.Config.Labels[k]; got != want {
				t.Errorf("label %s = %q; want %q", k, got, want)
			}
		}
	})

	up := platformtest.NewUpstream(t)
	ws, releaseWS := newHeldWebSocket(t)
	c := runContainer(t, bin, image, map[string]string{"OXY_TARGET": up.URL})
	wsc := runContainer(t, bin, image, map[string]string{"OXY_TARGET": ws.URL})

	t.Run("version", func(t *testing.T) {
		out := docker(t, bin, "run", "--rm", "--network", "none", image, "-version")
		if !strings.HasPrefix(out, "chatgpt_reverse_proxy "+testVersion+" ") {
			t.Errorf("-version in the image = %q; want version %s", out, testVersion)
		}
	})
	t.Run("request", func(t *testing.T) {
		res, body := platformtest.Do(t, http.MethodPost, c.base()+"/v1/chat/completions", platformtest.ClientHeaders(),
			`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`)
		if res.StatusCode != http.StatusOK || body != `{"object":"chat.completion"}` || res.Header.Get("X-Request-Id") != "req_test" {
			t.Errorf("POST through the container = %d %q (x-request-id %q); want the upstream's answer", res.StatusCode, body, res.Header.Get("X-Request-Id"))
		}
		if got := up.Last(t); got.URI != "/v1/chat/completions" || got.Header.Get("Authorization") == "" {
			t.Errorf("upstream saw %s %s, Authorization %q", got.Method, got.URI, got.Header.Get("Authorization"))
		}
	})
	t.Run("sse", func(t *testing.T) { platformtest.CheckSSE(t, up, c.base()+"/v1/chat/completions", nil) })
	t.Run("websocket", func(t *testing.T) {
		conn, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(wsc.port))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(dockerWait))
		_, _ = io.WriteString(conn, "GET /v1/realtime?model=gpt-realtime HTTP/1.1\r\nHost: proxy.test\r\n"+
			"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"+
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Bearer "+testAPIKey+"\r\n\r\n")
		br := bufio.NewReader(conn)
		res, err := http.ReadResponse(br, nil)
		if err != nil || res.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("upgrade through the container: %v, %v; want 101", res, err)
		}
		if line, err := br.ReadString('\n'); err != nil || line != "first\n" {
			t.Fatalf("first message = %q, %v", line, err)
		}
		releaseWS()
		if line, err := br.ReadString('\n'); err != nil || line != "second\n" {
			t.Errorf("second message = %q, %v", line, err)
		}
	})
	t.Run("nonRoot", func(t *testing.T) {
		pid := docker(t, bin, "inspect", "--format", "{{.State.Pid}}", c.name)
		status, err := os.ReadFile("/proc/" + pid + "/status")
		if err != nil {
			t.Skipf("cannot read the container's process (%v): not on the engine's machine", err)
		}
		for _, line := range strings.Split(string(status), "\n") {
			if f := strings.Fields(line); len(f) == 5 && (f[0] == "Uid:" || f[0] == "Gid:") {
				for _, id := range f[1:] {
					if id != "65532" {
						t.Errorf("the proxy runs with %s; want 65532 throughout", line)
					}
				}
			}
		}
	})
	t.Run("healthy", func(t *testing.T) {
		var status string
		if !testkit.WaitUntil(dockerWait, func() bool {
			status = docker(t, bin, "inspect", "--format", "{{.State.Health.Status}}", c.name)
			return status == "healthy"
		}) {
			t.Errorf("health %q after %v; want healthy\n%s", status, dockerWait,
				docker(t, bin, "inspect", "--format", "{{json .State.Health}}", c.name))
		}
	})
	t.Run("stopDrainsStream", func(t *testing.T) { checkStopDrains(t, bin, image) })
	t.Run("compose", func(t *testing.T) { checkCompose(t, image) })
}

// checkStopDrains: `docker stop` (SIGTERM) lets a stream in flight finish,
// and the container exits 0 before Docker would kill it.
func checkStopDrains(t *testing.T, bin, image string) {
	held, release := newHeldStream(t)
	c := runContainer(t, bin, image, map[string]string{"OXY_TARGET": held.URL})
	_, br := openStream(t, c.base())
	stopped := make(chan string, 1)
	go func() {
		out, err := exec.Command(bin, "stop", "-t", "50", c.name).CombinedOutput()
		stopped <- fmt.Sprintf("%s %v", bytes.TrimSpace(out), err)
	}()
	if !testkit.WaitUntil(dockerWait, func() bool {
		logs, _ := exec.Command(bin, "logs", c.name).CombinedOutput()
		return bytes.Contains(logs, []byte("shutting down"))
	}) {
		t.Fatal("the proxy did not start shutting down after docker stop")
	}
	select {
	case s := <-stopped:
		t.Fatalf("docker stop returned (%s) while a stream was in flight", s)
	default:
	}
	release()
	rest, err := io.ReadAll(br)
	if want := "data: " + secondEvent + "\n\ndata: [DONE]\n\n"; err != nil || string(rest) != want {
		t.Errorf("rest of the stream = %q, %v; want %q", rest, err, want)
	}
	select {
	case <-stopped:
	case <-time.After(dockerWait):
		t.Fatal("docker stop still waiting after the stream ended")
	}
	if code := docker(t, bin, "inspect", "--format", "{{.State.ExitCode}}", c.name); code != "0" {
		t.Errorf("exit code %s; want 0 (a clean shutdown, not killed)", code)
	}
}

// checkCompose: `docker-compose -f build/docker-compose.yml up` serves on the
// published port, with the image built here (PROXY_IMAGE) published on a free
// loopback port (PROXY_PUBLISH). Compose puts the container on a network of
// its own, from which the loopback mock upstream cannot be reached: the check
// is the health route, which never contacts the upstream.
func checkCompose(t *testing.T, image string) {
	compose, err := exec.LookPath("docker-compose")
	if err != nil {
		if os.Getenv("DOCKER_TESTS") == "require" {
			t.Fatal("no docker-compose (Debian: apt-get install docker-compose)")
		}
		t.Skip("no docker-compose (Debian: apt-get install docker-compose)")
	}
	port := testkit.FreePort(t)
	project := fmt.Sprintf("crptest%d", os.Getpid())
	run := func(args ...string) ([]byte, error) {
		cmd := exec.Command(compose, append([]string{"-f", filepath.Join("..", "..", "build", "docker-compose.yml"), "-p", project}, args...)...)
		cmd.Env = append(os.Environ(), "PROXY_IMAGE="+image, "PROXY_PUBLISH=127.0.0.1:"+strconv.Itoa(port))
		return cmd.CombinedOutput()
	}
	t.Cleanup(func() { _, _ = run("down", "--timeout", "5") })
	if out, err := run("up", "-d", "--no-build"); err != nil {
		t.Fatalf("docker-compose up: %v\n%s", err, out)
	}
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	if !waitServes(base) {
		out, _ := run("logs")
		t.Fatalf("docker-compose up: nothing answers on %s after %v\n%s", base, dockerWait, out)
	}
	res, body := platformtest.Do(t, http.MethodGet, base+"/healthz", nil, "")
	if res.StatusCode != http.StatusOK || !strings.Contains(body, `"version":"`+testVersion+`"`) {
		t.Errorf("GET /healthz through compose = %d %q; want 200 from version %s", res.StatusCode, body, testVersion)
	}
}
