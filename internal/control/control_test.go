package control

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ocdn/ocdn/internal/api"
	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/rib"
	"github.com/ocdn/ocdn/internal/steer"
	"github.com/ocdn/ocdn/internal/urlsign"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newTestServer(t *testing.T) (*Server, *clock, *content.Catalog) {
	t.Helper()
	return newTestServerWith(t, nil)
}

// newTestServerWith lets a test adjust the config before New.
func newTestServerWith(t *testing.T, mutate func(*Config)) (*Server, *clock, *content.Catalog) {
	t.Helper()
	cat, err := content.Synth(content.SynthSpec{Titles: 2, LadderKbps: []int{100}, Duration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	pfx := func(s string) config.Prefix { return config.Prefix{Prefix: netip.MustParsePrefix(s)} }
	addr := func(s string) config.AddrPort { return config.AddrPort{AddrPort: netip.MustParseAddrPort(s)} }
	inv := config.Inventory{
		ISPs:  []config.ISP{{Name: "isp", ASN: 64500, Prefixes: []config.Prefix{pfx("10.64.0.0/16")}}},
		Sites: []config.Site{{ID: "emb", Kind: config.SiteEmbedded, ISP: "isp"}, {ID: "ix", Kind: config.SiteIXP}},
		Appliances: []config.Appliance{
			{ID: "e1", Site: "emb", Address: addr("127.1.0.1:80"), Capacity: 1 << 30},
			{ID: "x1", Site: "ix", Address: addr("127.1.0.2:80"), Capacity: 1 << 30},
		},
	}
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	cfg := Config{Inventory: inv, Catalog: cat, OriginURL: "http://origin", Keys: urlsign.Generate(),
		AdminToken: "sekret", HeartbeatInterval: time.Second, Now: c.now}
	if mutate != nil {
		mutate(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, c, cat
}

func do(t *testing.T, h http.Handler, method, target, body, remote, token string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	req.RemoteAddr = remote
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func beat(t *testing.T, h http.Handler, id string, gen uint64, held []string) {
	t.Helper()
	b, _ := json.Marshal(api.Heartbeat{Appliance: id, ContentGen: gen, Held: held})
	if w := do(t, h, "POST", "/v1/heartbeat", string(b), "127.1.0.1:5000", ""); w.Code != 200 {
		t.Fatalf("heartbeat %s: %d %s", id, w.Code, w.Body)
	}
}

func TestSteerFollowsHeartbeatsAndContent(t *testing.T) {
	s, clk, cat := newTestServer(t)
	h := s.Handler()
	f := cat.Files[0].Path
	steer := func() []string {
		w := do(t, h, "GET", "/v1/steer?files="+f, "", "10.64.3.4:5555", "")
		if w.Code != 200 {
			t.Fatalf("steer: %d %s", w.Code, w.Body)
		}
		var resp api.SteerResponse
		json.Unmarshal(w.Body.Bytes(), &resp)
		var out []string
		for _, u := range resp.Files[0].URLs {
			out = append(out, u.Appliance)
		}
		return out
	}
	if got := steer(); len(got) != 0 {
		t.Errorf("before any heartbeat steer = %v, want nothing", got)
	}
	beat(t, h, "e1", 1, []string{f})
	beat(t, h, "x1", 1, []string{f})
	if got := strings.Join(steer(), ","); got != "x1" {
		t.Errorf("before e1 reports routes steer = %s, want only the IXP appliance", got)
	}
	report(t, h, api.RouteReport{Appliance: "e1", Epoch: "a", Seq: 1, Snapshot: true, Announce: []rib.Route{route("10.64.0.0/16")}})
	if got := strings.Join(steer(), ","); got != "e1,x1" {
		t.Errorf("steer = %s, want e1,x1", got)
	}
	// e1 goes silent for three intervals: out of rotation.
	clk.t = clk.t.Add(3 * time.Second)
	beat(t, h, "x1", 1, nil)
	s.rebuild()
	if got := strings.Join(steer(), ","); got != "x1" {
		t.Errorf("after e1 missed 3 heartbeats steer = %s, want x1", got)
	}
}

// Heartbeats racing each other: every appliance's heartbeat is in the
// snapshot once all have returned, however their rebuilds interleaved
// and coalesced.
func TestConcurrentHeartbeatsAllReachTheSnapshot(t *testing.T) {
	const n = 64
	s, _, cat := newTestServerWith(t, func(c *Config) {
		for i := range n {
			c.Inventory.Appliances = append(c.Inventory.Appliances, config.Appliance{ID: fmt.Sprintf("x%d", i+2), Site: "ix",
				Address: config.AddrPort{AddrPort: netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 1, 1, byte(i)}), 80)}, Capacity: 1 << 30})
		}
	})
	h := s.Handler()
	f := cat.Files[0].Path
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			b, _ := json.Marshal(api.Heartbeat{Appliance: fmt.Sprintf("x%d", i+2), ContentGen: 1, Held: []string{f}})
			if w := do(t, h, "POST", "/v1/heartbeat", string(b), "127.1.0.1:5000", ""); w.Code != 200 {
				t.Errorf("heartbeat x%d: %d %s", i+2, w.Code, w.Body)
			}
		})
	}
	wg.Wait()
	for i := range n {
		id := fmt.Sprintf("x%d", i+2)
		if a := s.snap.Load().Appliances[id]; a == nil || !a.Serving || !a.Holds[f] {
			t.Errorf("%s in the snapshot: %+v; want serving and holding the file", id, a)
		}
	}
}

