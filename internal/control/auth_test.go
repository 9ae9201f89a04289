package control

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ocdn/ocdn/internal/auth"
	"github.com/ocdn/ocdn/internal/urlsign"
)

func TestApplianceAuthentication(t *testing.T) {
	s, c, _ := newTestServer(t)
	var logs bytes.Buffer
	s.log = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	secret := auth.NewSecret()
	s.cfg.ApplianceSecret = secret
	h := s.Handler()
	good := secret.Mint("e1", c.t.Add(time.Hour))
	for _, tc := range []struct {
		name, body, token string
		code              int
		want              string
	}{
		{"no token", `{"appliance":"e1"}`, "", 401, "no bearer token"},
		{"other secret", `{"appliance":"e1"}`, auth.NewSecret().Mint("e1", c.t.Add(time.Hour)), 401, "bad token signature"},
		{"expired", `{"appliance":"e1"}`, secret.Mint("e1", c.t.Add(-time.Second)), 401, "token expired"},
		{"unknown appliance", `{"appliance":"ghost"}`, secret.Mint("ghost", c.t.Add(time.Hour)), 403, "unknown appliance"},
		{"someone else's heartbeat", `{"appliance":"x1"}`, good, 403, `"e1" may not report for "x1"`},
		{"malformed", `{"appliance":"e1",`, good, 400, "heartbeat: unexpected EOF"},
		{"oversized", `{"appliance":"e1","held":["` + strings.Repeat("a", 9<<20) + `"]}`, good, 413, "body too large"},
		{"bad field", `{"appliance":"e1","load":{"cpu":-1}}`, good, 400, "load.cpu"},
	} {
		w := do(t, h, "POST", "/v1/heartbeat", tc.body, "127.1.0.1:5000", tc.token)
		if w.Code != tc.code || !strings.Contains(w.Body.String(), tc.want) {
			t.Errorf("%s: heartbeat = %d %q, want %d containing %q", tc.name, w.Code, w.Body, tc.code, tc.want)
		}
	}
	if _, ok := s.health.LastBeat("e1"); ok {
		t.Fatalf("a refused heartbeat was recorded")
	}
	if w := do(t, h, "POST", "/v1/heartbeats", `{"heartbeats":[{"appliance":"e1"}]}`, "127.1.0.1:5000", ""); w.Code != 401 {
		t.Errorf("queued heartbeats without a token = %d, want 401", w.Code)
	}
	if w := do(t, h, "POST", "/v1/routes", `{"appliance":"e1","epoch":"a","seq":1,"snapshot":true}`, "127.1.0.1:5000", ""); w.Code != 401 {
		t.Errorf("route report without a token = %d, want 401", w.Code)
	}
	// Every appliance endpoint: no token → 401; another appliance's → 403.
	other := secret.Mint("x1", c.t.Add(time.Hour))
	for _, ep := range []struct{ method, path, body string }{
		{"GET", "/v1/manifest?appliance=e1", ""},
		{"GET", "/v1/fill?appliance=e1", ""},
		{"POST", "/v1/fill/progress", `{"appliance":"e1"}`},
		{"POST", "/v1/demand", `{"appliance":"e1"}`},
		{"POST", "/v1/routes", `{"appliance":"e1","epoch":"a","seq":1,"snapshot":true}`},
	} {
		if w := do(t, h, ep.method, ep.path, ep.body, "127.1.0.1:5000", ""); w.Code != 401 {
			t.Errorf("%s %s without a token = %d, want 401", ep.method, ep.path, w.Code)
		}
		if w := do(t, h, ep.method, ep.path, ep.body, "127.1.0.1:5000", other); w.Code != 403 {
			t.Errorf("%s %s with x1's token = %d %q, want 403", ep.method, ep.path, w.Code, w.Body)
		}
	}
	if w := do(t, h, "GET", "/v1/manifest?appliance=e1", "", "127.1.0.1:5000", good); w.Code != 200 {
		t.Errorf("GET /v1/manifest with e1's token = %d %s", w.Code, w.Body)
	}
	w := do(t, h, "POST", "/v1/heartbeat", `{"appliance":"e1"}`, "127.1.0.1:5000", good)
	if w.Code != 200 {
		t.Fatalf("good heartbeat = %d %s", w.Code, w.Body)
	}
	if st := statusOf(s, "e1"); st.State != "up" {
		t.Errorf("e1 after an authenticated heartbeat = %+v", st)
	}

	// Keys: to appliances and operators only.
	if w := do(t, h, "GET", "/v1/keys", "", "127.1.0.1:5000", ""); w.Code != 401 {
		t.Errorf("GET /v1/keys without a token = %d, want 401", w.Code)
	}
	w = do(t, h, "GET", "/v1/keys", "", "127.1.0.1:5000", good)
	var ks urlsign.KeySet
	if err := json.Unmarshal(w.Body.Bytes(), &ks); w.Code != 200 || err != nil || ks.Validate() != nil {
		t.Fatalf("GET /v1/keys = %d %v", w.Code, err)
	}
	for _, path := range []string{"/v1/admin/drain", "/v1/admin/enable", "/v1/admin/keys/rotate"} {
		if w := do(t, h, "POST", path, `{"appliance":"e1"}`, "127.0.0.1:1", good); w.Code != 401 {
			t.Errorf("POST %s with an appliance token = %d, want 401 (operators only)", path, w.Code)
		}
	}
	if w := do(t, h, "POST", "/v1/admin/keys/rotate", ``, "127.0.0.1:1", "sekret"); w.Code != 200 {
		t.Errorf("rotate = %d %s", w.Code, w.Body)
	}

	// Secrets never appear in logs.
	out := logs.String()
	secrets := []string{string(secret), hex.EncodeToString(secret), base64.StdEncoding.EncodeToString(secret), good, "sekret"}
	for _, k := range s.signingKeys().Keys {
		secrets = append(secrets, base64.StdEncoding.EncodeToString(k.Secret), string(k.Secret))
	}
	for _, sec := range secrets {
		if strings.Contains(out, sec) {
			t.Errorf("logs contain a secret (%.8s…):\n%s", sec, out)
		}
	}
	if !strings.Contains(out, "url-signing key added") {
		t.Errorf("logs = %s, want the rotation logged (without secrets)", out)
	}
}

