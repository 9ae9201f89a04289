package urlsign_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ocdn/ocdn/internal/urlsign"
)

var (
	now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	b64 = base64.RawURLEncoding
)

func key(id string, fill byte) urlsign.Key {
	return urlsign.Key{ID: id, Secret: bytes.Repeat([]byte{fill}, 32)}
}

func keys(active string, ks ...urlsign.Key) *urlsign.KeySet {
	return &urlsign.KeySet{Active: active, Keys: ks}
}

func sign(t *testing.T, ks *urlsign.KeySet, g urlsign.Grant) string {
	t.Helper()
	tok, err := ks.Sign(g)
	if err != nil {
		t.Fatalf("Sign(%+v) = %v", g, err)
	}
	return tok
}

// payload decodes the signed part of a token.
func payload(t *testing.T, tok string) string {
	t.Helper()
	p, _, _ := strings.Cut(tok, ".")
	raw, err := b64.DecodeString(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// withPayload swaps the payload of tok and keeps its signature.
func withPayload(tok, p string) string {
	_, sig, _ := strings.Cut(tok, ".")
	return b64.EncodeToString([]byte(p)) + "." + sig
}

func TestVerify(t *testing.T) {
	ks := keys("k1", key("k1", 1))
	later := now.Add(time.Hour)
	client := netip.MustParseAddr("127.64.1.2")
	title := sign(t, ks, urlsign.Grant{Scope: "t0042/", Expires: later})
	single := sign(t, ks, urlsign.Grant{Scope: "t0042/video_3000k.mp4", Expires: later})
	short := sign(t, ks, urlsign.Grant{Scope: "t00/", Expires: later})
	clientBound := sign(t, ks, urlsign.Grant{Scope: "t0042/", Expires: later, Client: netip.MustParsePrefix("127.64.0.0/16")})
	v6Bound := sign(t, ks, urlsign.Grant{Scope: "t0042/", Expires: later, Client: netip.MustParsePrefix("2001:db8::/32")})

	mappedBound := sign(t, ks, urlsign.Grant{Scope: "t0042/", Expires: later, Client: netip.MustParsePrefix("::ffff:127.64.0.0/112")})
	forged := func(tok string) string {
		p, sig, _ := strings.Cut(tok, ".")
		raw, _ := b64.DecodeString(sig)
		raw[0] ^= 1
		return p + "." + b64.EncodeToString(raw)
	}
	p := payload(t, title)
	tests := []struct {
		name   string
		token  string
		path   string
		client netip.Addr
		at     time.Time
		want   error
	}{
		{"title scope covers a file of the title", title, "t0042/video_3000k.mp4", client, now, nil},
		{"title scope covers the playlist", title, "t0042/index.m3u8", client, now, nil},
		{"title scope, other title", title, "t0043/video_3000k.mp4", client, now, urlsign.ErrOutOfScope},
		{"title scope, longer title with the same prefix", title, "t00421/video_3000k.mp4", client, now, urlsign.ErrOutOfScope},
		{"title scope, dot-dot escape", title, "t0042/../t0043/video_3000k.mp4", client, now, urlsign.ErrOutOfScope},
		{"title scope, nested path", title, "t0042/sub/x.mp4", client, now, urlsign.ErrOutOfScope},
		{"title scope, the title itself", title, "t0042/", client, now, urlsign.ErrOutOfScope},
		{"title scope, the bare title", title, "t0042", client, now, urlsign.ErrOutOfScope},
		{"t00/ does not match t001/x", short, "t001/x", client, now, urlsign.ErrOutOfScope},
		{"t00/ does not match t0042/x", short, "t0042/x", client, now, urlsign.ErrOutOfScope},
		{"t00/ matches t00/x", short, "t00/x", client, now, nil},
		{"single file", single, "t0042/video_3000k.mp4", client, now, nil},
		{"single file, other file of the title", single, "t0042/video_500k.mp4", client, now, urlsign.ErrOutOfScope},
		{"single file, file name as prefix", single, "t0042/video_3000k.mp4.bak", client, now, urlsign.ErrOutOfScope},
		{"expired exactly at expiry", title, "t0042/a", client, later, urlsign.ErrExpired},
		{"expired after", title, "t0042/a", client, later.Add(time.Second), urlsign.ErrExpired},
		{"valid a second before expiry", title, "t0042/a", client, later.Add(-time.Second), nil},
		{"client inside prefix", clientBound, "t0042/a", client, now, nil},
		{"client inside prefix, IPv4-mapped", clientBound, "t0042/a", netip.MustParseAddr("::ffff:127.64.9.9"), now, nil},
		{"client outside prefix", clientBound, "t0042/a", netip.MustParseAddr("127.65.1.2"), now, urlsign.ErrWrongClient},
		{"IPv4-mapped prefix covers IPv4 clients", mappedBound, "t0042/a", client, now, nil},
		{"IPv4-mapped prefix, client outside", mappedBound, "t0042/a", netip.MustParseAddr("127.65.0.1"), now, urlsign.ErrWrongClient},
		{"client of the other family", v6Bound, "t0042/a", client, now, urlsign.ErrWrongClient},
		{"no client address for a bound token", clientBound, "t0042/a", netip.Addr{}, now, urlsign.ErrWrongClient},
		{"unbound token, any client", title, "t0042/a", netip.MustParseAddr("2001:db8::1"), now, nil},
		{"forged signature", forged(title), "t0042/a", client, now, urlsign.ErrBadSignature},
		{"signature of another token", withPayload(single, p), "t0042/a", client, now, urlsign.ErrBadSignature},
		{"tampered scope", withPayload(title, strings.Replace(p, "t0042/", "t0043/", 1)), "t0043/a", client, now, urlsign.ErrBadSignature},
		{"tampered scope to every title", withPayload(title, strings.Replace(p, "t0042/", "t/", 1)), "t/a", client, now, urlsign.ErrBadSignature},
		{"tampered expiry", withPayload(title, strings.Replace(p, "~1", "~9", 1)), "t0042/a", client, now, urlsign.ErrBadSignature},
		{"tampered key id", withPayload(title, strings.Replace(p, "~k1~", "~k2~", 1)), "t0042/a", client, now, urlsign.ErrUnknownKey},
		{"client prefix added", withPayload(title, p+"127.0.0.0/8"), "t0042/a", client, now, urlsign.ErrBadSignature},
		{"no dot", strings.Replace(title, ".", "", 1), "t0042/a", client, now, urlsign.ErrMalformed},
		{"empty", "", "t0042/a", client, now, urlsign.ErrMalformed},
		{"short signature", title[:len(title)-2], "t0042/a", client, now, urlsign.ErrMalformed},
		{"padded base64", strings.Replace(title, ".", "=.", 1), "t0042/a", client, now, urlsign.ErrMalformed},
		{"standard base64 alphabet", strings.NewReplacer("-", "+", "_", "/").Replace(title) + "+", "t0042/a", client, now, urlsign.ErrMalformed},
		{"too long", title + strings.Repeat("A", 1100), "t0042/a", client, now, urlsign.ErrMalformed},
		{"version 3 payload", withPayload(title, "3"+p[1:]), "t0042/a", client, now, urlsign.ErrMalformed},
		{"Ed25519 layout under an HMAC key", withPayload(title, "2"+p[1:]), "t0042/a", client, now, urlsign.ErrBadSignature},
		{"extra field", withPayload(title, p+"~x"), "t0042/a", client, now, urlsign.ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := ks.Verify(tc.token, tc.path, tc.client, tc.at)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("Verify(%q, %q, %v, %v) = %v, want %v", tc.token, tc.path, tc.client, tc.at, err, tc.want)
			}
		})
	}
}

