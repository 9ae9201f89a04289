// Package bgp provides the appliance's embedded BGP speaker: a receive-only
// GoBGP instance that holds the sessions with the ISP's routers, filters what
// they announce through the appliance's import policy, and reports the
// accepted client prefixes as route events (see Event) for the appliance's
// route set.
//
// How GoBGP maps to events: one GoBGP watcher subscribes to peer state
// changes and to post-policy Adj-RIB-In updates (WatchPostUpdate). Those
// updates are per neighbor and carry every path a neighbor sends,
// announcements and withdrawals alike; best-path events would hide a
// neighbor's route whenever another neighbor's route for the same prefix
// wins, and the consumer needs each neighbor's routes. A peer reaching
// Established gives SessionUp, leaving it gives SessionDown (the consumer
// drops that neighbor's routes; no per-route withdrawals follow). Paths pass
// the import policy (importPolicy: default route, bogons unless in
// Config.AllowPrefixes, IPv4 longer than /24, IPv6 longer than /48), then
// become one Announce (rib.Route values) and one Withdraw per neighbor and
// batch. Unchanged re-announcements and withdrawals of rejected prefixes
// produce no event. GoBGP's own import policy is left at accept-all and its
// export policy is reject-all. Max-prefix counts accepted prefixes: when a
// neighbor exceeds NeighborConfig.MaxPrefixes the speaker emits SessionDown
// with State "max-prefix exceeded" and disables the GoBGP peer, which stays
// down until the speaker is restarted.
package bgp

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"
)

// Family is the address family a neighbor session carries. An embedded
// appliance holds one session per family with the ISP's router.
type Family string

// Families a neighbor session can carry.
const (
	FamilyIPv4 Family = "ipv4"
	FamilyIPv6 Family = "ipv6"
)

// Defaults applied by Config.withDefaults.
const (
	DefaultPort        = 179
	DefaultMaxPrefixes = 1_000_000
)

// maxMD5KeyLen is the kernel's TCP_MD5SIG key limit (TCP_MD5SIG_MAXKEYLEN).
const maxMD5KeyLen = 80

// Config is the speaker's configuration. The zero ListenAddr means the
// speaker does not accept connections and only connects out to its
// (non-passive) neighbors.
type Config struct {
	LocalASN   uint32           `yaml:"local_asn" json:"local_asn"`
	RouterID   netip.Addr       `yaml:"router_id" json:"router_id"`
	ListenAddr netip.AddrPort   `yaml:"listen_addr,omitempty" json:"listen_addr,omitzero"`
	Neighbors  []NeighborConfig `yaml:"neighbors" json:"neighbors"`
	// AllowPrefixes exempts ranges from the bogon check of the import policy.
	// Production leaves it empty; the lab and tests run on loopback and
	// announce 127.x and documentation prefixes, so they pass e.g.
	// 127.0.0.0/8 and 2001:db8::/32. It does not exempt a route from the
	// default-route or prefix-length checks.
	AllowPrefixes []netip.Prefix `yaml:"allow_prefixes,omitempty" json:"allow_prefixes,omitempty"`
}

// NeighborConfig is one BGP session with an ISP router.
type NeighborConfig struct {
	Address netip.Addr `yaml:"address" json:"address"`
	// Port is the neighbor's BGP port the speaker connects to; 0 means 179.
	Port    uint16 `yaml:"port,omitempty" json:"port,omitempty"`
	PeerASN uint32 `yaml:"peer_asn" json:"peer_asn"`
	// MD5Password enables TCP MD5 signatures (RFC 2385). It is never logged:
	// NeighborConfig implements slog.LogValuer and redacts it.
	MD5Password string `yaml:"md5_password,omitempty" json:"md5_password,omitempty"`
	// Passive makes the speaker wait for the router to connect.
	Passive bool `yaml:"passive,omitempty" json:"passive,omitempty"`
	// MaxPrefixes is the number of accepted prefixes above which the session
	// is shut down; 0 means DefaultMaxPrefixes.
	MaxPrefixes int    `yaml:"max_prefixes,omitempty" json:"max_prefixes,omitempty"`
	Family      Family `yaml:"family" json:"family"`
	// HoldTime is proposed in OPEN (RFC 4271: 0, or at least 3 s); the
	// keepalive interval is a third of it. 0 means GoBGP's default, 90 s.
	HoldTime time.Duration `yaml:"hold_time,omitempty" json:"hold_time,omitempty"`
}

