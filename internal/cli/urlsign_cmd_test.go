package cli

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ocdn/ocdn/internal/urlsign"
)

func TestURLSignKeygen(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "keys.json")
	if _, errOut, err := runCLI(t, "urlsign", "keygen", "--out", keyFile); err != nil {
		t.Fatalf("keygen = %v\n%s", err, errOut)
	}
	info, err := os.Stat(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode = %v, want 0600", perm)
	}
	first, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := urlsign.LoadKeySet(keyFile); err != nil {
		t.Errorf("LoadKeySet(keygen output) = %v", err)
	}

	_, _, err = runCLI(t, "urlsign", "keygen", "--out", keyFile)
	if err == nil || !strings.Contains(err.Error(), "--force") {
		t.Errorf("keygen over an existing file = %v, want a refusal naming --force", err)
	}
	if again, _ := os.ReadFile(keyFile); string(again) != string(first) {
		t.Error("refused keygen changed the key file")
	}

	if _, _, err := runCLI(t, "urlsign", "keygen", "--out", keyFile, "--force", "--id", "k2"); err != nil {
		t.Fatalf("keygen --force = %v", err)
	}
	ks, err := urlsign.LoadKeySet(keyFile)
	if err != nil || ks.Active != "k2" {
		t.Errorf("after keygen --force --id k2: active key %v, %v", ks, err)
	}
	if info, _ := os.Stat(keyFile); info.Mode().Perm() != 0o600 {
		t.Errorf("key file mode after --force = %v, want 0600", info.Mode().Perm())
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(keyFile), ".keygen-*")); len(left) != 0 {
		t.Errorf("keygen left temporary files %q", left)
	}
}

func TestURLSign(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "keys.json")
	if _, _, err := runCLI(t, "urlsign", "keygen", "--out", keyFile); err != nil {
		t.Fatal(err)
	}
	ks, err := urlsign.LoadKeySet(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	client := netip.MustParseAddr("127.64.0.9")
	tests := []struct {
		name    string
		args    []string
		ok      []string // paths the token must open
		refused []string // paths it must not
		wantErr string
	}{
		{name: "single file", args: []string{"t0042/video_3000k.mp4"},
			ok: []string{"t0042/video_3000k.mp4"}, refused: []string{"t0042/index.m3u8"}},
		{name: "title scope", args: []string{"--scope", "t0042/", "t0042/index.m3u8"},
			ok: []string{"t0042/index.m3u8", "t0042/video_3000k.mp4"}, refused: []string{"t0043/index.m3u8", "t00421/index.m3u8"}},
		{name: "client prefix", args: []string{"--client", "127.64.0.0/16", "t1/a"}, ok: []string{"t1/a"}},
		{name: "scope does not cover PATH", args: []string{"--scope", "t0043/", "t0042/index.m3u8"}, wantErr: "does not cover"},
		{name: "short title scope", args: []string{"--scope", "t00/", "t0042/index.m3u8"}, wantErr: "does not cover"},
		{name: "scope without slash", args: []string{"--scope", "t0042", "t0042/index.m3u8"}, wantErr: "scope"},
		{name: "bad path", args: []string{"../etc/passwd"}, wantErr: "path"},
		{name: "bad client", args: []string{"--client", "nope", "t1/a"}, wantErr: "--client"},
		{name: "negative expiry", args: []string{"--expires", "-1h", "t1/a"}, wantErr: "--expires"},
	}
	const base = "http://127.1.0.1:18080"
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"urlsign", "--key-file", keyFile, "--base", base + "/"}, tc.args...)
			out, _, err := runCLI(t, args...)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("ocdn %s = %q, %v; want an error about %s", strings.Join(args, " "), out, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ocdn %s = %v", strings.Join(args, " "), err)
			}
			path := tc.args[len(tc.args)-1]
			rest, ok := strings.CutPrefix(strings.TrimSpace(out), base+"/c/")
			tok, p, _ := strings.Cut(rest, "/")
			if !ok || p != path {
				t.Fatalf("urlsign printed %q, want %s/c/TOKEN/%s", out, base, path)
			}
			for _, p := range tc.ok {
				if err := ks.Verify(tok, p, client, time.Now()); err != nil {
					t.Errorf("token does not open %s: %v", p, err)
				}
			}
			for _, p := range tc.refused {
				if err := ks.Verify(tok, p, client, time.Now()); err == nil {
					t.Errorf("token opens %s, want refused", p)
				}
			}
			if err := ks.Verify(tok, path, client, time.Now().Add(61*time.Minute)); err == nil {
				t.Error("token still valid after the default 1h expiry")
			}
		})
	}
}
