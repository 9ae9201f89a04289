package bgp

import (
	"encoding/json"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"

	"github.com/ocdn/ocdn/internal/bgp/bgptest"
)

func validConfig() Config {
	return Config{
		LocalASN:   2906,
		RouterID:   netip.MustParseAddr("127.1.0.1"),
		ListenAddr: netip.MustParseAddrPort("127.1.0.1:1790"),
		Neighbors: []NeighborConfig{
			{Address: netip.MustParseAddr("127.0.0.10"), PeerASN: 64500, Family: FamilyIPv4},
			{Address: netip.MustParseAddr("::1"), PeerASN: 64500, Family: FamilyIPv6, Port: 1179, MaxPrefixes: 10},
		},
		AllowPrefixes: mustPrefixes("127.0.0.0/8", "2001:db8::/32"),
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Config)
		want   []string // substrings of the error, one per expected problem; nil = valid
	}{
		{"valid", func(*Config) {}, nil},
		{"no listen is fine", func(c *Config) { c.ListenAddr = netip.AddrPort{} }, nil},
		{"ipv6 listen", func(c *Config) { c.ListenAddr = netip.MustParseAddrPort("[::1]:1790") }, nil},
		{"local asn missing", func(c *Config) { c.LocalASN = 0 }, []string{"local_asn: must be set"}},
		{"local asn AS_TRANS", func(c *Config) { c.LocalASN = 23456 }, []string{"local_asn: 23456 is AS_TRANS"}},
		{"4-byte asn", func(c *Config) { c.LocalASN = 4200000000; c.Neighbors[0].PeerASN = 4200000001 }, nil},
		{"router id missing", func(c *Config) { c.RouterID = netip.Addr{} }, []string{"router_id: must be set"}},
		{"router id ipv6", func(c *Config) { c.RouterID = netip.MustParseAddr("2001:db8::1") }, []string{"router_id: must be an IPv4 address"}},
		{"router id zero", func(c *Config) { c.RouterID = netip.IPv4Unspecified() }, []string{"router_id: must not be 0.0.0.0"}},
		{"listen port zero", func(c *Config) { c.ListenAddr = netip.AddrPortFrom(c.RouterID, 0) }, []string{"listen_addr: port must be set"}},
		{"listen addr missing", func(c *Config) { c.ListenAddr = netip.AddrPortFrom(netip.Addr{}, 179) }, []string{"listen_addr: address must be set"}},
		{"no neighbors", func(c *Config) { c.Neighbors = nil }, []string{"neighbors: at least one"}},
		{"neighbor address missing", func(c *Config) { c.Neighbors[1].Address = netip.Addr{} }, []string{"neighbors[1].address: must be set"}},
		{"neighbor address unspecified", func(c *Config) { c.Neighbors[0].Address = netip.IPv4Unspecified() }, []string{"neighbors[0].address: 0.0.0.0 is not a unicast"}},
		{"neighbor address multicast", func(c *Config) { c.Neighbors[0].Address = netip.MustParseAddr("224.0.0.5") }, []string{"neighbors[0].address: 224.0.0.5 is not a unicast"}},
		{"neighbor zoned", func(c *Config) { c.Neighbors[1].Address = netip.MustParseAddr("fe80::1%eth0") }, []string{"neighbors[1].address: zoned"}},
		{"duplicate neighbor", func(c *Config) { c.Neighbors[1].Address = c.Neighbors[0].Address }, []string{"neighbors[1].address: 127.0.0.10 is also neighbors[0]"}},
		{"peer asn missing", func(c *Config) { c.Neighbors[1].PeerASN = 0 }, []string{"neighbors[1].peer_asn: must be set"}},
		{"peer asn AS_TRANS", func(c *Config) { c.Neighbors[0].PeerASN = 23456 }, []string{"neighbors[0].peer_asn: 23456 is AS_TRANS"}},
		{"ibgp allowed", func(c *Config) { c.Neighbors[0].PeerASN = c.LocalASN }, nil},
		{"family missing", func(c *Config) { c.Neighbors[0].Family = "" }, []string{`neighbors[0].family: must be set to "ipv4" or "ipv6"`}},
		{"family unknown", func(c *Config) { c.Neighbors[1].Family = "inet6" }, []string{`neighbors[1].family: must be "ipv4" or "ipv6", got "inet6"`}},
		{"max prefixes negative", func(c *Config) { c.Neighbors[0].MaxPrefixes = -1 }, []string{"neighbors[0].max_prefixes: must not be negative"}},
		{"md5 too long", func(c *Config) { c.Neighbors[0].MD5Password = strings.Repeat("k", 81) }, []string{"neighbors[0].md5_password: longer than 80 bytes"}},
		{"md5 max length", func(c *Config) { c.Neighbors[0].MD5Password = strings.Repeat("k", 80) }, nil},
		{"allow prefix host bits", func(c *Config) { c.AllowPrefixes = []netip.Prefix{netip.MustParsePrefix("127.1.2.3/8")} }, []string{"allow_prefixes[0]: 127.1.2.3/8 has host bits set; did you mean 127.0.0.0/8?"}},
		{"allow prefix invalid", func(c *Config) { c.AllowPrefixes = []netip.Prefix{{}} }, []string{"allow_prefixes[0]: must be a valid prefix"}},
		{"several problems reported together", func(c *Config) {
			c.LocalASN = 0
			c.Neighbors[0].PeerASN = 0
			c.Neighbors[1].Family = ""
		}, []string{"local_asn: must be set", "neighbors[0].peer_asn: must be set", "neighbors[1].family: must be set"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.modify(&c)
			err := c.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want errors containing %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to contain %q", err, w)
				}
			}
			if got := strings.Count(err.Error(), "\n") + 1; got != len(tt.want) {
				t.Errorf("Validate() reported %d problems, want %d: %q", got, len(tt.want), err)
			}
		})
	}
}

