package scripts

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/internal/testkit"
)

// checkStarts writes files into a directory (as the platform unpacks the
// zip), runs the entry script there directly (so its mode and shebang
// matter), and checks that the binary it starts serves requests on the port
// given in portVar and exits cleanly on SIGTERM (the script must exec it).
func checkStarts(t *testing.T, files map[string]file, script, portVar string) {
	t.Helper()
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skip("runs the linux/amd64 binary")
	}
	dir := t.TempDir()
	for name, f := range files {
		if err := os.WriteFile(filepath.Join(dir, name), f.data, f.mode.Perm()); err != nil {
			t.Fatal(err)
		}
	}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"object":"list"}`)
	}))
	defer up.Close()

	port := strconv.Itoa(testkit.FreePort(t))

	// Started from elsewhere, as SCF and FC do: the script finds its binary.
	cmd := exec.Command(filepath.Join(dir, script))
	cmd.Dir = t.TempDir()
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "OXY_HOST=127.0.0.1", "OXY_TARGET=" + up.URL, portVar + "=" + port}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", script, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("%s exited with %v after SIGTERM; want a clean exit (exec the binary)", script, err)
			}
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("%s still running 60s after SIGTERM", script)
		}
	}()

	deadline := time.Now().Add(60 * time.Second)
	for {
		res, err := http.Get("http://127.0.0.1:" + port + "/v1/models")
		if err == nil {
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK || string(body) != `{"object":"list"}` {
				t.Errorf("GET /v1/models through %s = %d %s; want the upstream's answer", script, res.StatusCode, body)
			}
			return
		}
		select {
		case err := <-exited:
			t.Fatalf("%s exited before serving: %v", script, err)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: nothing listening on port %s (%s) after 60s", script, port, portVar)
		}
	}
}
