package config

import (
	"fmt"
	"net/netip"
	"net/url"
	"time"
)

// Control is the control plane's config file (`ocdn control --config`).
type Control struct {
	Listen            string        `yaml:"listen"`
	Catalog           string        `yaml:"catalog"`
	OriginURL         string        `yaml:"origin_url"`
	KeyFile           string        `yaml:"key_file"`
	AdminTokenFile    string        `yaml:"admin_token_file"`
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval"`
	Replicas          int           `yaml:"replicas"`
	TokenTTL          time.Duration `yaml:"token_ttl"`
	// RouteFiles load global tables (MRT or prefix lists) as the routes of
	// a site's appliances, for IXP and fallback sites without BGP.
	RouteFiles []RouteFile `yaml:"route_files"`
	Inventory  `yaml:",inline"`
	// Store is where control-plane state persists: a SQLite file path
	// (default control.db beside the config file) or postgres://… shared
	// by several replicas, which read it every SyncInterval.
	Store        string        `yaml:"store"`
	SyncInterval time.Duration `yaml:"sync_interval"`
	// ApplianceSecretFile holds the secret appliance tokens are minted
	// from (ocdn control --mint-token ID); without it appliances are not
	// authenticated.
	ApplianceSecretFile string `yaml:"appliance_secret_file"`
	// ActivePoll probes every appliance's /healthz each half interval.
	ActivePoll bool `yaml:"active_poll"`
}

// RouteFile is a global table for one site.
type RouteFile struct {
	Site string `yaml:"site"`
	File string `yaml:"file"`
}

// Validate implements Validator.
func (c *Control) Validate() error {
	if _, err := netip.ParseAddrPort(c.Listen); err != nil {
		return Errf("listen", "%q is not IP:port", c.Listen)
	}
	if c.Catalog == "" {
		return Errf("catalog", "must name a catalog file")
	}
	if u, err := url.Parse(c.OriginURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return Errf("origin_url", "%q is not an http(s) URL", c.OriginURL)
	}
	if c.KeyFile == "" {
		return Errf("key_file", "must name a key file (make one with `ocdn urlsign keygen`)")
	}
	if c.HeartbeatInterval < 0 || c.TokenTTL < 0 || c.Replicas < 0 {
		return Errf("heartbeat_interval/token_ttl/replicas", "must not be negative")
	}
	if err := c.ValidateInventory(netip.Prefix{}); err != nil {
		return err
	}
	for i, rf := range c.RouteFiles {
		if _, ok := c.SiteByID(rf.Site); !ok {
			return Errf(fmt.Sprintf("route_files[%d].site", i), "unknown site %q", rf.Site)
		}
		if rf.File == "" {
			return Errf(fmt.Sprintf("route_files[%d].file", i), "must name an MRT or prefix-list file")
		}
	}
	return nil
}

// ApplianceDaemon is an appliance's config file (`ocdn appliance --config`).
type ApplianceDaemon struct {
	ID                string        `yaml:"id"`
	Listen            string        `yaml:"listen"`
	ControlURL        string        `yaml:"control_url"`
	Store             string        `yaml:"store"`
	Capacity          ByteSize      `yaml:"capacity"`
	KeyFile           string        `yaml:"key_file"`
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval"`
	// ScrubRate is how fast the scrubber re-hashes stored objects, e.g.
	// "20MB" per second; 0 turns it off.
	ScrubRate ByteSize `yaml:"scrub_rate"`
	// TokenFile holds the appliance's control-plane credential.
	TokenFile string `yaml:"token_file"`
	// StaleLimit bounds serving without the control plane (default 24h).
	StaleLimit time.Duration `yaml:"stale_limit"`
}

// Validate implements Validator.
func (c *ApplianceDaemon) Validate() error {
	if c.ID == "" {
		return Errf("id", "must be set to the appliance's id in the control plane's inventory")
	}
	if _, err := netip.ParseAddrPort(c.Listen); err != nil {
		return Errf("listen", "%q is not IP:port", c.Listen)
	}
	if u, err := url.Parse(c.ControlURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return Errf("control_url", "%q is not an http(s) URL", c.ControlURL)
	}
	if c.Store == "" {
		return Errf("store", "must name the store directory")
	}
	if c.KeyFile == "" {
		return Errf("key_file", "must name the URL-signing key file")
	}
	if c.Capacity < 0 || c.HeartbeatInterval < 0 {
		return Errf("capacity/heartbeat_interval", "must not be negative")
	}
	return nil
}
