package daemon

import (
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/dns"
)

// listenDNS builds the zone cfg describes and binds the authoritative
// server's addresses (nil when the config has no dns section). The SOA
// serial is the start time in seconds, so a restarted control plane with
// a changed inventory serves a larger one.
func listenDNS(cfg *config.Control, h Hooks, log *slog.Logger) (*dns.Server, error) {
	if cfg.DNS == nil {
		return nil, nil
	}
	now := h.Now
	if now == nil {
		now = time.Now
	}
	zone, err := dns.ZoneFromConfig(cfg.DNS, cfg.Inventory, uint32(now().Unix()))
	if err != nil {
		return nil, err
	}
	listen := make([]netip.AddrPort, len(cfg.DNS.Listen))
	for i, a := range cfg.DNS.Listen {
		listen[i] = a.AddrPort
	}
	s, err := dns.Listen(dns.Config{Zone: zone, Listen: listen, Logger: log, Registry: h.Registry, Now: h.Now,
		ProbeLogSize: cfg.DNS.ProbeLogSize})
	if err != nil {
		return nil, fmt.Errorf("dns.listen: %w", err)
	}
	return s, nil
}
