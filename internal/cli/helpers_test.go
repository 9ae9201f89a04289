package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// binDir holds the ocdn binary the acceptance tests run as real processes;
// TestMain removes it.
var binDir string

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// ocdnBinary builds ./cmd/ocdn once per test run and returns its path.
func ocdnBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "ocdn-clitest-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "ocdn")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/ocdn/ocdn/cmd/ocdn").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./cmd/ocdn: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// runCLI runs the command tree in-process and returns stdout, stderr and
// the error Execute would turn into a non-zero exit.
func runCLI(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := NewRoot(&out, &errOut)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

// runOCDN runs the built binary to completion.
func runOCDN(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command(ocdnBinary(t), args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// mustOCDN runs the binary and fails the test if it exits non-zero.
func mustOCDN(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := runOCDN(t, args...)
	if err != nil {
		t.Fatalf("ocdn %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// proc is a long-running ocdn process owned by a test.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string // file holding its stderr and stdout
	done chan struct{}
	err  error
}

// startOCDN starts the binary as a daemon; t.Cleanup kills it.
func startOCDN(t *testing.T, dir, name string, args ...string) *proc {
	t.Helper()
	logName := filepath.Join(dir, fmt.Sprintf("%s-%d.log", name, time.Now().UnixNano()))
	logFile, err := os.Create(logName)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(ocdnBinary(t), args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	d := &proc{name: name, cmd: cmd, log: logName, done: make(chan struct{})}
	go func() {
		d.err = cmd.Wait()
		logFile.Close()
		close(d.done)
	}()
	t.Cleanup(d.kill)
	return d
}

// kill sends SIGKILL and waits for the process to be gone.
func (d *proc) kill() {
	select {
	case <-d.done:
		return
	default:
	}
	d.cmd.Process.Kill()
	<-d.done
}

func (d *proc) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

func (d *proc) logText() string {
	b, _ := os.ReadFile(d.log)
	return string(b)
}

// waitFor polls cond until it holds, the daemons it depends on die, or the
// deadline passes. Processes give no other signal of readiness.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool, ds ...*proc) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		for _, d := range ds {
			if d.exited() {
				t.Fatalf("waiting for %s: %s exited: %v\n%s", what, d.name, d.err, d.logText())
			}
		}
		if time.Now().After(deadline) {
			for _, d := range ds {
				t.Logf("%s log:\n%s", d.name, d.logText())
			}
			t.Fatalf("gave up waiting for %s after %s", what, timeout)
		}
		<-tick.C
	}
}

// freeAddr returns host:port with a port free on host right now.
func freeAddr(t *testing.T, host string) string {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatalf("no free port on %s: %v", host, err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

var httpClient = &http.Client{Timeout: 30 * time.Second}

// healthy reports whether GET base/healthz answers 200.
func healthy(base string) bool {
	resp, err := httpClient.Get(base + "/healthz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// fetchSHA GETs u and returns the status and, for 200, the body's SHA-256.
func fetchSHA(u string) (int, string, int64, error) {
	resp, err := httpClient.Get(u)
	if err != nil {
		return 0, "", 0, err
	}
	defer resp.Body.Close()
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	if err != nil {
		return resp.StatusCode, "", n, err
	}
	return resp.StatusCode, hex.EncodeToString(h.Sum(nil)), n, nil
}

// requireExternal skips, or with OCDN_REQUIRE_EXTERNAL=1 fails, when an
// outside program is missing.
func requireExternal(t *testing.T, program, debianPackage string) string {
	t.Helper()
	p, err := exec.LookPath(program)
	if err == nil {
		return p
	}
	msg := fmt.Sprintf("%s not found in PATH: install the Debian package %s (apt-get install %s)", program, debianPackage, debianPackage)
	if os.Getenv("OCDN_REQUIRE_EXTERNAL") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}