func route(p string) rib.Route {
	return rib.Route{Prefix: netip.MustParsePrefix(p), Attrs: rib.Attrs{LocalPref: 100, ASPath: []uint32{64500}, EBGP: true}}
}

func report(t *testing.T, h http.Handler, rep api.RouteReport) api.RouteReportReply {
	t.Helper()
	b, _ := json.Marshal(rep)
	w := do(t, h, "POST", "/v1/routes", string(b), "127.1.0.1:5000", "")
	if w.Code != 200 {
		t.Fatalf("route report: %d %s", w.Code, w.Body)
	}
	var reply api.RouteReportReply
	json.Unmarshal(w.Body.Bytes(), &reply)
	return reply
}

func TestRouteReportsInOrder(t *testing.T) {
	s, _, _ := newTestServer(t)
	h := s.Handler()
	has := func(ip string) bool {
		_, cands, ok := s.Lookup(netip.MustParseAddr(ip))
		return ok && len(cands) == 1 && cands[0].Appliance == "e1"
	}
	// A delta before any snapshot is a gap: resync.
	if r := report(t, h, api.RouteReport{Appliance: "e1", Epoch: "a", Seq: 1, Announce: []rib.Route{route("10.64.0.0/16")}}); !r.Resync {
		t.Errorf("delta without snapshot: reply %+v, want resync", r)
	}
	report(t, h, api.RouteReport{Appliance: "e1", Epoch: "a", Seq: 1, Snapshot: true, Announce: []rib.Route{route("10.64.0.0/16")}})
	report(t, h, api.RouteReport{Appliance: "e1", Epoch: "a", Seq: 2, Announce: []rib.Route{route("10.65.0.0/16")}})
	if !has("10.65.1.1") || !has("10.64.1.1") {
		t.Fatalf("after snapshot and delta the RIB lacks a route")
	}
	// A duplicate is harmless, even one that would withdraw.
	if r := report(t, h, api.RouteReport{Appliance: "e1", Epoch: "a", Seq: 2, Withdraw: []netip.Prefix{netip.MustParsePrefix("10.65.0.0/16")}}); r.Resync || r.Seq != 2 {
		t.Errorf("duplicate: reply %+v", r)
	}
	if !has("10.65.1.1") {
		t.Errorf("a duplicate report changed the RIB")
	}
	// A gap asks for a snapshot and changes nothing.
	if r := report(t, h, api.RouteReport{Appliance: "e1", Epoch: "a", Seq: 5, Withdraw: []netip.Prefix{netip.MustParsePrefix("10.64.0.0/16")}}); !r.Resync {
		t.Errorf("gap: reply %+v, want resync", r)
	}
	if !has("10.64.1.1") {
		t.Errorf("a report after a gap was applied")
	}
	report(t, h, api.RouteReport{Appliance: "e1", Epoch: "a", Seq: 3, Withdraw: []netip.Prefix{netip.MustParsePrefix("10.64.0.0/16")}})
	if has("10.64.1.1") {
		t.Errorf("withdrawal not applied")
	}
	// A restarted appliance (new epoch) must start with a snapshot.
	if r := report(t, h, api.RouteReport{Appliance: "e1", Epoch: "b", Seq: 1, Announce: []rib.Route{route("10.66.0.0/16")}}); !r.Resync {
		t.Errorf("new epoch delta: reply %+v, want resync", r)
	}
}