func TestUnknownKey(t *testing.T) {
	tok := sign(t, keys("k1", key("k1", 1)), urlsign.Grant{Scope: "t1/", Expires: now.Add(time.Hour)})
	other := keys("k9", key("k9", 1)) // same secret, other id
	if err := other.Verify(tok, "t1/a", netip.Addr{}, now); !errors.Is(err, urlsign.ErrUnknownKey) {
		t.Errorf("Verify with a key set lacking k1 = %v, want ErrUnknownKey", err)
	}
	sameID := keys("k1", key("k1", 2)) // same id, other secret
	if err := sameID.Verify(tok, "t1/a", netip.Addr{}, now); !errors.Is(err, urlsign.ErrBadSignature) {
		t.Errorf("Verify with another k1 secret = %v, want ErrBadSignature", err)
	}
}

func TestRotation(t *testing.T) {
	old, next := key("old", 1), key("new", 2)
	exp := now.Add(time.Hour)
	ks := keys("old", old)
	tokOld := sign(t, ks, urlsign.Grant{Scope: "t1/", Expires: exp})

	// Step 1: add the new key, keep signing with the old one.
	ks = keys("old", old, next)
	if err := ks.Verify(tokOld, "t1/a", netip.Addr{}, now); err != nil {
		t.Errorf("after adding the new key: old token = %v, want nil", err)
	}
	// Step 2: switch signing to the new key; old tokens still verify.
	ks = keys("new", old, next)
	tokNew := sign(t, ks, urlsign.Grant{Scope: "t1/", Expires: exp})
	if got := strings.Split(payload(t, tokNew), "~")[1]; got != "new" {
		t.Errorf("token signed after the switch names key %q, want new", got)
	}
	for name, tok := range map[string]string{"old": tokOld, "new": tokNew} {
		if err := ks.Verify(tok, "t1/a", netip.Addr{}, now); err != nil {
			t.Errorf("with both keys: %s token = %v, want nil", name, err)
		}
	}
	// Step 3: drop the old key after the longest expiry.
	ks = keys("new", next)
	if err := ks.Verify(tokOld, "t1/a", netip.Addr{}, now); !errors.Is(err, urlsign.ErrUnknownKey) {
		t.Errorf("after removing the old key: old token = %v, want ErrUnknownKey", err)
	}
	if err := ks.Verify(tokNew, "t1/a", netip.Addr{}, now); err != nil {
		t.Errorf("after removing the old key: new token = %v, want nil", err)
	}
}

