// Package pgtest starts a throw-away PostgreSQL server for tests: a fresh
// cluster in a temporary directory, owned by the postgres user when the
// tests run as root (the server refuses to run as root), listening only on
// a Unix socket in that directory and on a free loopback port — or, for
// tests that run hosts in network namespaces, on an address inside one.
package pgtest

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
)

// Options place the server. The zero value is what Start uses.
type Options struct {
	// Dir holds the cluster, its socket and its log (default: a new
	// temporary directory). It is removed when the test ends.
	Dir string
	// Netns runs the server inside this network namespace (made with
	// `ip netns add`), as a database host of a test network.
	Netns string
	// Listen is the address to accept TCP on (default 127.0.0.1) and
	// Port its port (default: a free port, or 5432 inside Netns).
	Listen netip.Addr
	Port   int
}

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
	return StartWith(t, Options{})
}

// StartWith is Start with the server placed by opts.
func StartWith(t testing.TB, opts Options) *Server {
	t.Helper()
	initdb, pgctl := bin("initdb"), bin("pg_ctl")
	if initdb == "" || pgctl == "" {
		msg := "PostgreSQL server programs (initdb, pg_ctl) not found; install the Debian package postgresql"
		if os.Getenv("OCDN_REQUIRE_EXTERNAL") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	dir := opts.Dir
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "ocdn-pg-"); err != nil {
			t.Fatal(err)
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	data := filepath.Join(dir, "data")
	asPostgres := os.Geteuid() == 0
	if asPostgres {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root needs the postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		os.Chmod(dir, 0o755)
		os.Chown(dir, uid, gid)
	}
	// command runs args as the postgres user when the test is root, and
	// inside the namespace when netns is set.
	command := func(netns string, args ...string) *exec.Cmd {
		if asPostgres {
			q := ""
			for _, a := range args {
				q += " '" + a + "'"
			}
			args = []string{"su", "postgres", "-s", "/bin/sh", "-c", q}
		}
		if netns != "" {
			args = append([]string{"ip", "netns", "exec", netns}, args...)
		}
		return exec.Command(args[0], args[1:]...)
	}
	run := func(args ...string) *exec.Cmd { return command("", args...) }
	inNetns := func(args ...string) *exec.Cmd { return command(opts.Netns, args...) }
	if out, err := run(initdb, "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	if opts.Netns != "" {
		// Other hosts of the test network connect over TCP; the server
		// is reachable only inside that network.
		f, err := os.OpenFile(filepath.Join(data, "pg_hba.conf"), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.WriteString("host all all 0.0.0.0/0 trust\nhost all all ::/0 trust\n")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	listen, port := opts.Listen, opts.Port
	if !listen.IsValid() {
		listen = netip.MustParseAddr("127.0.0.1")
	}
	switch {
	case port != 0:
	case opts.Netns != "":
		port = 5432 // the namespace's own port space
	default:
		ln, err := net.Listen("tcp", netip.AddrPortFrom(listen, 0).String())
		if err != nil {
			t.Fatal(err)
		}
		port = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
	}
	pgopts := fmt.Sprintf("-p %d -k %s -c listen_addresses=%s -c fsync=off", port, dir, listen)
	if out, err := inNetns(pgctl, "-D", data, "-o", pgopts, "-l", filepath.Join(dir, "log"), "-w", "start").CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "log"))
		t.Fatalf("pg_ctl start: %v\n%s\n%s", err, out, log)
	}
	var once sync.Once
	stop := func() { once.Do(func() { run(pgctl, "-D", data, "-m", "immediate", "-w", "stop").Run() }) }
	t.Cleanup(stop)
	return &Server{DSN: fmt.Sprintf("postgres://postgres@%s/postgres?sslmode=disable", netip.AddrPortFrom(listen, uint16(port))), Stop: stop}
}
