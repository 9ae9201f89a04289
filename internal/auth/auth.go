// Package auth provides the credentials between ocdn's parts: appliance
// tokens (an HMAC-SHA256 over the appliance id and an expiry under a
// control-plane secret, sent as "Authorization: Bearer"), checked without
// any per-appliance state, and constant-time operator token comparison.
package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Errors of Verify.
var (
	ErrMissing   = errors.New("no bearer token")
	ErrMalformed = errors.New("malformed token")
	ErrSignature = errors.New("bad token signature")
	ErrExpired   = errors.New("token expired")
)

// Secret signs appliance tokens. Its String never shows the bytes, so a
// logged config does not leak it.
type Secret []byte

func (Secret) String() string { return "[secret]" }

// NewSecret returns 32 random bytes.
func NewSecret() Secret {
	b := make([]byte, 32)
	rand.Read(b)
	return b
}

var b64 = base64.RawURLEncoding

// ParseSecret reads a secret file's contents: one line of standard base64
// holding at least 32 bytes.
func ParseSecret(text []byte) (Secret, error) {
	sec, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(text)))
	if err != nil || len(sec) < 32 {
		return nil, errors.New("want one line of base64 holding at least 32 bytes (make one with: head -c 32 /dev/urandom | base64)")
	}
	return sec, nil
}

// Encode is the secret as a secret file holds it.
func (s Secret) Encode() string { return base64.StdEncoding.EncodeToString(s) + "\n" }

// Mint returns a token for appliance id valid until exp.
func (s Secret) Mint(id string, exp time.Time) string {
	payload := id + "~" + strconv.FormatInt(exp.Unix(), 10)
	return "at1." + b64.EncodeToString([]byte(payload)) + "." + b64.EncodeToString(s.mac(payload))
}

func (s Secret) mac(payload string) []byte {
	h := hmac.New(sha256.New, s)
	h.Write([]byte("ocdn appliance token\x00" + payload))
	return h.Sum(nil)
}

// Verify checks a token and returns the appliance id it names.
func (s Secret) Verify(token string, now time.Time) (string, error) {
	if len(token) > 512 {
		return "", ErrMalformed
	}
	rest, ok := strings.CutPrefix(token, "at1.")
	if !ok {
		return "", ErrMalformed
	}
	p64, m64, ok := strings.Cut(rest, ".")
	if !ok {
		return "", ErrMalformed
	}
	payload, err1 := b64.DecodeString(p64)
	mac, err2 := b64.DecodeString(m64)
	if err1 != nil || err2 != nil {
		return "", ErrMalformed
	}
	if !hmac.Equal(mac, s.mac(string(payload))) {
		return "", ErrSignature
	}
	id, exp, ok := strings.Cut(string(payload), "~")
	e, err := strconv.ParseInt(exp, 10, 64)
	if !ok || err != nil || id == "" {
		return "", ErrMalformed
	}
	if !now.Before(time.Unix(e, 0)) {
		return "", fmt.Errorf("%w at %s", ErrExpired, time.Unix(e, 0).UTC().Format(time.RFC3339))
	}
	return id, nil
}

// Bearer returns the request's bearer token.
func Bearer(r *http.Request) (string, error) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return "", ErrMissing
	}
	return tok, nil
}

// Equal compares an offered token with the expected one in constant time;
// an empty expected token matches nothing.
func Equal(got, want string) bool {
	return want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}