func TestSignRejectsBadScopes(t *testing.T) {
	ks := keys("k1", key("k1", 1))
	for _, scope := range []string{"", "/", "t0042", "t0042//", "/t0042/", "t0042/a/", "t0042/a/b", "../t0042/", "t0042/..",
		"t0042/.hidden", ".t/", "t~1/", "t\n/", "t0042/*", "*/", "t 1/"} {
		if tok, err := ks.Sign(urlsign.Grant{Scope: scope, Expires: now}); err == nil {
			t.Errorf("Sign(scope %q) = %q, want an error", scope, tok)
		}
	}
	for _, scope := range []string{"t0042/", "t0042/video_3000k.mp4", "clip/index.m3u8", "a/"} {
		if _, err := ks.Sign(urlsign.Grant{Scope: scope, Expires: now}); err != nil {
			t.Errorf("Sign(scope %q) = %v, want nil", scope, err)
		}
	}
}

func TestCovers(t *testing.T) {
	tests := []struct {
		scope, path string
		want        bool
	}{
		{"t0042/", "t0042/a.mp4", true},
		{"t0042/", "t00420/a.mp4", false},
		{"t0042/", "t004/a.mp4", false},
		{"t0042/", "t0042/", false},
		{"t0042/", "t0042/../x/a", false},
		{"t0042/a.mp4", "t0042/a.mp4", true},
		{"t0042/a.mp4", "t0042/a.mp", false},
		{"t0042/a.mp4", "t0042/", false},
	}
	for _, tc := range tests {
		if got := urlsign.Covers(tc.scope, tc.path); got != tc.want {
			t.Errorf("Covers(%q, %q) = %v, want %v", tc.scope, tc.path, got, tc.want)
		}
	}
}

