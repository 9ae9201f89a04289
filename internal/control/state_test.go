package control

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ocdn/ocdn/internal/api"
	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/cpstore"
	"github.com/ocdn/ocdn/internal/cpstore/pgtest"
	"github.com/ocdn/ocdn/internal/rib"
	"github.com/ocdn/ocdn/internal/urlsign"
)

// replica starts a control plane on dsn with a real clock; opts change
// its config.
func replica(t *testing.T, dsn string, cat *content.Catalog, keys *urlsign.KeySet, opts ...func(*Config)) (*Server, context.CancelFunc) {
	t.Helper()
	st, err := cpstore.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	pfx := func(s string) config.Prefix { return config.Prefix{Prefix: netip.MustParsePrefix(s)} }
	addr := func(s string) config.AddrPort { return config.AddrPort{AddrPort: netip.MustParseAddrPort(s)} }
	inv := config.Inventory{
		ISPs:  []config.ISP{{Name: "isp", ASN: 64500, Prefixes: []config.Prefix{pfx("10.64.0.0/16"), pfx("10.65.0.0/16")}}},
		Sites: []config.Site{{ID: "emb", Kind: config.SiteEmbedded, ISP: "isp"}, {ID: "ix", Kind: config.SiteIXP}},
		Appliances: []config.Appliance{
			{ID: "e1", Site: "emb", Address: addr("127.1.0.1:80"), Capacity: 1 << 30},
			{ID: "e2", Site: "emb", Address: addr("127.1.0.3:80"), Capacity: 1 << 30},
			{ID: "x1", Site: "ix", Address: addr("127.1.0.2:80"), Capacity: 1 << 30},
		},
	}
	cfg := Config{Inventory: inv, Catalog: cat, OriginURL: "http://origin", Keys: keys, AdminToken: "sekret",
		HeartbeatInterval: 2 * time.Second, Store: st, SyncInterval: 50 * time.Millisecond}
	for _, o := range opts {
		o(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	stop := func() { cancel(); <-done; st.Close() }
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			stop()
		}
	})
	return s, stop
}