// TestKeyRotationWithoutDowntime: a new key is published before it signs,
// and the old one verifies until the URLs it signed expire.
func TestKeyRotationWithoutDowntime(t *testing.T) {
	s, c, cat := newTestServer(t)
	s.cfg.TokenTTL = time.Hour
	path := cat.Files[0].Path
	before, _ := s.signingKeys().Sign(urlsign.Grant{Scope: path, Expires: c.t.Add(time.Hour)})
	id := s.RotateKeys()
	published := s.signingKeys()
	if published.Active == id || len(published.Keys) != 2 {
		t.Fatalf("right after RotateKeys: %d keys, active %q; want the new key published, not signing", len(published.Keys), published.Active)
	}
	c.t = c.t.Add(s.keyPropagation())
	s.keysTick()
	if s.signingKeys().Active != id {
		t.Fatalf("after propagation the new key does not sign")
	}
	after, _ := s.signingKeys().Sign(urlsign.Grant{Scope: path, Expires: c.t.Add(time.Hour)})
	// An appliance that fetched the published set verifies both.
	for _, tok := range []string{before, after} {
		if _, err := published.Parse(tok); err != nil {
			t.Errorf("published set: Parse = %v", err)
		}
	}
	c.t = c.t.Add(time.Hour)
	s.keysTick()
	if ks := s.signingKeys(); len(ks.Keys) != 1 || ks.Keys[0].ID != id {
		t.Errorf("after the token TTL: keys %+v, want only %q", ks.Active, id)
	}
}

