package lab

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"sync"
	"time"

	"github.com/ocdn/ocdn/internal/clientnet"
	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/netem"
	"github.com/ocdn/ocdn/internal/pki"
	"github.com/ocdn/ocdn/internal/socks5"
	"github.com/ocdn/ocdn/internal/webclient"
)

// Browsers in the lab. The control plane serves the player, speed test
// and probe pages (internal/webclient); the appliances' compiled cors
// sections allow the control plane's origin. A browser pointed at the
// pages directly is a client at 127.0.0.1, outside every ISP: steering
// sends it to the IXP and nothing emulates its links. To be one of an
// ISP's clients over the emulated links, the browser uses the lab's
// SOCKS5 proxy (chromium --proxy-server=socks5://ADDR
// --proxy-bypass-list='<-loopback>', the second flag because Chromium
// otherwise never proxies loopback): the proxy dials every connection
// from an address of the scenario's first ISP, and those to appliances
// through the link of their site. Unlike the Go clients' links, which
// give each connection the link's bandwidth, the browser's connections
// to a site share one bottleneck at the link's bandwidth, as a
// household's access line does: a speed test opening several
// connections then measures the link, not a multiple of it.
//
// The pages' URLs are the control plane's (plain HTTP on 127.0.0.1, as
// the console's), but what they fetch from appliances is what steering
// hands out: HTTPS by name, as for every other client. The browser
// resolves those names through the proxy (SOCKS5 passes names) and
// verifies the appliances' certificates against the lab's CA, which it
// must trust first (BrowserReport.CAFile); the report says how.

// BrowserReport is how a browser reaches the lab's pages.
type BrowserReport struct {
	Player    string `json:"player"`
	SpeedTest string `json:"speed_test"`
	Probe     string `json:"probe"`
	// Proxy is the SOCKS5 proxy that makes the browser a client of ISP at
	// Client, over the emulated links.
	Proxy  string `json:"proxy"`
	ISP    string `json:"isp"`
	Client string `json:"client"`
	// ChromiumFlags are the flags that use the proxy.
	ChromiumFlags []string `json:"chromium_flags"`
	// CAFile is the lab's CA (WORK/etc/pki/ca.pem, there while the lab
	// runs), which issued the appliances' certificates: a browser trusts
	// it (Chromium on Linux: in its NSS database, $HOME/.pki/nssdb) or
	// refuses every appliance. Empty when the appliances serve plain
	// HTTP.
	CAFile string `json:"ca_file,omitempty"`
}

// Live is a running lab, as Options.OnStreaming sees it.
type Live struct {
	ControlURL string
	Browser    BrowserReport
	// KillAppliance crashes an appliance as the kill_appliance event
	// does; false when it is unknown or already dead.
	KillAppliance func(id string) bool
	// Link is the emulated link between the browser's ISP and a site
	// (false when none is configured).
	Link func(site string) (LinkSpec, bool)
}

// browserISP is the ISP whose client the proxied browser is: the
// scenario's first.
func (l *Lab) browserISP() (config.ISP, netip.Addr) {
	isp := l.sc.ISPs[0]
	return isp, browserAddr(prefixesOf(isp, false)[0].Prefix)
}

// browserAddr is an address in p the Go clients do not use (they take
// host 10 of successive /24s): the sixth from the end of p.
func browserAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v += 1<<(32-p.Bits()) - 6
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// browserDialer dials from the browser's address, to appliances through
// their site's link with one bottleneck per site.
func (l *Lab) browserDialer(isp string, src netip.Addr) socks5.DialFunc {
	shared := map[string]*netem.Bottleneck{}
	links := map[netip.Addr]netem.Link{}
	for _, a := range l.sc.Appliances {
		for _, ls := range l.sc.Links {
			if ls.ISP != isp || ls.Site != a.Site {
				continue
			}
			link := netem.Link{RTT: ls.RTT}
			if ls.BandwidthMbps > 0 {
				if shared[ls.Site] == nil {
					shared[ls.Site] = netem.NewBottleneck(ls.BandwidthMbps * 1e6)
				}
				link.Shared = shared[ls.Site]
			}
			links[a.Address.Addr()] = link
		}
	}
	base := &net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}, Timeout: 3 * time.Second}
	dial := netem.Dialer(base, func(ap netip.AddrPort) (netem.Link, bool) {
		link, ok := links[ap.Addr()]
		return link, ok
	})
	// Chromium hands SOCKS5 proxies names, not addresses: the proxy
	// resolves them as the lab's clients do, through the control plane's
	// DNS server, and dials the address through its link.
	cn, err := clientnet.New(clientnet.Config{Resolver: l.resolver, Dial: clientnet.DialFunc(dial)})
	if err != nil {
		return socks5.DialFunc(dial) // only a CA file can fail, and none is given
	}
	return socks5.DialFunc(cn.DialContext)
}

