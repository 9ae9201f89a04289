package lab

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gobgpconfig "github.com/osrg/gobgp/v4/pkg/config"

	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/daemon"
	"github.com/ocdn/ocdn/internal/urlsign"
)

// TestCompiledConfigsLoad: every file --print-configs writes loads through
// the loader of the daemon that reads it — ocdn control, origin and
// appliance through internal/config and the files they name, the ISP
// routers' through gobgpd's own config reader — and describes the
// scenario's CDN.
func TestCompiledConfigsLoad(t *testing.T) {
	sc, err := LoadScenario("")
	if err != nil {
		t.Fatal(err)
	}
	d, err := Compile(sc, DefaultEndpoints)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := d.Write(dir); err != nil {
		t.Fatal(err)
	}
	var ctl config.Control
	if err := config.Load(controlPath(dir), &ctl); err != nil {
		t.Fatalf("control config: %v", err)
	}
	files, err := daemon.ReadControlFiles(&ctl)
	if err != nil {
		t.Fatalf("files the control config names: %v", err)
	}
	if len(ctl.Appliances) != len(sc.Appliances) || len(files.Catalog.Files) == 0 || files.AdminToken == "" || len(files.ApplianceSecret) < 32 {
		t.Errorf("control config: %d appliances (want %d), %d catalog files, admin token set %v, secret %d bytes",
			len(ctl.Appliances), len(sc.Appliances), len(files.Catalog.Files), files.AdminToken != "", len(files.ApplianceSecret))
	}
	if ctl.Measure == nil || !ctl.Steering.Measured || ctl.Measure.Recipe.Interval != sc.Probes.Every {
		t.Errorf("control config: measure %+v, steering %+v: want the scenario's probes and measured steering", ctl.Measure, ctl.Steering)
	}
	var org config.Origin
	if err := config.Load(originPath(dir), &org); err != nil {
		t.Fatalf("origin config: %v", err)
	}
	if _, err := content.Load(org.Catalog); err != nil {
		t.Fatalf("origin catalog: %v", err)
	}
	bgpPeers := 0
	for _, a := range sc.Appliances {
		var ac config.ApplianceDaemon
		if err := config.Load(appliancePath(dir, a.ID), &ac); err != nil {
			t.Fatalf("appliance %s: %v", a.ID, err)
		}
		// Appliances verify with the public key only: none can mint tokens.
		if ks, err := urlsign.LoadKeySet(ac.KeyFile); err != nil || ks.CanSign() {
			t.Errorf("appliance %s key_file: %v, can sign %v; want a public key set", a.ID, err, err == nil && ks.CanSign())
		}
		tok, err := os.ReadFile(ac.TokenFile)
		if err != nil {
			t.Errorf("appliance %s token_file: %v", a.ID, err)
		}
		if id, err := files.ApplianceSecret.Verify(strings.TrimSpace(string(tok)), time.Now()); err != nil || id != a.ID {
			t.Errorf("appliance %s token names %q (%v)", a.ID, id, err)
		}
		if ac.Listen[0].AddrPort != a.Address.AddrPort || ac.ControlURLs[0] != "http://"+DefaultEndpoints.Control.String() {
			t.Errorf("appliance %s: listen %v, control_urls %v", a.ID, ac.Listen, ac.ControlURLs)
		}
		if ac.BGP != nil {
			bgpPeers += len(ac.BGP.Neighbors)
		}
	}
	routerPeers := 0
	for _, r := range d.Routers {
		set, err := gobgpconfig.ReadConfigFile(routerPath(dir, r.Name), "toml")
		if err != nil {
			t.Fatalf("router %s: %v", r.Name, err)
		}
		if set.Global.Config.As != r.ASN || len(set.Neighbors) != len(r.Peers) {
			t.Errorf("router %s: AS %d with %d neighbors, want AS %d with %d", r.Name, set.Global.Config.As, len(set.Neighbors), r.ASN, len(r.Peers))
		}
		routerPeers += len(set.Neighbors)
		if routes, err := os.ReadFile(filepath.Join(dir, routersDir, r.Name+".routes")); err != nil || strings.Count(string(routes), "gobgp global rib add") != len(r.Routes) {
			t.Errorf("router %s routes file: %v\n%s", r.Name, err, routes)
		}
	}
	// Every appliance's session is some router's neighbor: the five
	// dual-stack appliances hold one per family.
	if bgpPeers != 10 || routerPeers != bgpPeers {
		t.Errorf("appliances hold %d BGP sessions and routers have %d neighbors; want 10 and 10", bgpPeers, routerPeers)
	}
}

// The daemons' ports lie below the ephemeral range, where no client's
// source port can take them while a daemon restarts, and both TCP and
// UDP (the DNS server) can bind them.
func TestFreePortBelowEphemeralRange(t *testing.T) {
	lo := ephemeralLow()
	if lo <= 11000 {
		t.Fatalf("ephemeral range starts at %d: want the kernel's range readable and above 11000", lo)
	}
	seen := map[uint16]bool{}
	for range 20 {
		ap, err := freePort(netip.MustParseAddr("127.0.0.1"))
		if err != nil {
			t.Fatal(err)
		}
		if int(ap.Port()) >= lo || ap.Port() < 10000 {
			t.Fatalf("freePort = %v, want a port from 10000 to below the ephemeral range's %d", ap, lo)
		}
		if !portFree(ap) {
			t.Fatalf("freePort = %v, which TCP or UDP cannot bind", ap)
		}
		seen[ap.Port()] = true
	}
	if len(seen) < 15 {
		t.Errorf("20 calls gave %d distinct ports, want them spread", len(seen))
	}
}