// countingBody counts the bytes a handler read of a request body.
type countingBody struct {
	n    int
	left int
}

func (c *countingBody) Read(p []byte) (int, error) {
	if c.left == 0 {
		return 0, io.EOF
	}
	k := min(len(p), c.left)
	for i := range p[:k] {
		p[i] = ' '
	}
	c.n += k
	c.left -= k
	return k, nil
}

// TestCredentialBeforeBody: every endpoint that changes state checks the
// credential before it reads a byte of the body, so an unauthenticated
// 59 MB route report costs the control plane nothing; endpoints that
// reveal the inventory, routes or fill plans answer operators only.
func TestCredentialBeforeBody(t *testing.T) {
	s, _, _ := newTestServer(t)
	s.cfg.ApplianceSecret = auth.NewSecret()
	s.cfg.AdminToken = "op"
	h := s.Handler()
	for _, path := range []string{"/v1/heartbeat", "/v1/heartbeats", "/v1/routes", "/v1/fill/progress", "/v1/demand",
		"/v1/admin/drain", "/v1/admin/enable", "/v1/admin/keys/rotate"} {
		body := &countingBody{left: 59 << 20}
		req := httptest.NewRequest("POST", path, body)
		req.RemoteAddr = "203.0.113.9:4000"
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusUnauthorized || body.n != 0 {
			t.Errorf("unauthenticated POST %s = %d after reading %d body bytes; want 401 before reading any", path, w.Code, body.n)
		}
	}
	for _, path := range []string{"/v1/appliances", "/v1/routes/consistency", "/v1/fill/status", "/v1/admin/fill", "/v1/routes/lookup?ip=198.51.100.1",
		"/v1/manifest?appliance=e1", "/v1/fill?appliance=e1", "/v1/keys"} {
		w := do(t, h, "GET", path, "", "203.0.113.9:4000", "")
		if w.Code != http.StatusUnauthorized && w.Code != http.StatusForbidden {
			t.Errorf("anonymous GET %s = %d %q, want 401 or 403", path, w.Code, w.Body)
		}
	}
}

// TestKeysForAppliancesArePublic: with Ed25519 keys, what an appliance
// fetches verifies tokens but cannot sign one, and a rotation stays on
// Ed25519.
func TestKeysForAppliancesArePublic(t *testing.T) {
	secret := auth.NewSecret()
	s, c, _ := newTestServerWith(t, func(cfg *Config) {
		cfg.Keys = urlsign.GenerateEd25519()
		cfg.ApplianceSecret = secret
	})
	h := s.Handler()
	fetch := func() *urlsign.KeySet {
		t.Helper()
		w := do(t, h, "GET", "/v1/keys", "", "127.1.0.1:5000", secret.Mint("e1", c.t.Add(time.Hour)))
		if w.Code != 200 || strings.Contains(w.Body.String(), "private") {
			t.Fatalf("GET /v1/keys = %d %s; want 200 without private keys", w.Code, w.Body)
		}
		var ks urlsign.KeySet
		if err := json.Unmarshal(w.Body.Bytes(), &ks); err != nil {
			t.Fatal(err)
		}
		return &ks
	}
	ks := fetch()
	if ks.CanSign() {
		t.Fatalf("an appliance's key set can sign")
	}
	tok, err := s.signingKeys().Sign(urlsign.Grant{Scope: "t0000/", Expires: c.t.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if err := ks.Verify(tok, "t0000/video_100k.mp4", netip.MustParseAddr("10.64.0.9"), c.t); err != nil {
		t.Fatalf("the appliance's set does not verify the control plane's token: %v", err)
	}
	id := s.RotateKeys()
	for _, k := range fetch().Keys {
		if k.ID == id && k.Alg != urlsign.AlgEd25519 {
			t.Errorf("rotated key %s is %q, want ed25519", id, k.Alg)
		}
	}
}