func TestConfigValidateNeverEchoesPassword(t *testing.T) {
	c := validConfig()
	secret := "hunter2" + strings.Repeat("x", 90)
	c.Neighbors[0].MD5Password = secret
	if err := c.Validate(); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("Validate() = %v, want an error that does not contain the password", err)
	}
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	c := validConfig()
	c.Neighbors[1].PeerASN = 0
	if _, err := New(c, nil, nil); err == nil || !strings.Contains(err.Error(), "neighbors[1].peer_asn: must be set") {
		t.Errorf("New() error = %v, want it to name neighbors[1].peer_asn", err)
	}
}

// TestConfigYAMLJSON checks the snake_case field names other packages and
// operators write, and that netip types round-trip through both formats.
func TestConfigYAMLJSON(t *testing.T) {
	const doc = `
local_asn: 2906
router_id: 127.1.0.1
listen_addr: 127.1.0.1:1790
allow_prefixes: [127.0.0.0/8, 2001:db8::/32]
neighbors:
  - address: 127.0.0.10
    peer_asn: 64500
    family: ipv4
    passive: true
    md5_password: s3cret
  - address: "::1"
    port: 1179
    peer_asn: 64500
    family: ipv6
    max_prefixes: 10
`
	var got Config
	if err := yaml.Unmarshal([]byte(doc), &got); err != nil {
		t.Fatalf("yaml.Unmarshal: %v", err)
	}
	want := validConfig()
	want.Neighbors[0].Passive = true
	want.Neighbors[0].MD5Password = "s3cret"
	if diff := cmp.Diff(want, got, cmpNetip, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
		t.Errorf("YAML config (-want +got):\n%s", diff)
	}
	js, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"local_asn"`, `"router_id"`, `"listen_addr"`, `"peer_asn"`, `"max_prefixes"`, `"allow_prefixes"`, `"md5_password"`} {
		if !strings.Contains(string(js), key) {
			t.Errorf("JSON %s lacks key %s", js, key)
		}
	}
	var back Config
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatalf("json.Unmarshal: %v", err)
	}
	if diff := cmp.Diff(want, back, cmpNetip, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
		t.Errorf("JSON round trip (-want +got):\n%s", diff)
	}
}

func TestNeighborLogValueRedactsPassword(t *testing.T) {
	var buf bgptest.LockedBuffer
	logger := slog.New(slog.NewJSONHandler(&buf, nil))
	logger.Info("x", "neighbor", NeighborConfig{Address: netip.MustParseAddr("127.0.0.10"), PeerASN: 1, MD5Password: "s3cret", Family: FamilyIPv4})
	if out := buf.String(); strings.Contains(out, "s3cret") || !strings.Contains(out, `"md5":true`) {
		t.Errorf("log line %s: want md5=true and no password", out)
	}
}