func TestRouteReportRejectsBadInput(t *testing.T) {
	s, _, _ := newTestServer(t)
	for _, tc := range []struct{ body, want string }{
		{`{"appliance":"ghost","epoch":"a","seq":1,"snapshot":true}`, "unknown appliance"},
		{`{"appliance":"e1","seq":1,"snapshot":true}`, "epoch"},
		{`{"appliance":"e1","epoch":"a","seq":1,"snapshot":true,"announce":[{"prefix":"10.64.0.1/16"}]}`, "host bits"},
		{`{"appliance":"e1","epoch":"a","seq":1,"withdraw":["10.0.0.0/33"]}`, "10.0.0.0/33"},
	} {
		w := do(t, s.Handler(), "POST", "/v1/routes", tc.body, "127.1.0.1:5000", "")
		if w.Code < 400 || !strings.Contains(w.Body.String(), tc.want) {
			t.Errorf("route report %s = %d %q, want an error naming %q", tc.body, w.Code, w.Body, tc.want)
		}
	}
	if _, _, ok := s.Lookup(netip.MustParseAddr("10.64.0.1")); ok {
		t.Errorf("a rejected report left a route behind")
	}
}

func TestSteerRejectsBadParameters(t *testing.T) {
	s, _, cat := newTestServer(t)
	h := s.Handler()
	f := cat.Files[0].Path
	for _, tc := range []struct {
		query, token string
		code         int
		want         string
	}{
		{"files=", "", 400, "files="},
		{"files=../../etc/passwd", "", 400, "files="},
		{"files=t9999/nope.mp4", "", 404, "not in catalog"},
		{"files=" + f + "&n=0", "", 400, "n="},
		{"files=" + f + "&n=abc", "", 400, "n="},
		{"files=" + f + "&client=10.64.0.1", "", 403, "admin token"},
		{"files=" + f + "&client=not-an-ip", "sekret", 400, "client="},
		{"files=" + f + "&explain=1", "wrong", 403, "admin token"},
		{"files=" + f + "&client=10.64.0.1&explain=1", "sekret", 200, "explanation"},
		{"files=" + strings.Repeat(f+",", 100) + f, "", 400, "at most 100 files"},
		{"files=" + strings.Repeat(f+",", 99) + f, "", 200, `"urls"`},
	} {
		w := do(t, h, "GET", "/v1/steer?"+tc.query, "", "10.64.3.4:5555", tc.token)
		if w.Code != tc.code || !strings.Contains(w.Body.String(), tc.want) {
			t.Errorf("GET /v1/steer?%s = %d %q, want %d containing %q", tc.query, w.Code, w.Body, tc.code, tc.want)
		}
	}
}

func TestHeartbeatRejectsBadInput(t *testing.T) {
	s, _, _ := newTestServer(t)
	h := s.Handler()
	for _, tc := range []struct {
		body string
		code int
		want string
	}{
		{`{"appliance":"ghost"}`, 403, "unknown appliance"},
		{`{"appliance":"e1","held":["t9/x.mp4"]}`, 400, "held[0]"},
		{`{"appliance":"e1","colour":"red"}`, 400, "unknown field"},
		{`{"appliance":`, 400, "heartbeat"},
		{`{"appliance":"e1","held":["` + strings.Repeat("a", 9<<20) + `"]}`, 413, "too large"},
	} {
		w := do(t, h, "POST", "/v1/heartbeat", tc.body, "127.1.0.1:5000", "")
		if w.Code != tc.code || !strings.Contains(w.Body.String(), tc.want) {
			t.Errorf("heartbeat %.40q = %d %q, want %d containing %q", tc.body, w.Code, w.Body, tc.code, tc.want)
		}
	}
}

