package measure

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"slices"
)

// Browser reports. A page cannot be trusted the way an installed client
// is, so a report from a browser (a POST carrying an Origin header, which
// browsers add and pages cannot remove) must carry the context of a
// recipe the control plane issued, unchanged: the control plane signs
// every recipe's id and context (ContextSigKey), and the ingester checks
// the signature before it stores anything. The stored context then says
// ContextSourceKey: SourceBrowser, set by the ingester, never by the
// client; the signature itself is not stored.
const (
	ContextSigKey    = "sig"
	ContextSourceKey = "source"
	SourceBrowser    = "browser"
)

// ContextSigner signs recipe contexts and verifies them in reports: an
// HMAC-SHA256 over the recipe id and every key and value of the context.
// The first key signs; all verify, so keys can rotate.
type ContextSigner struct {
	keys [][]byte
}

// NewContextSigner returns a signer; each key must be at least 32 bytes.
func NewContextSigner(keys ...[]byte) (*ContextSigner, error) {
	if len(keys) == 0 {
		return nil, errors.New("measure: context signer: no key")
	}
	for _, k := range keys {
		if len(k) < 32 {
			return nil, errors.New("measure: context signer: a key is shorter than 32 bytes")
		}
	}
	return &ContextSigner{keys: slices.Clone(keys)}, nil
}

// Sign sets ctx[ContextSigKey] for recipe; ctx must not be nil.
func (s *ContextSigner) Sign(recipe string, ctx map[string]string) {
	delete(ctx, ContextSigKey)
	ctx[ContextSigKey] = base64.RawURLEncoding.EncodeToString(contextMAC(s.keys[0], recipe, ctx))
}

// Verify checks that ctx is the context the control plane issued with
// recipe: every key and value as signed, none added or removed. The
// error is a *FieldError naming the field.
func (s *ContextSigner) Verify(recipe string, ctx map[string]string) error {
	if len(ctx) == 0 {
		return invalid("context", "missing: a browser report must carry the context of the recipe it ran, as the control plane issued it")
	}
	sig, ok := ctx[ContextSigKey]
	if !ok || sig == "" {
		return invalid(`context["sig"]`, "missing: a browser report must carry its recipe's signed context unchanged")
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		return invalid(`context["sig"]`, "not a signature (base64url)")
	}
	for _, k := range s.keys {
		if hmac.Equal(got, contextMAC(k, recipe, ctx)) {
			return nil
		}
	}
	return invalid(`context["sig"]`, "does not match the recipe id and context the control plane issued: the context was changed, or the recipe is not one of ours")
}

// contextMAC is the MAC of recipe and ctx without its signature, over a
// length-prefixed encoding (so no choice of keys and values can make two
// contexts encode alike).
func contextMAC(key []byte, recipe string, ctx map[string]string) []byte {
	keys := make([]string, 0, len(ctx))
	for k := range ctx {
		if k != ContextSigKey {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	m := hmac.New(sha256.New, key)
	var b []byte
	put := func(s string) {
		b = binary.AppendUvarint(b[:0], uint64(len(s)))
		m.Write(b)
		m.Write([]byte(s))
	}
	put("ocdn recipe context v1")
	put(recipe)
	for _, k := range keys {
		put(k)
		put(ctx[k])
	}
	return m.Sum(nil)
}

// checkBrowser verifies a browser report's context with s (nil: this
// ingester signs none, so it takes no browser reports) and marks it.
func (s *ContextSigner) checkBrowser(r *Report) error {
	if s == nil {
		return invalid("context", "this control plane issues no signed recipes, so it takes no reports from browsers")
	}
	if err := s.Verify(r.Recipe, r.Context); err != nil {
		return err
	}
	if _, ok := r.Context[ContextSourceKey]; ok {
		// Signed recipes never carry it; the ingester alone sets it.
		return invalid(`context["source"]`, "reserved: set by the ingester for browser reports")
	}
	delete(r.Context, ContextSigKey)
	r.Context[ContextSourceKey] = SourceBrowser
	return nil
}

// checkInstalled handles the context of a report from an installed
// client (no Origin header): it may not claim to be a browser's, and the
// signature, unchecked here, is not stored.
func checkInstalled(r *Report) error {
	if _, ok := r.Context[ContextSourceKey]; ok {
		return invalid(`context["source"]`, "reserved: set by the ingester for browser reports")
	}
	delete(r.Context, ContextSigKey)
	return nil
}
