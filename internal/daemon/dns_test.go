package daemon

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

// TestControlServesDNS: a control plane with a dns section answers for
// its appliances' names over UDP and TCP and exports ocdn_dns_* metrics.
func TestControlServesDNS(t *testing.T) {
	dir, y := deployment(t, "127.0.0.1:0", "dns: {domain: cdn.example.net, listen: 127.0.0.1:0}\n")
	y = strings.Replace(y, "address: 127.0.0.1:1,", `address: 127.0.0.1:1, address6: "[2001:db8::1]:443",`, 1)
	c := runControl(t, dir, y, Hooks{})
	addr := c.DNS().Addrs()[0].String()
	for _, tc := range []struct {
		network, name string
		qtype         uint16
		want          string
	}{
		{"udp", "ipv4-x1-ix.cdn.example.net.", mdns.TypeA, "127.0.0.1"},
		{"tcp", "ipv6-x1-ix.cdn.example.net.", mdns.TypeAAAA, "2001:db8::1"},
		{"udp", "ns1.cdn.example.net.", mdns.TypeA, "127.0.0.1"}, // the default name server, at the listen address
	} {
		m := new(mdns.Msg)
		m.SetQuestion(tc.name, tc.qtype)
		r, _, err := (&mdns.Client{Net: tc.network, Timeout: 10 * time.Second}).Exchange(m, addr)
		if err != nil {
			t.Fatalf("%s over %s: %v", tc.name, tc.network, err)
		}
		if len(r.Answer) != 1 || !strings.HasSuffix(r.Answer[0].String(), "\t"+tc.want) {
			t.Errorf("%s over %s = %v, want %s", tc.name, tc.network, r.Answer, tc.want)
		}
	}
	resp, err := http.Get(c.URLs()[0] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `ocdn_dns_queries_total{qtype="AAAA",result="answer",transport="tcp"} 1`) {
		t.Errorf("/metrics lacks the DNS query counters:\n%s", grepLines(string(b), "ocdn_dns_queries_total"))
	}
}

// TestDNSListenFailureCreatesNothing: a DNS address that cannot be bound
// refuses the start, naming dns.listen, before the state store exists.
func TestDNSListenFailureCreatesNothing(t *testing.T) {
	busy, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir, y := deployment(t, "127.0.0.1:0", "dns: {domain: cdn.example.net, listen: "+busy.LocalAddr().String()+"}\n")
	_, err = NewControl(context.Background(), loadControl(t, dir, y), Hooks{})
	if err == nil || !strings.Contains(err.Error(), "dns.listen") || !strings.Contains(err.Error(), busy.LocalAddr().String()) {
		t.Fatalf("NewControl with a busy DNS address = %v, want an error naming dns.listen and the address", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "control.db")); !os.IsNotExist(err) {
		t.Errorf("control.db exists after a failed start (%v)", err)
	}
}
