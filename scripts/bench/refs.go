package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// refServer is a reference reverse proxy measured beside ours: a Debian
// package that the harness configures for streaming and starts in front of
// the same mock upstream.
type refServer struct {
	name    string
	pkg     string   // the Debian package that installs it
	paths   []string // where the package puts the binary, tried after PATH
	version func(bin string) string
	// config returns the configuration file's name and text for a server
	// listening on listen in front of upstream, with dir for its logs.
	config func(s settings, dir, listen, upstream string) (file, text string)
	// args returns the command line that runs it with that configuration, in
	// the foreground.
	args func(dir, conf string) []string
	// check returns the command line that validates the configuration.
	check func(conf string) []string
}

// refServers are the references, in the order of the table's columns.
var refServers = []refServer{
	{
		name: nginx, pkg: "nginx", paths: []string{"/usr/sbin/nginx"},
		version: func(bin string) string { return strings.TrimPrefix(commandOutput(bin, "-v"), "nginx version: ") },
		config:  nginxConfig,
		args: func(dir, conf string) []string {
			return []string{"-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", conf}
		},
		check: func(conf string) []string {
			dir := filepath.Dir(conf)
			return []string{"-t", "-q", "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", conf}
		},
	},
	{
		name: haproxy, pkg: "haproxy", paths: []string{"/usr/sbin/haproxy"},
		version: func(bin string) string { return firstLine(commandOutput(bin, "-v")) },
		config:  haproxyConfig,
		args:    func(_, conf string) []string { return []string{"-db", "-f", conf} },
		check:   func(conf string) []string { return []string{"-c", "-q", "-f", conf} },
	},
	{
		name: caddy, pkg: "caddy", paths: []string{"/usr/bin/caddy"},
		version: func(bin string) string { return "caddy " + firstLine(commandOutput(bin, "version")) },
		config:  caddyConfig,
		args: func(_, conf string) []string {
			return []string{"run", "--adapter", "caddyfile", "--config", conf}
		},
		check: func(conf string) []string {
			return []string{"validate", "--adapter", "caddyfile", "--config", conf}
		},
	},
}

// foundRef is a reference server whose binary was found.
type foundRef struct {
	refServer
	bin string
}

// findRefs returns the reference servers to measure: for each, the binary
// its flag names, else the one in PATH or where the Debian package puts it;
// "none" skips it.
func findRefs(flags map[string]string) []foundRef {
	var out []foundRef
	for _, r := range refServers {
		v := flags[r.name]
		switch v {
		case "none":
			continue
		case "":
			if p, err := exec.LookPath(r.name); err == nil {
				v = p
				break
			}
			for _, p := range r.paths {
				if _, err := os.Stat(p); err == nil {
					v = p
					break
				}
			}
		}
		if v == "" {
			logf("%s not found: skipped (apt-get install -y %s to add it)", r.name, r.pkg)
			continue
		}
		out = append(out, foundRef{r, v})
	}
	return out
}

// start writes the reference's configuration into dir and runs it.
func (r foundRef) start(s settings, dir, upstream string, conns int) (*target, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		return nil, fmt.Errorf("making the %s dir: %w", r.name, err)
	}
	listen := "127.0.0.1:" + strconv.Itoa(port)
	file, text := r.config(s, dir, listen, upstream)
	conf := filepath.Join(dir, file)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		return nil, fmt.Errorf("writing the %s configuration: %w", r.name, err)
	}
	outPath := filepath.Join(dir, r.name+".out")
	out, err := os.OpenFile(outPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening the %s output file: %w", r.name, err)
	}
	defer out.Close()
	cmd := exec.Command(r.bin, r.args(dir, conf)...)
	cmd.Dir = dir
	// Caddy keeps its state under the XDG directories (or HOME): keep it in
	// the temp dir.
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", r.name, err)
	}
	t := &target{name: r.name, base: "http://" + listen, client: newClient(conns), cmd: cmd}
	if err := t.waitReady(10 * time.Second); err != nil {
		t.stop()
		b, _ := os.ReadFile(outPath)
		logb, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		return nil, fmt.Errorf("%w; %s said: %s %s", err, r.name, strings.TrimSpace(string(b)), strings.TrimSpace(string(logb)))
	}
	return t, nil
}

