package control

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/ocdn/ocdn/internal/urlsign"
)

// URL-signing keys reach appliances over the authenticated channel: GET
// /v1/keys returns the key set as a verifier needs it (Ed25519 keys
// without their private halves), and every heartbeat reply names its
// version so an appliance fetches a new set within one interval.
//
// RotateKeys changes keys without downtime in three steps: a new key is
// added (not yet signing) and published; after KeyPropagation (default
// three heartbeat intervals, when every live appliance has fetched it) it
// becomes the signing key; the keys it replaced are dropped after
// TokenTTL, when no URL signed with them is still valid.
type keyRing struct {
	mu       sync.Mutex
	set      *urlsign.KeySet
	activate string    // key to make active at activateAt
	at       time.Time // when to activate
	drop     map[string]time.Time
}

func (s *Server) signingKeys() *urlsign.KeySet {
	k := &s.keys
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.set == nil {
		k.set = s.cfg.Keys
	}
	return k.set
}

// keysVersion names a key set for heartbeat replies.
func keysVersion(ks *urlsign.KeySet) string {
	h := sha256.New()
	h.Write([]byte(ks.Active))
	for _, k := range ks.Keys {
		h.Write([]byte{0})
		h.Write([]byte(k.ID))
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// RotateKeys starts a rotation to a fresh key and returns its id.
func (s *Server) RotateKeys() string {
	cur := s.signingKeys()
	now := s.cfg.Now()
	id := "k" + strconv.FormatInt(now.UnixNano(), 36)
	active := cur.Keys[0]
	for _, k := range cur.Keys {
		if k.ID == cur.Active {
			active = k
		}
	}
	// The new key is of the active key's kind: a CDN on Ed25519 stays on it.
	next := &urlsign.KeySet{Active: cur.Active, Keys: append(append([]urlsign.Key{}, cur.Keys...), urlsign.NewKeyLike(active, id))}
	k := &s.keys
	k.mu.Lock()
	k.set, k.activate, k.at = next, id, now.Add(s.keyPropagation())
	k.mu.Unlock()
	s.log.Info("url-signing key added; signing with it after propagation", "key_id", id, "at", now.Add(s.keyPropagation()))
	return id
}

func (s *Server) keyPropagation() time.Duration {
	if s.cfg.KeyPropagation > 0 {
		return s.cfg.KeyPropagation
	}
	return 3 * s.cfg.HeartbeatInterval
}

// keysTick advances a rotation; Run calls it every half interval.
func (s *Server) keysTick() {
	now := s.cfg.Now()
	k := &s.keys
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.set == nil {
		k.set = s.cfg.Keys
	}
	if k.activate != "" && !now.Before(k.at) {
		old := k.set.Active
		k.set = &urlsign.KeySet{Active: k.activate, Keys: k.set.Keys}
		if k.drop == nil {
			k.drop = map[string]time.Time{}
		}
		k.drop[old] = now.Add(s.cfg.TokenTTL)
		s.log.Info("signing with the new url-signing key", "key_id", k.activate, "old_key_id", old)
		k.activate = ""
	}
	for id, at := range k.drop {
		if now.Before(at) || id == k.set.Active {
			continue
		}
		var keep []urlsign.Key
		for _, key := range k.set.Keys {
			if key.ID != id {
				keep = append(keep, key)
			}
		}
		k.set = &urlsign.KeySet{Active: k.set.Active, Keys: keep}
		delete(k.drop, id)
		s.log.Info("url-signing key dropped", "key_id", id)
	}
}

func (s *Server) handleKeys(w http.ResponseWriter, r *http.Request) {
	id, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	if id == "" && !s.isAdmin(r) {
		// Without appliance authentication, keys go to operators only.
		http.Error(w, "keys: needs an appliance or operator token", http.StatusUnauthorized)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	// Verifiers get public keys only: an appliance that can fetch keys
	// cannot mint Ed25519 tokens. (HMAC keys are secrets both sides must
	// hold; that is why Ed25519 is the default.)
	writeJSON(w, s.signingKeys().Public())
}

func (s *Server) handleRotate(w http.ResponseWriter, r *http.Request) {
	if !s.isAdmin(r) {
		http.Error(w, "admin: needs an operator token (Authorization: Bearer)", http.StatusUnauthorized)
		return
	}
	id := s.RotateKeys()
	s.logAdmin("", "rotate_keys", map[string]string{"key_id": id})
	writeJSON(w, map[string]any{"key_id": id, "signing_after": s.cfg.Now().Add(s.keyPropagation())})
}
