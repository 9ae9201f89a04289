// Package urlsign provides the tokens that authorize a content URL: a
// signature over a path scope (one file, or every file of a title), an
// expiry, a key id and optionally a client prefix. The token is one URL path
// segment (/c/{token}/{title}/{file}) so that relative URLs inside HLS and
// DASH playlists served under the same token keep working.
//
// Two kinds of key sign tokens. An Ed25519 key (the default of `ocdn
// urlsign keygen`) is asymmetric: the control plane holds the private key
// and appliances only the public one (KeySet.Public), so a compromised
// appliance cannot mint tokens. An HMAC-SHA256 key is shared by signer and
// verifiers; it is cheaper and stays available. Verifying an Ed25519
// signature costs tens of microseconds; the edge caches the grants of
// tokens that verified (a title's token is shared by every client steered
// to the title), so only a token's first request pays for it.
package urlsign

import (
	"bytes"
	"crypto/ed25519"
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

// Key algorithms.
const (
	AlgHMAC    = "hmac-sha256"
	AlgEd25519 = "ed25519"
)

// Key is one signing key (byte fields are base64 in JSON).
type Key struct {
	ID string `json:"id"`
	// Alg is AlgHMAC (the default when empty) or AlgEd25519.
	Alg string `json:"alg,omitempty"`
	// Secret is an HMAC key: signer and verifiers hold it.
	Secret []byte `json:"secret,omitempty"`
	// Private is an Ed25519 seed (32 bytes), held by the signer only;
	// Public is its public key, which is all a verifier needs.
	Private []byte `json:"private,omitempty"`
	Public  []byte `json:"public,omitempty"`
}

func (k Key) alg() string {
	if k.Alg == "" {
		return AlgHMAC
	}
	return k.Alg
}

// canSign reports whether the key holds what signing needs.
func (k Key) canSign() bool {
	if k.alg() == AlgEd25519 {
		return len(k.Private) == ed25519.SeedSize
	}
	return len(k.Secret) >= 32
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
		switch k.alg() {
		case AlgHMAC:
			if len(k.Secret) < 32 {
				return fmt.Errorf("keys[%d].secret: %d bytes; at least 32 are needed", i, len(k.Secret))
			}
			if k.Private != nil || k.Public != nil {
				return fmt.Errorf("keys[%d]: an %s key has a secret, not private or public", i, AlgHMAC)
			}
		case AlgEd25519:
			if len(k.Public) != ed25519.PublicKeySize {
				return fmt.Errorf("keys[%d].public: %d bytes; an Ed25519 public key has %d", i, len(k.Public), ed25519.PublicKeySize)
			}
			if k.Private != nil {
				if len(k.Private) != ed25519.SeedSize {
					return fmt.Errorf("keys[%d].private: %d bytes; an Ed25519 seed has %d", i, len(k.Private), ed25519.SeedSize)
				}
				if !bytes.Equal(ed25519.NewKeyFromSeed(k.Private).Public().(ed25519.PublicKey), k.Public) {
					return fmt.Errorf("keys[%d]: public is not the public key of private", i)
				}
			}
			if k.Secret != nil {
				return fmt.Errorf("keys[%d]: an %s key has private and public, not a secret", i, AlgEd25519)
			}
		default:
			return fmt.Errorf("keys[%d].alg: %q is not %s or %s", i, k.Alg, AlgEd25519, AlgHMAC)
		}
	}
	if !seen[ks.Active] {
		return fmt.Errorf("active: %q is not one of the keys", ks.Active)
	}
	return nil
}

// Public is the key set a verifier needs: Ed25519 keys without their
// private halves. HMAC keys are kept whole (a verifier needs the secret,
// which is why Ed25519 is the default).
func (ks *KeySet) Public() *KeySet {
	out := &KeySet{Active: ks.Active, Keys: make([]Key, len(ks.Keys))}
	for i, k := range ks.Keys {
		if k.alg() == AlgEd25519 {
			k.Private = nil
		}
		out.Keys[i] = k
	}
	return out
}

// CanSign reports whether the active key can sign (a verifier's public
// set cannot).
func (ks *KeySet) CanSign() bool {
	k, ok := ks.find(ks.Active)
	return ok && k.canSign()
}

func (ks *KeySet) find(id string) (Key, bool) {
	for _, k := range ks.Keys {
		if k.ID == id {
			return k, true
		}
	}
	return Key{}, false
}

// NewKey makes a random 32-byte HMAC key.
func NewKey(id string) Key {
	k := Key{ID: id, Secret: make([]byte, 32)}
	rand.Read(k.Secret)
	return k
}

// NewEd25519Key makes a fresh Ed25519 key pair.
func NewEd25519Key(id string) Key {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return Key{ID: id, Alg: AlgEd25519, Private: priv.Seed(), Public: pub}
}

// NewKeyLike makes a fresh key of the same algorithm as k (rotation keeps
// the algorithm).
func NewKeyLike(k Key, id string) Key {
	if k.alg() == AlgEd25519 {
		return NewEd25519Key(id)
	}
	return NewKey(id)
}

// Generate makes a key set with one fresh active HMAC key.
func Generate() *KeySet {
	id := "k" + strconv.FormatInt(time.Now().Unix(), 36)
	return &KeySet{Active: id, Keys: []Key{NewKey(id)}}
}

