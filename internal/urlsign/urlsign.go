// Package urlsign provides the tokens that authorize a content URL: an
// HMAC-SHA256 over a path scope (one file, or every file of a title), an
// expiry, a key id and optionally a client prefix. The token is one URL path
// segment (/c/{token}/{title}/{file}) so that relative URLs inside HLS and
// DASH playlists served under the same token keep working.
package urlsign

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ocdn/ocdn/internal/content"
)

// Errors returned by Verify; the edge maps all of them to 403.
var (
	ErrMalformed    = errors.New("malformed token")
	ErrUnknownKey   = errors.New("unknown key id")
	ErrBadSignature = errors.New("bad signature")
	ErrExpired      = errors.New("token expired")
	ErrOutOfScope   = errors.New("path outside token scope")
	ErrWrongClient  = errors.New("client outside token prefix")
)

// macLen is the truncated HMAC length: 128 bits resist forgery and keep
// URLs short.
const macLen = 16

// maxTokenLen bounds the work spent on a hostile token.
const maxTokenLen = 1024

// Key is one signing key.
type Key struct {
	ID     string `json:"id"`
	Secret []byte `json:"secret"` // base64 in JSON
}

// KeySet holds the keys that verify tokens and names the one that signs new
// ones. Several keys are valid at once so keys rotate without downtime:
// add the new key, switch Active, drop the old one after the longest expiry.
type KeySet struct {
	Active string `json:"active"`
	Keys   []Key  `json:"keys"`
}

// Validate checks the key set.
func (ks *KeySet) Validate() error {
	if len(ks.Keys) == 0 {
		return errors.New("keys: at least one key is needed")
	}
	seen := map[string]bool{}
	for i, k := range ks.Keys {
		if k.ID == "" || strings.ContainsAny(k.ID, "~\n") || len(k.ID) > 64 {
			return fmt.Errorf("keys[%d].id: %q must be 1-64 characters without '~'", i, k.ID)
		}
		if seen[k.ID] {
			return fmt.Errorf("keys[%d].id: %q used twice", i, k.ID)
		}
		seen[k.ID] = true
		if len(k.Secret) < 32 {
			return fmt.Errorf("keys[%d].secret: %d bytes; at least 32 are needed", i, len(k.Secret))
		}
	}
	if !seen[ks.Active] {
		return fmt.Errorf("active: %q is not one of the keys", ks.Active)
	}
	return nil
}

func (ks *KeySet) key(id string) ([]byte, bool) {
	for _, k := range ks.Keys {
		if k.ID == id {
			return k.Secret, true
		}
	}
	return nil, false
}

// NewKey makes a random 32-byte key.
func NewKey(id string) Key {
	k := Key{ID: id, Secret: make([]byte, 32)}
	rand.Read(k.Secret)
	return k
}

// Generate makes a key set with one fresh active key.
func Generate() *KeySet {
	id := "k" + strconv.FormatInt(time.Now().Unix(), 36)
	return &KeySet{Active: id, Keys: []Key{NewKey(id)}}
}

// LoadKeySet reads a key file written by Save.
func LoadKeySet(path string) (*KeySet, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var ks KeySet
	if err := json.Unmarshal(data, &ks); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := ks.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &ks, nil
}

// Save writes the key set readable only by its owner.
func (ks *KeySet) Save(path string) error {
	data, err := json.MarshalIndent(ks, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o600)
}

// Grant is what a token authorizes.
type Grant struct {
	// Scope is a path "title/file", or a title prefix "title/" covering
	// every file of the title.
	Scope   string
	Expires time.Time
	// Client, when valid, restricts the token to clients inside the prefix.
	Client netip.Prefix
}

// Sign returns the token for g under the active key.
func (ks *KeySet) Sign(g Grant) (string, error) {
	secret, ok := ks.key(ks.Active)
	if !ok {
		return "", fmt.Errorf("active key %q: %w", ks.Active, ErrUnknownKey)
	}
	if err := ValidateScope(g.Scope); err != nil {
		return "", err
	}
	client := ""
	if g.Client.IsValid() {
		client = canonicalPrefix(g.Client).String()
	}
	payload := strings.Join([]string{"1", ks.Active, strconv.FormatInt(g.Expires.Unix(), 10), g.Scope, client}, "~")
	return b64.EncodeToString([]byte(payload)) + "." + b64.EncodeToString(mac(secret, payload)), nil
}