// LogValue keeps the MD5 password out of every log line that includes a
// neighbor config.
func (n NeighborConfig) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("address", n.Address.String()),
		slog.Uint64("port", uint64(n.port())),
		slog.Uint64("peer_asn", uint64(n.PeerASN)),
		slog.String("family", string(n.Family)),
		slog.Bool("passive", n.Passive),
		slog.Bool("md5", n.MD5Password != ""),
		slog.Int("max_prefixes", n.maxPrefixes()),
	)
}

func (n NeighborConfig) port() uint16 {
	if n.Port == 0 {
		return DefaultPort
	}
	return n.Port
}

func (n NeighborConfig) maxPrefixes() int {
	if n.MaxPrefixes == 0 {
		return DefaultMaxPrefixes
	}
	return n.MaxPrefixes
}

// Validate checks the config and returns every problem found, each naming
// the field as it is spelled in YAML.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	switch c.LocalASN {
	case 0:
		bad("local_asn", "must be set")
	case 23456:
		bad("local_asn", "23456 is AS_TRANS (RFC 6793) and cannot be a real ASN")
	}
	switch {
	case !c.RouterID.IsValid():
		bad("router_id", "must be set to an IPv4 address")
	case !c.RouterID.Is4():
		bad("router_id", "must be an IPv4 address, got %s", c.RouterID)
	case c.RouterID.IsUnspecified():
		bad("router_id", "must not be 0.0.0.0")
	}
	if c.ListenAddr.IsValid() || c.ListenAddr.Port() != 0 {
		if !c.ListenAddr.Addr().IsValid() {
			bad("listen_addr", "address must be set (or leave listen_addr empty to not listen)")
		}
		if c.ListenAddr.Port() == 0 {
			bad("listen_addr", "port must be set, e.g. 179 or 1790")
		}
	}
	if len(c.Neighbors) == 0 {
		bad("neighbors", "at least one neighbor must be configured")
	}
	seen := make(map[netip.Addr]int)
	for i, n := range c.Neighbors {
		f := fmt.Sprintf("neighbors[%d]", i)
		switch {
		case !n.Address.IsValid():
			bad(f+".address", "must be set")
		case n.Address.IsUnspecified() || n.Address.IsMulticast():
			bad(f+".address", "%s is not a unicast address", n.Address)
		case n.Address.Zone() != "":
			bad(f+".address", "zoned (link-local) addresses are not supported")
		default:
			if j, dup := seen[n.Address]; dup {
				bad(f+".address", "%s is also neighbors[%d]", n.Address, j)
			}
			seen[n.Address] = i
		}
		switch n.PeerASN {
		case 0:
			bad(f+".peer_asn", "must be set")
		case 23456:
			bad(f+".peer_asn", "23456 is AS_TRANS (RFC 6793) and cannot be a real ASN")
		}
		switch n.Family {
		case FamilyIPv4, FamilyIPv6:
		case "":
			bad(f+".family", `must be set to "ipv4" or "ipv6"`)
		default:
			bad(f+".family", `must be "ipv4" or "ipv6", got %q`, n.Family)
		}
		if n.MaxPrefixes < 0 {
			bad(f+".max_prefixes", "must not be negative (0 means %d)", DefaultMaxPrefixes)
		}
		if n.HoldTime < 0 || (n.HoldTime > 0 && n.HoldTime < 3*time.Second) || n.HoldTime > 65535*time.Second {
			bad(f+".hold_time", "%s is not from 3s to 65535s (RFC 4271)", n.HoldTime)
		}
		if len(n.MD5Password) > maxMD5KeyLen {
			// Never echo the password itself.
			bad(f+".md5_password", "longer than %d bytes, the TCP MD5 key limit", maxMD5KeyLen)
		}
	}
	for i, p := range c.AllowPrefixes {
		f := fmt.Sprintf("allow_prefixes[%d]", i)
		switch {
		case !p.IsValid():
			bad(f, "must be a valid prefix")
		case p != p.Masked():
			bad(f, "%s has host bits set; did you mean %s?", p, p.Masked())
		}
	}
	return errors.Join(errs...)
}
