package daemon

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// TestApplianceServesBothFamilies: an appliance whose listen list has an
// IPv4 and an IPv6 address answers on both (a dual-stack appliance's
// address and address6).
func TestApplianceServesBothFamilies(t *testing.T) {
	dir := t.TempDir()
	writeKeys(t, dir)
	// Free ports, found by listening and closing (the config wants a
	// port, not 0).
	free := func(network, addr string) string {
		ln, err := net.Listen(network, addr)
		if err != nil {
			t.Fatalf("listen %s: %v (IPv6 loopback is needed)", addr, err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}
	y := fmt.Sprintf("standalone: true\nlisten: [%s, \"%s\"]\nstore: store\nkey_file: keys.json\n",
		free("tcp4", "127.0.0.1:0"), free("tcp6", "[::1]:0"))
	d := runAppliance(t, loadAppliance(t, dir, y), Hooks{})
	urls := d.URLs()
	if len(urls) != 2 || !strings.Contains(urls[0], "127.0.0.1") || !strings.Contains(urls[1], "[::1]") {
		t.Fatalf("URLs = %v, want one IPv4 and one IPv6", urls)
	}
	for _, u := range urls {
		resp, err := http.Get(u + "/healthz")
		if err != nil {
			t.Fatalf("GET %s/healthz: %v", u, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s/healthz = %d %s", u, resp.StatusCode, body)
		}
	}
}