// b64 is strict so that every token has exactly one spelling: a token
// that decodes is the one Sign made.
var b64 = base64.RawURLEncoding.Strict()

// canonicalPrefix masks p and writes an IPv4-mapped IPv6 prefix as the
// IPv4 prefix it is, since Verify compares unmapped client addresses.
func canonicalPrefix(p netip.Prefix) netip.Prefix {
	p = p.Masked()
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p
}

// ValidateScope checks that scope is one file ("t0042/video_3000k.mp4") or
// one whole title ("t0042/", with the trailing slash).
func ValidateScope(scope string) error {
	if title, ok := strings.CutSuffix(scope, "/"); ok {
		if err := content.ValidatePath(title + "/x"); err != nil || title == "" {
			return fmt.Errorf("scope %q: a title scope is a title name followed by '/', such as t0042/", scope)
		}
		return nil
	}
	if err := content.ValidatePath(scope); err != nil {
		return fmt.Errorf("scope %q: want title/file or title/ (%v)", scope, err)
	}
	return nil
}

// Covers reports whether scope authorizes path: a file scope covers only
// that file; a title scope "t0042/" covers every valid path t0042/file and
// nothing else (not t00421/x, not t0042/../t0043/x).
func Covers(scope, path string) bool {
	if content.ValidatePath(path) != nil {
		return false
	}
	if title, ok := strings.CutSuffix(scope, "/"); ok {
		pt, _, _ := strings.Cut(path, "/")
		return pt == title
	}
	return path == scope
}

func mac(secret []byte, payload string) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(payload))
	return h.Sum(nil)[:macLen]
}

// Parse checks a token's signature and returns its grant without checking
// expiry, scope or client.
func (ks *KeySet) Parse(token string) (Grant, error) {
	if len(token) > maxTokenLen {
		return Grant{}, fmt.Errorf("%w: longer than %d bytes", ErrMalformed, maxTokenLen)
	}
	p64, m64, ok := strings.Cut(token, ".")
	if !ok {
		return Grant{}, fmt.Errorf("%w: no '.' between payload and signature", ErrMalformed)
	}
	raw, err := b64.DecodeString(p64)
	if err != nil {
		return Grant{}, fmt.Errorf("%w: payload is not base64url", ErrMalformed)
	}
	sig, err := b64.DecodeString(m64)
	if err != nil || len(sig) != macLen {
		return Grant{}, fmt.Errorf("%w: signature is not %d base64url bytes", ErrMalformed, macLen)
	}
	payload := string(raw)
	f := strings.Split(payload, "~")
	if len(f) != 5 || f[0] != "1" {
		return Grant{}, fmt.Errorf("%w: unknown payload layout", ErrMalformed)
	}
	secret, ok := ks.key(f[1])
	if !ok {
		return Grant{}, fmt.Errorf("key %q: %w", f[1], ErrUnknownKey)
	}
	if !hmac.Equal(sig, mac(secret, payload)) {
		return Grant{}, ErrBadSignature
	}
	// Only Sign's own spelling of each field is accepted, so a grant and
	// its token correspond one to one.
	exp, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil || strconv.FormatInt(exp, 10) != f[2] {
		return Grant{}, fmt.Errorf("%w: expiry %q", ErrMalformed, f[2])
	}
	if ValidateScope(f[3]) != nil {
		return Grant{}, fmt.Errorf("%w: scope %q", ErrMalformed, f[3])
	}
	g := Grant{Scope: f[3], Expires: time.Unix(exp, 0)}
	if f[4] != "" {
		if g.Client, err = netip.ParsePrefix(f[4]); err != nil || canonicalPrefix(g.Client).String() != f[4] {
			return Grant{}, fmt.Errorf("%w: client prefix %q", ErrMalformed, f[4])
		}
	}
	return g, nil
}

// Verify checks that token authorizes client to fetch path at now. A
// token restricted to a client prefix rejects an invalid client address.
func (ks *KeySet) Verify(token, path string, client netip.Addr, now time.Time) error {
	g, err := ks.Parse(token)
	if err != nil {
		return err
	}
	if !now.Before(g.Expires) {
		return fmt.Errorf("%w at %s", ErrExpired, g.Expires.UTC().Format(time.RFC3339))
	}
	if !Covers(g.Scope, path) {
		return ErrOutOfScope
	}
	if g.Client.IsValid() && !g.Client.Contains(client.Unmap()) {
		return ErrWrongClient
	}
	return nil
}
