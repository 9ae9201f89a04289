package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// ocdnBinary builds the real binary once, so tests exercise exactly what
// operators run.
func ocdnBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ocdn-bin-*")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "ocdn")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = errors.New(string(out))
		}
	})
	if buildErr != nil {
		t.Fatalf("go build: %v", buildErr)
	}
	return binPath
}

// scenario returns the built-in scenario moved to addresses no other test
// uses.
func scenario(t *testing.T, bin string, replace ...string) string {
	t.Helper()
	out, err := exec.Command(bin, "lab", "--print-scenario").Output()
	if err != nil {
		t.Fatalf("ocdn lab --print-scenario: %v", err)
	}
	y := strings.NewReplacer(append([]string{
		"127.1.0.1:18080", "127.1.40.1:18080", "127.1.0.2:18080", "127.1.40.2:18080",
		"127.1.1.1:18080", "127.1.41.1:18080", "127.1.1.2:18080", "127.1.41.2:18080",
		"127.1.2.1:18080", "127.1.42.1:18080", "titles: 12", "titles: 4",
		// The loops' events name titles of the smaller catalog.
		"title: t0009", "title: t0002", "title: t0011", "title: t0003",
	}, replace...)...).Replace(string(out))
	path := filepath.Join(t.TempDir(), "scenario.yaml")
	if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

var applianceAddrs = []string{"127.1.40.1:18080", "127.1.40.2:18080", "127.1.41.1:18080", "127.1.41.2:18080", "127.1.42.1:18080"}

func listening(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// TestLabSIGINTStopsEverything: SIGINT during the lab stops every
// component within 5 s and leaves no listener or child process behind.
func TestLabSIGINTStopsEverything(t *testing.T) {
	bin := ocdnBinary(t)
	sc := scenario(t, bin)
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, "lab", "--scenario", sc, "--duration", "60s")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })

	// Wait until every appliance listens and clients have had a moment to
	// start streaming.
	deadline := time.Now().Add(60 * time.Second)
	for _, a := range applianceAddrs {
		for !listening(a) {
			if time.Now().After(deadline) {
				t.Fatalf("appliance %s never listened; stderr:\n%s", a, stderr.String())
			}
			select {
			case err := <-done:
				t.Fatalf("lab exited early: %v\n%s", err, stderr.String())
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	// Interrupt mid-stream: wait until some appliance has served content.
	for !servedContent() {
		if time.Now().After(deadline) {
			t.Fatalf("no appliance served content; stderr:\n%s", stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	children := childPIDs(cmd.Process.Pid)

	sent := time.Now()
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("lab still running 5 s after SIGINT; stderr:\n%s", stderr.String())
	}
	t.Logf("lab stopped %v after SIGINT", time.Since(sent).Round(time.Millisecond))
	for _, a := range applianceAddrs {
		if listening(a) {
			t.Errorf("appliance address %s still accepts connections after the lab exited", a)
		}
	}
	for _, pid := range children {
		if err := syscall.Kill(pid, 0); err == nil {
			t.Errorf("child process %d of the lab still runs", pid)
		}
	}
	if !strings.Contains(stdout.String(), "ocdn lab report") {
		t.Errorf("no report printed after SIGINT; stdout:\n%s", stdout.String())
	}
}

// servedContent reports whether any lab appliance's metrics count a
// content request.
func servedContent() bool {
	for _, a := range applianceAddrs {
		// /metrics is on the lab appliances' ops port (9180), not the
		// content port.
		host, _, _ := strings.Cut(a, ":")
		resp, err := http.Get("http://" + host + ":9180/metrics")
		if err != nil {
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, line := range strings.Split(string(body), "\n") {
			if strings.HasPrefix(line, "ocdn_edge_requests_total{") && !strings.HasSuffix(line, " 0") {
				return true
			}
		}
	}
	return false
}

// childPIDs lists the direct children of pid from /proc.
func childPIDs(pid int) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// Fields after the command name, which is in parentheses.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		var state byte
		var ppid, self int
		if _, err := sscan(string(stat[i+2:]), &state, &ppid); err == nil && ppid == pid {
			if _, err := sscan(e.Name(), &self); err == nil {
				out = append(out, self)
			}
		}
	}
	return out
}

func TestLabRejectsBrokenScenario(t *testing.T) {
	bin := ocdnBinary(t)
	sc := scenario(t, bin, "site: fra-isp-b", "site: atlantis")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "lab", "--scenario", sc).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Fatalf("ocdn lab with a broken scenario: err = %v, want non-zero exit; output:\n%s", err, out)
	}
	for _, want := range []string{sc, "appliances[2].site", `unknown site "atlantis"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output %q does not name %q", out, want)
		}
	}
}

func TestHelpExplainsEveryFlag(t *testing.T) {
	bin := ocdnBinary(t)
	for _, sub := range [][]string{{"lab"}, {"control"}, {"appliance"}, {"origin"}, {"catalog", "synth"}, {"catalog", "build"}, {"version"}} {
		out, err := exec.Command(bin, append(sub, "--help")...).CombinedOutput()
		if err != nil {
			t.Errorf("ocdn %s --help: %v", strings.Join(sub, " "), err)
			continue
		}
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			// A flag line with nothing after the flag name (and type)
			// has no explanation.
			if len(f) > 0 && strings.HasPrefix(f[0], "-") && len(f) < 3 && !strings.HasPrefix(line, "      --help") {
				t.Errorf("ocdn %s --help: flag line without explanation: %q", strings.Join(sub, " "), line)
			}
		}
	}
}