// GenerateEd25519 makes a key set with one fresh active Ed25519 key.
func GenerateEd25519() *KeySet {
	id := "k" + strconv.FormatInt(time.Now().Unix(), 36)
	return &KeySet{Active: id, Keys: []Key{NewEd25519Key(id)}}
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
	// Experiment and Arm name the experiment arm the steered client is
	// in, and CongestionControl the TCP congestion control that arm
	// serves with ("" for the appliance's default), so the appliance
	// needs no lookup. All three are empty outside an experiment; each
	// is at most 64 bytes of letters, digits, '-', '_' and '.'.
	Experiment        string
	Arm               string
	CongestionControl string
}

// tagged reports whether g carries experiment fields, which extend the
// payload from five fields to eight.
func (g Grant) tagged() bool {
	return g.Experiment != "" || g.Arm != "" || g.CongestionControl != ""
}

// validateTag checks one experiment field of a grant.
func validateTag(field, v string) error {
	if len(v) > 64 {
		return fmt.Errorf("%s: %d bytes, at most 64", field, len(v))
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("%s: byte %d is %q, want letters, digits, '-', '_' or '.'", field, i, c)
		}
	}
	return nil
}

func (g Grant) validateTags() error {
	if err := validateTag("experiment", g.Experiment); err != nil {
		return err
	}
	if err := validateTag("arm", g.Arm); err != nil {
		return err
	}
	return validateTag("congestion_control", g.CongestionControl)
}

// Payload layouts: the first field says how the token is signed.
const (
	layoutHMAC    = "1"
	layoutEd25519 = "2"
)

// Sign returns the token for g under the active key.
func (ks *KeySet) Sign(g Grant) (string, error) {
	k, ok := ks.find(ks.Active)
	if !ok {
		return "", fmt.Errorf("active key %q: %w", ks.Active, ErrUnknownKey)
	}
	if !k.canSign() {
		return "", fmt.Errorf("active key %q holds no private key: a verifier's key set cannot sign", ks.Active)
	}
	if err := ValidateScope(g.Scope); err != nil {
		return "", err
	}
	client := ""
	if g.Client.IsValid() {
		client = canonicalPrefix(g.Client).String()
	}
	layout := layoutHMAC
	if k.alg() == AlgEd25519 {
		layout = layoutEd25519
	}
	if err := g.validateTags(); err != nil {
		return "", err
	}
	fields := []string{layout, ks.Active, strconv.FormatInt(g.Expires.Unix(), 10), g.Scope, client}
	if g.tagged() {
		// Only tagged tokens carry the three extra fields, so tokens
		// signed before they existed stay valid and keep one spelling.
		fields = append(fields, g.Experiment, g.Arm, g.CongestionControl)
	}
	payload := strings.Join(fields, "~")
	var sig []byte
	if layout == layoutEd25519 {
		sig = ed25519.Sign(ed25519.NewKeyFromSeed(k.Private), []byte(payload))
	} else {
		sig = mac(k.Secret, payload)
	}
	return b64.EncodeToString([]byte(payload)) + "." + b64.EncodeToString(sig), nil
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
	if err != nil {
		return Grant{}, fmt.Errorf("%w: signature is not base64url", ErrMalformed)
	}
	payload := string(raw)
	f := strings.Split(payload, "~")
	if (len(f) != 5 && len(f) != 8) || (f[0] != layoutHMAC && f[0] != layoutEd25519) {
		return Grant{}, fmt.Errorf("%w: unknown payload layout", ErrMalformed)
	}
	k, ok := ks.find(f[1])
	if !ok {
		return Grant{}, fmt.Errorf("key %q: %w", f[1], ErrUnknownKey)
	}
	switch {
	case f[0] == layoutHMAC && k.alg() == AlgHMAC:
		if len(sig) != macLen {
			return Grant{}, fmt.Errorf("%w: signature is not %d base64url bytes", ErrMalformed, macLen)
		}
		if !hmac.Equal(sig, mac(k.Secret, payload)) {
			return Grant{}, ErrBadSignature
		}
	case f[0] == layoutEd25519 && k.alg() == AlgEd25519:
		if len(sig) != ed25519.SignatureSize {
			return Grant{}, fmt.Errorf("%w: signature is not %d base64url bytes", ErrMalformed, ed25519.SignatureSize)
		}
		if !ed25519.Verify(k.Public, raw, sig) {
			return Grant{}, ErrBadSignature
		}
	default:
		// A token must be signed the way its key signs: an HMAC token
		// naming an Ed25519 key (whose public half anyone may know) is
		// never accepted.
		return Grant{}, fmt.Errorf("%w: layout %s does not match key %q (%s)", ErrBadSignature, f[0], k.ID, k.alg())
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
	if len(f) == 8 {
		g.Experiment, g.Arm, g.CongestionControl = f[5], f[6], f[7]
		// An eight-field payload with no tag is not Sign's spelling.
		if !g.tagged() {
			return Grant{}, fmt.Errorf("%w: empty experiment fields", ErrMalformed)
		}
		if err := g.validateTags(); err != nil {
			return Grant{}, fmt.Errorf("%w: %v", ErrMalformed, err)
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
