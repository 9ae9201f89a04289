package edge

import (
	"net/netip"
	"sync"
	"time"

	"github.com/ocdn/ocdn/internal/urlsign"
)

// tokenCache remembers the grants of tokens whose signature checked out,
// so a player fetching hundreds of ranges under one token pays for the
// base64 decoding and HMAC once. Only good signatures are cached (a flood
// of forged tokens cannot evict real ones faster than it pays for the
// HMACs); expiry, scope and client are checked on every request. The
// cache is dropped when the key set changes, so a removed key stops
// working at once. Eviction is random (Go map order) when full: cheaper
// than an LRU list and just as good for a working set that fits.
type tokenCache struct {
	max int

	mu sync.RWMutex
	ks *urlsign.KeySet
	m  map[string]urlsign.Grant
}

func newTokenCache(max int) *tokenCache {
	return &tokenCache{max: max, m: map[string]urlsign.Grant{}}
}

// verify is urlsign.KeySet.Verify with the signature check cached; it
// returns the token's grant.
func (c *tokenCache) verify(ks *urlsign.KeySet, token, path string, client netip.Addr, now time.Time) (urlsign.Grant, error) {
	var g urlsign.Grant
	ok, same := false, false
	if c.max >= 0 {
		c.mu.RLock()
		g, ok = c.m[token]
		same = c.ks == ks
		c.mu.RUnlock()
	}
	if !ok || !same {
		var err error
		if g, err = ks.Parse(token); err != nil {
			return urlsign.Grant{}, err
		}
		if c.max >= 0 {
			c.put(ks, token, g, now)
		}
	}
	if err := checkGrant(g, path, client, now); err != nil {
		return urlsign.Grant{}, err
	}
	return g, nil
}

func (c *tokenCache) put(ks *urlsign.KeySet, token string, g urlsign.Grant, now time.Time) {
	if !now.Before(g.Expires) {
		return // would only be found expired
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ks != ks {
		c.ks, c.m = ks, make(map[string]urlsign.Grant, len(c.m))
	}
	if len(c.m) >= c.max {
		for k, v := range c.m { // expired first, else whatever comes
			if !now.Before(v.Expires) || len(c.m) >= c.max {
				delete(c.m, k)
			}
			if len(c.m) < c.max*3/4 {
				break
			}
		}
	}
	c.m[token] = g
}

// checkGrant mirrors the checks urlsign.KeySet.Verify makes after the
// signature; TestTokenCacheMatchesVerify keeps the two in step.
func checkGrant(g urlsign.Grant, path string, client netip.Addr, now time.Time) error {
	if !now.Before(g.Expires) {
		return urlsign.ErrExpired
	}
	if !urlsign.Covers(g.Scope, path) {
		return urlsign.ErrOutOfScope
	}
	if g.Client.IsValid() && !g.Client.Contains(client.Unmap()) {
		return urlsign.ErrWrongClient
	}
	return nil
}