func TestParseRoundTrip(t *testing.T) {
	ks := keys("k1", key("k1", 1), key("k2", 2))
	for _, g := range []urlsign.Grant{
		{Scope: "t1/", Expires: time.Unix(1_800_000_000, 0)},
		{Scope: "t1/v.mp4", Expires: time.Unix(0, 0)},
		{Scope: "t1/", Expires: time.Unix(-5, 0), Client: netip.MustParsePrefix("10.0.0.0/8")},
		{Scope: "t1/", Expires: time.Unix(1, 0), Client: netip.MustParsePrefix("2001:db8::/48")},
	} {
		tok := sign(t, ks, g)
		got, err := ks.Parse(tok)
		if err != nil {
			t.Fatalf("Parse(Sign(%+v)) = %v", g, err)
		}
		if diff := cmp.Diff(g, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
			t.Errorf("Parse(Sign(g)) (-want +got):\n%s", diff)
		}
	}
	// Sign masks the client prefix: host bits never reach the token.
	got, err := ks.Parse(sign(t, ks, urlsign.Grant{Scope: "t1/", Expires: now, Client: netip.MustParsePrefix("10.1.2.3/8")}))
	if err != nil || got.Client != netip.MustParsePrefix("10.0.0.0/8") {
		t.Errorf("Parse(Sign(client 10.1.2.3/8)) = %v, %v; want 10.0.0.0/8", got.Client, err)
	}
}

func TestKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.json")
	ks := urlsign.Generate()
	if err := ks.Save(path); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode = %v, want 0600", perm)
	}
	loaded, err := urlsign.LoadKeySet(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(ks, loaded); diff != "" {
		t.Errorf("LoadKeySet(Save(ks)) (-want +got):\n%s", diff)
	}
	tok := sign(t, ks, urlsign.Grant{Scope: "t1/", Expires: now.Add(time.Minute)})
	if err := loaded.Verify(tok, "t1/x", netip.Addr{}, now); err != nil {
		t.Errorf("token from the saved key set does not verify with the loaded one: %v", err)
	}
}