// answers is what steering says for a set of clients, without the
// tokens (which carry an expiry).
func answers(t *testing.T, s *Server, files []string) string {
	var b strings.Builder
	for _, client := range []string{"10.64.1.1", "10.64.2.1", "10.65.7.1", "192.0.2.1"} {
		for _, f := range files {
			w := do(t, s.Handler(), "GET", "/v1/steer?n=5&files="+f, "", client+":1000", "")
			var r api.SteerResponse
			json.Unmarshal(w.Body.Bytes(), &r)
			fmt.Fprintf(&b, "%s %s:", client, f)
			for _, u := range r.Files[0].URLs {
				fmt.Fprintf(&b, " %s(%s)", u.Appliance, u.Reason)
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}

func feed(t *testing.T, s *Server, cat *content.Catalog) []string {
	h := s.Handler()
	var files []string
	for _, f := range cat.Files {
		files = append(files, f.Path)
	}
	held, _ := json.Marshal(files)
	for _, id := range []string{"e1", "e2", "x1"} {
		if w := do(t, h, "POST", "/v1/heartbeat", `{"appliance":"`+id+`","content_gen":1,"held":`+string(held)+`}`, "127.1.0.1:1", ""); w.Code != 200 {
			t.Fatalf("heartbeat: %d %s", w.Code, w.Body)
		}
	}
	route := func(p string) rib.Route {
		return rib.Route{Prefix: netip.MustParsePrefix(p), Attrs: rib.Attrs{LocalPref: 100, ASPath: []uint32{64500}, EBGP: true}}
	}
	for _, rep := range []api.RouteReport{
		{Appliance: "e1", Epoch: "a", Seq: 1, Snapshot: true, Announce: []rib.Route{route("10.64.0.0/16"), route("10.65.0.0/16")}},
		{Appliance: "e2", Epoch: "b", Seq: 1, Snapshot: true, Announce: []rib.Route{route("10.64.0.0/16")}},
		{Appliance: "e2", Epoch: "b", Seq: 2, Withdraw: []netip.Prefix{netip.MustParsePrefix("10.64.0.0/16")}, Announce: []rib.Route{route("10.65.0.0/16")}},
	} {
		b, _ := json.Marshal(rep)
		if w := do(t, h, "POST", "/v1/routes", string(b), "127.1.0.1:1", ""); w.Code != 200 {
			t.Fatalf("routes: %d %s", w.Code, w.Body)
		}
	}
	if w := do(t, h, "POST", "/v1/admin/drain", `{"appliance":"x1","reason":"maintenance"}`, "127.0.0.1:1", "sekret"); w.Code != 200 {
		t.Fatalf("drain: %d %s", w.Code, w.Body)
	}
	return files[:2]
}

func waitSame(t *testing.T, what string, a, b func() string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		x, y := a(), b()
		if x == y {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: answers differ after 5s:\nA:\n%s\nB:\n%s", what, x, y)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestReplicasOnPostgreSQLAgree: heartbeats, routes and a drain go to
// replica A; replica B, reading the shared state every 50 ms, gives the
// same steering answers.
func TestReplicasOnPostgreSQLAgree(t *testing.T) {
	dsn := pgtest.Start(t)
	cat, err := content.Synth(content.SynthSpec{Titles: 2, LadderKbps: []int{100}, Duration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	keys := urlsign.Generate()
	a, _ := replica(t, dsn, cat, keys)
	b, _ := replica(t, dsn, cat, keys)
	before := answers(t, b, []string{cat.Files[0].Path})
	files := feed(t, a, cat)
	got := answers(t, a, files)
	if !strings.Contains(got, "e1") || !strings.Contains(got, "e2") || strings.Contains(got, "x1") {
		t.Fatalf("replica A answers:\n%s\nwant e1 and e2, not the drained x1", got)
	}
	waitSame(t, "replicas", func() string { return answers(t, a, files) }, func() string { return answers(t, b, files) })
	if before == answers(t, b, files) {
		t.Errorf("replica B's answers did not change")
	}
	if sa, sb := a.Appliances(), b.Appliances(); !slices.EqualFunc(sa, sb, func(x, y ApplianceStatus) bool {
		return x.ID == y.ID && x.State == y.State && x.Files == y.Files && x.Prefixes == y.Prefixes
	}) {
		t.Errorf("appliance states differ:\nA %+v\nB %+v", sa, sb)
	}
	t.Logf("both replicas:\n%s", answers(t, b, files))
}

// sqliteSetup is what a test of control planes on one SQLite file needs:
// its path, a catalog of titles titles, and URL-signing keys.
func sqliteSetup(t *testing.T, titles int) (string, *content.Catalog, *urlsign.KeySet) {
	t.Helper()
	cat, err := content.Synth(content.SynthSpec{Titles: titles, LadderKbps: []int{100}, Duration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(t.TempDir(), "control.db"), cat, urlsign.Generate()
}

// TestSQLiteStateSurvivesRestart: a control plane restarted on its SQLite
// file knows the drain, the content and the routes.
func TestSQLiteStateSurvivesRestart(t *testing.T) {
	dsn, cat, keys := sqliteSetup(t, 2)
	a, stopA := replica(t, dsn, cat, keys)
	files := feed(t, a, cat)
	want := answers(t, a, files)
	stopA() // flushes
	b, _ := replica(t, dsn, cat, keys)
	waitSame(t, "restart", func() string { return want }, func() string { return answers(t, b, files) })
	if st := statusOf(b, "x1"); st.State != "drained" {
		t.Errorf("x1 after restart = %+v, want drained", st)
	}
}

// TestTurnUpSurvivesRestart: an appliance that passed turn-up on one
// control plane is steered to by the next one on the same store at once,
// though its manifest has since moved on and it no longer holds all of
// it (a restarted replica used to check it again and hold its clients
// back until it held the whole manifest: minutes in a soak, while the
// other replica steered to it); an appliance that never passed is still
// held back.
func TestTurnUpSurvivesRestart(t *testing.T) {
	dsn, cat, keys := sqliteSetup(t, 4)
	turnUp := func(c *Config) { c.TurnUp = &TurnUp{FillShare: 1, SkipDownload: true} }
	beat := func(s *Server, id string, gen int, files []string) {
		t.Helper()
		held, _ := json.Marshal(files)
		if w := do(t, s.Handler(), "POST", "/v1/heartbeat", fmt.Sprintf(`{"appliance":%q,"content_gen":%d,"held":%s}`, id, gen, held), "127.1.0.1:1", ""); w.Code != 200 {
			t.Fatalf("heartbeat: %d %s", w.Code, w.Body)
		}
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 10s", what)
			}
		}
	}
	a, stopA := replica(t, dsn, cat, keys, turnUp)
	var all []string
	for _, f := range a.Manifest("e1") {
		all = append(all, f.Path)
	}
	if len(all) < 2 {
		t.Fatalf("e1's manifest has %d files; the test needs two or more", len(all))
	}
	beat(a, "e1", 1, all)
	waitFor("e1 passing turn-up on the first control plane", func() bool { return statusOf(a, "e1").Serving })
	stopA() // flushes

	b, _ := replica(t, dsn, cat, keys, turnUp)
	beat(b, "e1", 2, all[:1])
	beat(b, "e2", 1, all[:1])
	time.Sleep(1500 * time.Millisecond) // a turn-up round (every half heartbeat interval) and syncs
	if st := statusOf(b, "e1"); !st.Serving {
		t.Errorf("e1 on the restarted control plane = %+v, want serving: it passed turn-up before", st)
	}
	if st := statusOf(b, "e2"); st.Serving || !strings.Contains(st.Reason, "turn-up") {
		t.Errorf("e2, which never passed = %+v, want held back by turn-up", st)
	}
}
