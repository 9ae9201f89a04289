package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/cpstore/pgtest"
	"github.com/ocdn/ocdn/internal/syncbuf"
	"github.com/ocdn/ocdn/internal/urlsign"
)

// deployment writes a catalog and keys into a fresh directory and returns
// it with a control-plane config text listening on listen with the given
// extra lines.
func deployment(t *testing.T, listen, extra string) (dir, yaml string) {
	t.Helper()
	dir = t.TempDir()
	cat, err := content.Synth(content.SynthSpec{Titles: 1, LadderKbps: []int{100}, Duration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := cat.Marshal()
	writeKeys(t, dir)
	for name, data := range map[string][]byte{"catalog.json": b, "admin.token": []byte("op\n")} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	yaml = fmt.Sprintf(`listen: %s
catalog: catalog.json
origin_url: http://127.0.0.1:9
key_file: keys.json
admin_token_file: admin.token
insecure_unauthenticated_appliances: true
heartbeat_interval: 100ms
sync_interval: 50ms
turn_up: {enabled: false}
isps: [{name: isp, asn: 64500, prefixes: [198.51.100.0/24]}]
sites: [{id: ix, kind: ixp, time_zone: UTC}]
appliances: [{id: x1, site: ix, address: 127.0.0.1:1, capacity: 1GiB}]
%s`, listen, extra)
	return dir, yaml
}

// loadConfig writes yaml as dir/name and loads it (config.Load) into a T.
func loadConfig[T any, PT interface {
	*T
	config.Validator
}](t *testing.T, dir, name, yaml string) *T {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := new(T)
	if err := config.Load(p, PT(cfg)); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// loadControl writes yaml as dir/control.yaml and loads it.
func loadControl(t *testing.T, dir, yaml string) *config.Control {
	t.Helper()
	return loadConfig[config.Control](t, dir, "control.yaml", yaml)
}

// writeKeys writes a fresh URL-signing key set to dir/keys.json.
func writeKeys(t *testing.T, dir string) {
	t.Helper()
	keys, err := json.Marshal(urlsign.Generate())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "keys.json"), keys, 0o600); err != nil {
		t.Fatal(err)
	}
}

// loadAppliance writes yaml as dir/appliance.yaml and loads it.
func loadAppliance(t *testing.T, dir, yaml string) *config.ApplianceDaemon {
	t.Helper()
	return loadConfig[config.ApplianceDaemon](t, dir, "appliance.yaml", yaml)
}

// runControl starts the control plane of yaml (written into dir) and
// runs it until the test ends.
func runControl(t *testing.T, dir, yaml string, h Hooks) *Control {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c, err := NewControl(ctx, loadControl(t, dir, yaml), h)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return c
}

// runAppliance starts the appliance daemon of cfg and runs it until the
// test ends.
func runAppliance(t *testing.T, cfg *config.ApplianceDaemon, h Hooks) *Appliance {
	t.Helper()
	a, err := NewAppliance(cfg, h, false)
	if err != nil {
		t.Fatalf("NewAppliance: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return a
}

// TestUnreachableStoreAtStart: a replica that cannot reach PostgreSQL
// refuses to start, naming the DSN with the password masked.
func TestUnreachableStoreAtStart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	dir, y := deployment(t, "127.0.0.1:0", fmt.Sprintf("store: postgres://ocdn:hunter2@%s/ocdn?connect_timeout=2\n", dead))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = NewControl(ctx, loadControl(t, dir, y), Hooks{})
	if err == nil {
		t.Fatal("NewControl with an unreachable PostgreSQL = nil error")
	}
	if msg := err.Error(); strings.Contains(msg, "hunter2") || !strings.Contains(msg, "postgres://ocdn:***@"+dead) {
		t.Fatalf("NewControl = %q, want the DSN with its password masked and no password", msg)
	}
}

// TestStoreLostLater: a replica that loses PostgreSQL keeps answering
// steering from memory, and /healthz and ocdn_control_store_up say so;
// when it can reach it again, they say that too.
func TestStoreLostLater(t *testing.T) {
	pg := pgtest.StartServer(t)
	dir, y := deployment(t, "127.0.0.1:0", "store: "+pg.DSN+"\n")
	c := runControl(t, dir, y, Hooks{})
	base := c.URLs()[0]
	get := func(path string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		req.Header.Set("Authorization", "Bearer op")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 30s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if code, body := get("/healthz"); code != 200 || strings.TrimSpace(body) != "ok" {
		t.Fatalf("/healthz = %d %q, want 200 ok", code, body)
	}
	pg.Stop()
	waitFor("/healthz saying degraded", func() bool {
		code, body := get("/healthz")
		return code == 200 && strings.Contains(body, "degraded: state store unreachable")
	})
	if _, body := get("/metrics"); !strings.Contains(body, "ocdn_control_store_up 0") {
		t.Errorf("/metrics has no ocdn_control_store_up 0:\n%s", grepLines(body, "ocdn_control_store"))
	}
	// Steering still answers (with no appliance serving, 503 says so; a
	// failing store would have made it 500).
	code, body := get("/v1/steer?files=t0000/video_100k.mp4&client=198.51.100.7")
	if code != http.StatusOK && code != http.StatusServiceUnavailable {
		t.Errorf("steering while the store is away = %d %q", code, body)
	}
}

func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestFailedListenCreatesNothing: a daemon that cannot listen leaves no
// fresh state store (control plane) or object store (appliance) behind.
func TestFailedListenCreatesNothing(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir, y := deployment(t, busy.Addr().String(), "")
	if _, err := NewControl(context.Background(), loadControl(t, dir, y), Hooks{}); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Fatalf("NewControl on a busy address = %v, want a listen error", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "control.db")); !os.IsNotExist(err) {
		t.Errorf("control.db exists after a failed start (%v)", err)
	}
	acfg := loadAppliance(t, dir, fmt.Sprintf("id: x1\nlisten: %s\ncontrol_urls: [http://127.0.0.1:9]\nstore: store\nkey_file: keys.json\n", busy.Addr()))
	if _, err := NewAppliance(acfg, Hooks{}, false); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Fatalf("NewAppliance on a busy address = %v, want a listen error", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "store")); !os.IsNotExist(err) {
		t.Errorf("the store directory exists after a failed start (%v)", err)
	}
}

// TestUnreadableTLSNamesTheField: a TLS file that cannot be read refuses
// the start, naming the field and the file.
func TestUnreadableTLSNamesTheField(t *testing.T) {
	dir, y := deployment(t, "127.0.0.1:0", "tls: {cert_file: missing.pem, key_file: missing.key}\n")
	_, err := NewControl(context.Background(), loadControl(t, dir, y), Hooks{})
	if err == nil || !strings.Contains(err.Error(), "tls") || !strings.Contains(err.Error(), "missing.pem") {
		t.Fatalf("NewControl with unreadable TLS files = %v, want an error naming tls and missing.pem", err)
	}
}

// TestOpsListenKeepsOperatorEndpointsOffTheAPI: with ops_listen, /metrics
// and /v1/admin/… answer there and not on the public addresses; a
// development control plane without appliance credentials says so in its
// log at every start.
func TestOpsListenKeepsOperatorEndpointsOffTheAPI(t *testing.T) {
	dir, y := deployment(t, "127.0.0.1:0", "ops_listen: 127.0.0.1:0\n")
	var logs syncbuf.Buffer // read here while the running control plane writes
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	c := runControl(t, dir, y, Hooks{Logger: logger})
	api, ops := c.URLs()[0], c.URLs()[1]
	status := func(url string) int {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("Authorization", "Bearer op")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, tc := range []struct {
		url  string
		want int
	}{
		{api + "/metrics", 404}, {api + "/v1/admin/fill", 404}, {api + "/healthz", 200}, {api + "/v1/titles/t0000", 200},
		{ops + "/metrics", 200}, {ops + "/v1/admin/fill", 200},
	} {
		if got := status(tc.url); got != tc.want {
			t.Errorf("GET %s = %d, want %d", tc.url, got, tc.want)
		}
	}
	if !strings.Contains(logs.String(), "insecure_unauthenticated_appliances is set") {
		t.Errorf("no warning about the development mode in the log:\n%s", logs.String())
	}
}