// checkConfig validates the reference's configuration with its own checker.
func (r foundRef) checkConfig(s settings, dir string) error {
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		return err
	}
	file, text := r.config(s, dir, "127.0.0.1:1", "127.0.0.1:2")
	conf := filepath.Join(dir, file)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.bin, r.check(conf)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %w\n%s", r.bin, strings.Join(r.check(conf), " "), err, b)
	}
	return nil
}

const nginxConf = `# Written by scripts/bench: nginx as a reference streaming reverse proxy.
worker_processes %d;
daemon off;
master_process on;
%s
pid %s/nginx.pid;
error_log %s/error.log warn;
worker_rlimit_nofile 40000;
events { worker_connections 16384; }
http {
  access_log %s/access.log;
  client_body_temp_path %s/tmp/body;
  proxy_temp_path %s/tmp/proxy;
  fastcgi_temp_path %s/tmp/fastcgi;
  uwsgi_temp_path %s/tmp/uwsgi;
  scgi_temp_path %s/tmp/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 300s;
  client_max_body_size 0;
  upstream mock {
    server %s;
    keepalive 256;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
  }
  server {
    listen %s backlog=4096;
    location / {
      proxy_pass http://mock;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_read_timeout 600s;
    }
  }
}
`

func nginxConfig(s settings, dir, listen, upstream string) (string, string) {
	// nginx started by root hands its workers to "nobody" unless told
	// otherwise; keep them as the current user.
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;"
	}
	return "nginx.conf", fmt.Sprintf(nginxConf, s.workers, user, dir, dir, dir, dir, dir, dir, dir, dir, upstream, listen)
}

// haproxyConf: without option http-no-delay HAProxy holds small writes back
// for up to ~200 ms (it lets the kernel merge them), which bunches SSE events.
const haproxyConf = `# Written by scripts/bench: HAProxy as a reference streaming reverse proxy.
global
  nbthread %d
  maxconn %d
  log stdout format raw local0
defaults
  mode http
  log global
  option httplog
  option http-no-delay
  maxconn %d
  timeout connect 10s
  timeout client 600s
  timeout server 600s
  timeout http-keep-alive 300s
  timeout http-request 10s
frontend fe
  bind %s
  default_backend mock
backend mock
  server mock %s
`

func haproxyConfig(s settings, _, listen, upstream string) (string, string) {
	// HAProxy wants two descriptors per connection and refuses to start if
	// the open-file limit is below that: take what the limit allows.
	maxconn := uint64(40000)
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < 2*maxconn+200 {
		maxconn = (lim.Cur - 200) / 2
	}
	return "haproxy.cfg", fmt.Sprintf(haproxyConf, s.workers, maxconn, maxconn, listen, upstream)
}

// caddyConf: flush_interval -1 flushes every write (Caddy also does so on
// its own for text/event-stream); the keep-alive pool is raised to the
// proxy's and nginx's size.
const caddyConf = `# Written by scripts/bench: Caddy as a reference streaming reverse proxy.
{
	admin off
	auto_https off
	storage file_system %s/caddy-data
}
http://%s {
	log {
		output file %s/access.log
	}
	reverse_proxy %s {
		flush_interval -1
		transport http {
			keepalive 300s
			keepalive_idle_conns 1024
			keepalive_idle_conns_per_host 256
		}
	}
}
`

func caddyConfig(_ settings, dir, listen, upstream string) (string, string) {
	return "Caddyfile", fmt.Sprintf(caddyConf, dir, listen, dir, upstream)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return strings.TrimSpace(line)
}