func TestKeySetValidate(t *testing.T) {
	tests := []struct {
		name string
		ks   urlsign.KeySet
		ok   bool
	}{
		{"good", *keys("a", key("a", 1), key("b", 2)), true},
		{"no keys", urlsign.KeySet{Active: "a"}, false},
		{"active missing", *keys("c", key("a", 1)), false},
		{"duplicate id", *keys("a", key("a", 1), key("a", 2)), false},
		{"short secret", *keys("a", urlsign.Key{ID: "a", Secret: make([]byte, 31)}), false},
		{"tilde in id", *keys("a~b", key("a~b", 1)), false},
		{"empty id", *keys("", key("", 1)), false},
	}
	for _, tc := range tests {
		if err := tc.ks.Validate(); (err == nil) != tc.ok {
			t.Errorf("%s: Validate() = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

// TestEd25519: the control plane signs with the private key; a verifier
// holding only the public set accepts what it signed and cannot sign
// itself; tampering, another key pair, or an HMAC token naming the
// Ed25519 key's id are refused.
func TestEd25519(t *testing.T) {
	full := urlsign.GenerateEd25519()
	pub := full.Public()
	if err := pub.Validate(); err != nil {
		t.Fatalf("public set: %v", err)
	}
	if pub.Keys[0].Private != nil || full.Keys[0].Private == nil {
		t.Fatalf("Public() kept the private key or lost it from the original")
	}
	if pub.CanSign() || !full.CanSign() {
		t.Fatalf("CanSign: public %v, full %v; want false, true", pub.CanSign(), full.CanSign())
	}
	if _, err := pub.Sign(urlsign.Grant{Scope: "t0042/", Expires: now.Add(time.Hour)}); err == nil {
		t.Fatalf("a public key set signed a token")
	}
	tok := sign(t, full, urlsign.Grant{Scope: "t0042/", Expires: now.Add(time.Hour)})
	client := netip.MustParseAddr("198.51.100.7")
	if err := pub.Verify(tok, "t0042/a.mp4", client, now); err != nil {
		t.Fatalf("Verify with the public set = %v", err)
	}
	if err := pub.Verify(tok, "t0043/a.mp4", client, now); !errors.Is(err, urlsign.ErrOutOfScope) {
		t.Errorf("a token outside its scope = %v, want ErrOutOfScope", err)
	}
	// Another pair under the same id verifies nothing the first signed.
	other := urlsign.GenerateEd25519()
	other.Keys[0].ID, other.Active = full.Active, full.Active
	if err := other.Public().Verify(tok, "t0042/a.mp4", client, now); !errors.Is(err, urlsign.ErrBadSignature) {
		t.Errorf("Verify under another key pair with the same id = %v, want ErrBadSignature", err)
	}
	p := payload(t, tok)
	forged := withPayload(tok, strings.Replace(p, "t0042/", "t0043/", 1))
	if err := pub.Verify(forged, "t0043/a.mp4", client, now); !errors.Is(err, urlsign.ErrBadSignature) {
		t.Errorf("tampered scope = %v, want ErrBadSignature", err)
	}
	// An HMAC token whose "secret" would be the public key is refused.
	hmacSet := &urlsign.KeySet{Active: full.Active, Keys: []urlsign.Key{{ID: full.Active, Secret: append(pub.Keys[0].Public, pub.Keys[0].Public...)}}}
	ht := sign(t, hmacSet, urlsign.Grant{Scope: "t0042/", Expires: now.Add(time.Hour)})
	if err := pub.Verify(ht, "t0042/a.mp4", client, now); !errors.Is(err, urlsign.ErrBadSignature) {
		t.Errorf("HMAC token under an Ed25519 key id = %v, want ErrBadSignature", err)
	}
}

func BenchmarkVerifyEd25519(b *testing.B) {
	full := urlsign.GenerateEd25519()
	pub := full.Public()
	tok, _ := full.Sign(urlsign.Grant{Scope: "t0042/", Expires: now.Add(time.Hour)})
	client := netip.MustParseAddr("198.51.100.7")
	b.ReportAllocs()
	for b.Loop() {
		if err := pub.Verify(tok, "t0042/a.mp4", client, now); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyHMAC(b *testing.B) {
	ks := urlsign.Generate()
	tok, _ := ks.Sign(urlsign.Grant{Scope: "t0042/", Expires: now.Add(time.Hour)})
	client := netip.MustParseAddr("198.51.100.7")
	b.ReportAllocs()
	for b.Loop() {
		if err := ks.Verify(tok, "t0042/a.mp4", client, now); err != nil {
			b.Fatal(err)
		}
	}
}

// TestExperimentTags checks that a grant's experiment arm and congestion
// control survive signing, that an untagged grant keeps the five-field
// payload of tokens signed before tags existed, and that bad tags are
// refused naming the field.
func TestExperimentTags(t *testing.T) {
	for _, ks := range []*urlsign.KeySet{urlsign.Generate(), urlsign.GenerateEd25519()} {
		exp := time.Unix(1_800_000_000, 0)
		g := urlsign.Grant{Scope: "t0042/", Expires: exp, Experiment: "cc-2026", Arm: "bbr", CongestionControl: "bbr"}
		tok, err := ks.Sign(g)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ks.Parse(tok)
		if err != nil || got != g {
			t.Fatalf("Parse(Sign(%+v)) = %+v, %v", g, got, err)
		}
		plain, err := ks.Sign(urlsign.Grant{Scope: "t0042/", Expires: exp})
		if err != nil {
			t.Fatal(err)
		}
		p64, _, _ := strings.Cut(plain, ".")
		raw, _ := b64.DecodeString(p64)
		if n := strings.Count(string(raw), "~"); n != 4 {
			t.Errorf("untagged payload %q has %d separators, want 4 (the old layout)", raw, n)
		}
		for _, bad := range []struct {
			g     urlsign.Grant
			field string
		}{
			{urlsign.Grant{Scope: "t/", Expires: exp, Arm: "a~b"}, "arm"},
			{urlsign.Grant{Scope: "t/", Expires: exp, Experiment: "x y"}, "experiment"},
			{urlsign.Grant{Scope: "t/", Expires: exp, CongestionControl: strings.Repeat("c", 65)}, "congestion_control"},
		} {
			if _, err := ks.Sign(bad.g); err == nil || !strings.Contains(err.Error(), bad.field) {
				t.Errorf("Sign(%+v) = %v, want an error naming %s", bad.g, err, bad.field)
			}
		}
	}
}