// startBrowser starts the browser's proxy (until ctx ends), says where
// the pages are, and runs Options.OnStreaming, whose return ends the
// streaming (stopStreaming). wait returns once both have stopped.
func (l *Lab) startBrowser(ctx, streamCtx context.Context, stopStreaming func(), controlURL string) (wait func(), err error) {
	isp, src := l.browserISP()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("browser proxy: %w", err)
	}
	proxy := socks5.New(ln, l.browserDialer(isp.Name, src), l.opts.Logger)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := proxy.Run(ctx); err != nil {
			l.log.Error("browser proxy stopped", "err", err)
		}
	}()
	b := BrowserReport{
		Player:    controlURL + webclient.PlayPath + "?title=" + content.MediaTitle(0),
		SpeedTest: controlURL + webclient.SpeedPath, Probe: controlURL + webclient.ProbePath,
		Proxy: proxy.URL(), ISP: isp.Name, Client: src.String(),
		ChromiumFlags: []string{"--proxy-server=" + proxy.URL(), "--proxy-bypass-list=<-loopback>"},
	}
	if l.sc.Catalog.MediaTitles == 0 {
		b.Player = "" // nothing a browser can play
	}
	if l.dep.CA != nil {
		if b.CAFile, err = filepath.Abs(filepath.Join(l.etc, pkiDir, pki.CACertFile)); err != nil {
			return nil, fmt.Errorf("browser: the lab's CA: %w", err)
		}
	}
	l.mu.Lock()
	l.browser = &b
	l.mu.Unlock()
	if l.opts.Pages != nil {
		l.opts.Pages(b)
	}
	if b.Player != "" {
		l.status("browser: player " + b.Player)
	}
	l.status(fmt.Sprintf("browser: speed test %s, probe %s; as an %s client over its links: chromium %s %s",
		b.SpeedTest, b.Probe, b.ISP, b.ChromiumFlags[0], b.ChromiumFlags[1]))
	if b.CAFile != "" {
		l.status("browser: trust the appliances' CA first: " + b.trustCommand())
	}
	if hook := l.opts.OnStreaming; hook != nil {
		live := &Live{ControlURL: controlURL, Browser: b,
			KillAppliance: func(id string) bool { return l.killAppliance(ctx, id) },
			Link: func(site string) (LinkSpec, bool) {
				for _, ls := range l.sc.Links {
					if ls.ISP == isp.Name && ls.Site == site {
						return ls, true
					}
				}
				return LinkSpec{}, false
			}}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer stopStreaming()
			hook(streamCtx, live)
		}()
	}
	return wg.Wait, nil
}

// print writes the report's browser section.
func (b *BrowserReport) print(w io.Writer) {
	if b == nil {
		return
	}
	fmt.Fprintln(w, "\nBrowser pages (served while the lab runs):")
	b.PrintPages(w, "  ")
}

// PrintPages writes where the pages are, a line each, after indent.
func (b *BrowserReport) PrintPages(w io.Writer, indent string) {
	if b.Player != "" {
		fmt.Fprintf(w, "%splayer      %s\n", indent, b.Player)
	}
	fmt.Fprintf(w, "%sspeed test  %s\n%sprobe       %s\n", indent, b.SpeedTest, indent, b.Probe)
	fmt.Fprintf(w, "%sas an %s client (%s) over the emulated links: chromium %s '%s'\n", indent, b.ISP, b.Client, b.ChromiumFlags[0], b.ChromiumFlags[1])
	if b.CAFile != "" {
		fmt.Fprintf(w, "%sappliances serve HTTPS by name with certificates of the lab's CA; trust it first: %s\n", indent, b.trustCommand())
	}
}

// trustCommand makes Chromium on Linux trust the lab's CA for servers
// (trust C,,), in the user's NSS database; certutil is in Debian's
// libnss3-tools. Removing it again: certutil -d sql:$HOME/.pki/nssdb -D
// -n ocdn-lab-ca.
func (b *BrowserReport) trustCommand() string {
	return fmt.Sprintf("certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n ocdn-lab-ca -i %s", b.CAFile)
}
