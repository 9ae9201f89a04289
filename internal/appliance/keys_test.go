package appliance

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/ocdn/ocdn/internal/auth"
	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/control"
	"github.com/ocdn/ocdn/internal/urlsign"
)

// TestAuthenticatedHeartbeatsAndKeyRotation: an appliance with its token
// heartbeats to a control plane that requires one, fetches the URL-signing
// keys over that channel, and has a rotated key before it signs.
func TestAuthenticatedHeartbeatsAndKeyRotation(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctlURL := "http://" + ln.Addr().String()
	secret := auth.NewSecret()
	keys := urlsign.Generate()
	a, err := New(Config{ID: "a1", Listeners: listen(t, "127.0.0.1:0"), Control: controlAt(ctlURL, secret.Mint("a1", time.Now().Add(time.Hour))), StoreDir: t.TempDir(),
		Keys:              &urlsign.KeySet{Active: "boot", Keys: []urlsign.Key{urlsign.NewKey("boot")}},
		HeartbeatInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	cat, _ := content.Synth(content.SynthSpec{Titles: 1, LadderKbps: []int{100}, Duration: time.Second})
	ctl, err := control.New(control.Config{Catalog: cat, OriginURL: "http://origin", Keys: keys, AdminToken: "op",
		HeartbeatInterval: 100 * time.Millisecond, ApplianceSecret: secret, KeyPropagation: 500 * time.Millisecond,
		Inventory: config.Inventory{Sites: []config.Site{{ID: "ix", Kind: config.SiteIXP}},
			Appliances: []config.Appliance{{ID: "a1", Site: "ix", Capacity: 1 << 30,
				Address: config.AddrPort{AddrPort: netip.MustParseAddrPort(a.srvs[0].Addr().String())}}}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: ctl.Handler()}
	go srv.Serve(ln)
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go ctl.Run(ctx)
	done := make(chan struct{})
	go func() { defer close(done); a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	wait := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 5s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	wait("appliance up", func() bool { return ctl.Appliances()[0].State == "up" })
	wait("keys fetched", func() bool { return a.currentKeys().Active == keys.Active })
	newID := ctl.RotateKeys()
	wait("new key held", func() bool {
		for _, k := range a.currentKeys().Keys {
			if k.ID == newID {
				return true
			}
		}
		return false
	})
	if a.currentKeys().Active == newID {
		t.Errorf("the appliance got the new key only once it signs")
	}
}
