// Package nginxtest starts a real nginx (Debian package nginx-light) for a
// test, serving a directory on a free loopback port: the reference the
// edge's range handling and the HTTP server's framing are compared with.
package nginxtest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Server is a running nginx.
type Server struct {
	// Addr is host:port; URL is http://Addr.
	Addr, URL string
}

// Start starts nginx serving root, with extra inserted in its http block
// (directives such as "client_body_timeout 2s;"), and stops it when the
// test ends. When nginx is missing the test is skipped, or fails naming
// the package when OCDN_REQUIRE_EXTERNAL=1: never a silent pass.
func Start(t testing.TB, root, extra string) *Server {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/nginx"); serr == nil {
			bin = "/usr/sbin/nginx"
		} else if os.Getenv("OCDN_REQUIRE_EXTERNAL") == "1" {
			t.Fatal("nginx not found: install the Debian package nginx-light (apt-get install nginx-light)")
		} else {
			t.Skip("nginx not found (Debian package nginx-light); set OCDN_REQUIRE_EXTERNAL=1 to make this a failure")
		}
	}
	prefix := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;" // workers must read the test's 0700 temp dirs
	}
	conf := fmt.Sprintf(`%s
worker_processes 1;
error_log %[2]s/error.log info;
pid %[2]s/nginx.pid;
events { worker_connections 256; }
http {
  access_log off;
  sendfile on;
  etag on;
  types { video/mp4 mp4; }
  default_type application/octet-stream;
  client_body_temp_path %[2]s/client_body;
  %[5]s
  server {
    listen %[3]s;
    root %[4]s;
    location / { }
  }
}
`, user, prefix, addr, root, extra)
	confFile := filepath.Join(prefix, "nginx.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", confFile, "-p", prefix, "-g", "daemon off;")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	// Its own process group, so the workers can be killed with the master
	// if it does not stop them itself; WaitDelay so an orphaned worker
	// holding the output pipe cannot hang the test.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM) // fast shutdown: master stops its workers
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return &Server{Addr: addr, URL: "http://" + addr}
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(filepath.Join(prefix, "error.log"))
			t.Fatalf("nginx exited: %s %s", stderr.String(), log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx not listening on %s after 10s", addr)
		}
		time.Sleep(20 * time.Millisecond) // polling for the listener
	}
}
