package urlsign_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ocdn/ocdn/internal/urlsign"
)

// signPayload makes a correctly signed token around any payload, so the
// fuzzer reaches the field parsing behind the signature check.
func signPayload(secret []byte, payload string) string {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(payload))
	return b64.EncodeToString([]byte(payload)) + "." + b64.EncodeToString(h.Sum(nil)[:16])
}

// FuzzParse feeds Parse arbitrary tokens; with signed set, the input is a
// payload that the test signs with the right key, as if the signer had a
// bug or the key leaked into a buggy tool. Parse must never panic, and any
// token it accepts must be exactly what Sign makes for the grant it
// returns (one spelling per grant, no malleability), and Verify must agree
// with the grant: it accepts a covered path from a client in the prefix
// before expiry, and rejects it at expiry.
func FuzzParse(f *testing.F) {
	ks := keys("k1", key("k1", 1))
	exp := time.Unix(1_800_000_000, 0)
	for _, g := range []urlsign.Grant{
		{Scope: "t0042/", Expires: exp},
		{Scope: "t0042/video_3000k.mp4", Expires: exp},
		{Scope: "t0042/", Expires: exp, Client: netip.MustParsePrefix("127.64.0.0/16")},
		{Scope: "t/", Expires: time.Unix(-1, 0), Client: netip.MustParsePrefix("2001:db8::/32")},
		{Scope: "t0042/", Expires: exp, Experiment: "cc-2026", Arm: "bbr", CongestionControl: "bbr"},
		{Scope: "t0042/", Expires: exp, Experiment: "steer", Arm: "measured"},
	} {
		tok, err := ks.Sign(g)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(tok, false)
		f.Add(tok+"A", false)
		f.Add(strings.Replace(tok, ".", "..", 1), false)
	}
	f.Add("", false)
	f.Add(".", false)
	f.Add("MX5rMX4xfnQv.AAAAAAAAAAAAAAAAAAAAAA", false)
	for _, p := range []string{
		"1~k1~1800000000~t0042/~", "1~k1~+1800000000~t0042/~", "1~k1~01~t0042/~", "1~k1~-0~t/x~",
		"1~k1~5~t0042/~10.1.2.3/8", "1~k1~5~t0042/~::ffff:10.0.0.0/104", "1~k1~5~../~", "1~k1~5~t0042~",
		"1~k1~5~t0042/a/~", "1~k2~5~t0042/~", "1~k1~99999999999999999999~t/~", "1~k1~5~t/~1.2.3.4/33",
		"1~k1~5~t0042/~~e~a~bbr", "1~k1~5~t0042/~~~~", "1~k1~5~t0042/~~e~a~b~r", "1~k1~5~t0042/~~e~a", "1~k1~5~t0042/~~e x~a~",
	} {
		f.Add(p, true)
	}
	f.Fuzz(func(t *testing.T, tok string, signed bool) {
		if signed {
			tok = signPayload(ks.Keys[0].Secret, tok)
		}
		g, err := ks.Parse(tok)
		if err != nil {
			return
		}
		again, err := ks.Sign(g)
		if err != nil {
			t.Fatalf("Parse(%q) = %+v, which Sign refuses: %v", tok, g, err)
		}
		if again != tok {
			t.Fatalf("Parse(%q) = %+v, but Sign of it = %q", tok, g, again)
		}
		path := g.Scope
		if strings.HasSuffix(path, "/") {
			path += "file.mp4"
		}
		client := netip.MustParseAddr("192.0.2.1")
		if g.Client.IsValid() {
			client = g.Client.Addr()
		}
		before := g.Expires.Add(-time.Second)
		if err := ks.Verify(tok, path, client, before); err != nil {
			t.Fatalf("Verify(%q, %q, %v, %v) = %v for grant %+v", tok, path, client, before, err, g)
		}
		if err := ks.Verify(tok, path, client, g.Expires); err == nil {
			t.Fatalf("Verify(%q) at expiry %v = nil", tok, g.Expires)
		}
	})
}
