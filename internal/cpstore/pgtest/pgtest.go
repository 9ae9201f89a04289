// Package pgtest starts a throw-away PostgreSQL server for tests: a fresh
// cluster in a temporary directory, owned by the postgres user when the
// tests run as root (the server refuses to run as root), listening only on
// a Unix socket in that directory and on a free loopback port.
package pgtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
)

// bin finds a PostgreSQL server program (initdb, pg_ctl).
func bin(name string) string {
	if m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + name); len(m) > 0 {
		return m[len(m)-1]
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	return ""
}

// Start starts a server and returns a DSN for its "postgres" database; the
// server is stopped and its files removed when the test ends. Without
// PostgreSQL installed the test is skipped, or fails when
// OCDN_REQUIRE_EXTERNAL=1.
func Start(t testing.TB) string { return StartServer(t).DSN }

// Server is a running test server.
type Server struct {
	DSN string
	// Stop stops it at once (as a crash or a lost network would look to
	// its clients); calling it again does nothing.
	Stop func()
}

// StartServer is Start for a test that also stops the server itself.
func StartServer(t testing.TB) *Server {
	t.Helper()
	initdb, pgctl := bin("initdb"), bin("pg_ctl")
	if initdb == "" || pgctl == "" {
		msg := "PostgreSQL server programs (initdb, pg_ctl) not found; install the Debian package postgresql"
		if os.Getenv("OCDN_REQUIRE_EXTERNAL") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	dir, err := os.MkdirTemp("", "ocdn-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	data := filepath.Join(dir, "data")
	run := func(args ...string) *exec.Cmd { return exec.Command(args[0], args[1:]...) }
	asPostgres := os.Geteuid() == 0
	var uid, gid int
	if asPostgres {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root needs the postgres user: %v", err)
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		os.Chmod(dir, 0o755)
		os.Chown(dir, uid, gid)
		run = func(args ...string) *exec.Cmd {
			q := ""
			for _, a := range args {
				q += " '" + a + "'"
			}
			return exec.Command("su", "postgres", "-s", "/bin/sh", "-c", q)
		}
	}
	if out, err := run(initdb, "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off", port, dir)
	if out, err := run(pgctl, "-D", data, "-o", opts, "-l", filepath.Join(dir, "log"), "-w", "start").CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "log"))
		t.Fatalf("pg_ctl start: %v\n%s\n%s", err, out, log)
	}
	var once sync.Once
	stop := func() { once.Do(func() { run(pgctl, "-D", data, "-m", "immediate", "-w", "stop").Run() }) }
	t.Cleanup(stop)
	return &Server{DSN: fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port), Stop: stop}
}