func TestManifest(t *testing.T) {
	s, _, cat := newTestServer(t)
	w := do(t, s.Handler(), "GET", "/v1/manifest?appliance=e1", "", "127.1.0.1:5000", "")
	var m api.Manifest
	if err := json.NewDecoder(bytes.NewReader(w.Body.Bytes())).Decode(&m); err != nil || w.Code != 200 {
		t.Fatalf("manifest: %d %v", w.Code, err)
	}
	if len(m.Files) != len(cat.Files) || m.Origin != "http://origin" || m.Version == "" {
		t.Errorf("manifest = %+v, want every file (one appliance per site, room for all)", m)
	}
	if w := do(t, s.Handler(), "GET", "/v1/manifest?appliance=zz", "", "127.1.0.1:5000", ""); w.Code != 404 {
		t.Errorf("unknown appliance manifest = %d, want 404", w.Code)
	}
}

// The hot path writes URLs from ranked appliances; its answer must be
// byte for byte what encoding/json writes for the same decisions made
// with Steer, odd characters included.
func TestAppendSteerJSONMatchesEncodingJSON(t *testing.T) {
	ks := urlsign.Generate()
	e := &steer.Engine{Keys: func() *urlsign.KeySet { return ks }, TokenTTL: time.Hour}
	paths := []string{"t1/a.mp4", "t2/é <b>\u2028.mp4", "t3/held-by-none.mp4"}
	holds := map[string]bool{paths[0]: true, paths[1]: true}
	snap := &steer.Snapshot{Appliances: map[string]*steer.Appliance{
		"x":  {ID: `odd "id" <&>`, Site: "s\\1\n\t\x01", Kind: config.SiteIXP, BaseURL: "http://a&b\xff", Serving: true, Holds: holds},
		"y":  {ID: "b", Site: "s2", Kind: config.SiteIXP, BaseURL: "http://b:8080", Serving: true, Holds: holds},
		"v4": {ID: "v4", Site: "s3", Kind: config.SiteIXP, BaseURL: "http://192.0.2.1:80", BaseFamily: steer.FamilyIPv4, Serving: true, Holds: holds},
		"ds": {ID: "ds", Site: "s3", Kind: config.SiteIXP, BaseURL: "http://192.0.2.2:80", BaseURL6: "http://[2001:db8::2]:80", BaseFamily: steer.FamilyIPv4, Serving: true, Holds: holds},
		"v6": {ID: "v6", Site: "s4", Kind: config.SiteIXP, BaseURL: "http://[2001:db8::3]:80", BaseFamily: steer.FamilyIPv6, Serving: true, Holds: holds},
	}, Global: []string{"x", "y", "v4", "ds", "v6"}}
	for _, client := range []string{"10.0.0.1", "2001:db8::1", `fe80::1%eth"0`} {
		for _, fam := range []steer.Family{steer.FamilyClient, steer.FamilyIPv4, steer.FamilyIPv6, steer.FamilyBoth} {
			addr := netip.MustParseAddr(client)
			want := api.SteerResponse{Client: addr.String()}
			var files []steerFile
			for _, p := range paths {
				urls, _, err := e.SteerFamily(snap, addr, fam, p, 5, false)
				if err != nil {
					t.Fatal(err)
				}
				want.Files = append(want.Files, api.FileSteer{Path: p, URLs: urls})
				tok, err := e.Token(p)
				if err != nil {
					t.Fatal(err)
				}
				files = append(files, steerFile{path: p, token: tok, ranked: e.AppendRankedFamily(nil, snap, addr, fam, p, 5)})
			}
			w, _ := json.Marshal(want)
			if got, _ := appendSteerJSON(nil, nil, addr, fam == steer.FamilyBoth, files); string(got) != string(w)+"\n" {
				t.Errorf("appendSteerJSON(%s, family %s) =\n%s\nwant\n%s", client, fam, got, w)
			}
		}
	}
}

func TestJSONSafeWord(t *testing.T) {
	for c := range 256 {
		for pos := range 8 {
			w := []byte("aZ09/-_.")
			w[pos] = byte(c)
			if got := jsonSafeWord(string(w)); got != jsonSafe[c] {
				t.Errorf("jsonSafeWord(%q) = %v, want %v", w, got, jsonSafe[c])
			}
		}
	}
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"http://a/c/x?e=1&s=2", `"\<>`, "é \u2028\u2029 \xff\x01", "\xe2\x80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := appendJSONString(nil, s); string(got) != string(want) {
			t.Errorf("appendJSONString(%q) = %s, encoding/json says %s", s, got, want)
		}
	})
}
