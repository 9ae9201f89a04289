package config

import (
	"fmt"
	"net/url"
	"strings"
	"time"
)

// CORS lets web pages of other origins use a daemon's HTTP API from a
// browser (a player page fetching byte ranges from appliances, a speed
// test, a probe). It only tells browsers what they may read: tokens still
// decide access. Without a cors section no CORS header is sent and
// preflights are refused, as before.
type CORS struct {
	// AllowedOrigins are the page origins allowed, each scheme://host or
	// scheme://host:port exactly as a browser sends it in Origin (no
	// path, no trailing slash), or the single entry "*" for any origin.
	AllowedOrigins []string `yaml:"allowed_origins,omitempty"`
	// ExposedHeaders are the response headers a page may read besides the
	// CORS-safelisted ones (default Content-Range, Content-Length, ETag,
	// Accept-Ranges and X-Ocdn-Appliance, the serving appliance's id).
	ExposedHeaders []string `yaml:"exposed_headers,omitempty"`
	// MaxAge is how long a browser may cache a preflight answer (default
	// 10m; at most 24h, and browsers cap it lower: Chromium at 2h).
	MaxAge time.Duration `yaml:"max_age,omitempty"`
}

// MaxCORSMaxAge bounds cors.max_age.
const MaxCORSMaxAge = 24 * time.Hour

// validate checks the section; field is its name in the file ("cors").
func (c *CORS) validate(field string) error {
	if c == nil {
		return nil
	}
	if len(c.AllowedOrigins) == 0 {
		return Errf(field+".allowed_origins", `must list at least one origin (such as "https://player.example.com") or "*"`)
	}
	seen := map[string]bool{}
	for i, o := range c.AllowedOrigins {
		f := fmt.Sprintf("%s.allowed_origins[%d]", field, i)
		if o == "*" {
			if len(c.AllowedOrigins) > 1 {
				return Errf(f, `"*" allows every origin: list it alone`)
			}
			continue
		}
		if err := ValidOrigin(o); err != nil {
			return Errf(f, "%v", err)
		}
		if seen[o] {
			return Errf(f, "%q listed twice", o)
		}
		seen[o] = true
	}
	for i, h := range c.ExposedHeaders {
		if !isToken(h) {
			return Errf(fmt.Sprintf("%s.exposed_headers[%d]", field, i), "%q is not a header name", h)
		}
	}
	if c.MaxAge < 0 || c.MaxAge > MaxCORSMaxAge || c.MaxAge%time.Second != 0 {
		return Errf(field+".max_age", "%s is not a whole number of seconds from 0 to %s", c.MaxAge, MaxCORSMaxAge)
	}
	return nil
}

// ValidOrigin checks that o is a web origin as browsers serialize it in
// the Origin header (RFC 6454): a lowercase http or https scheme and
// host, an optional port other than the scheme's default, nothing else.
// A listed origin must match the header byte for byte, so anything a
// browser would never send is an error rather than an entry that never
// matches.
func ValidOrigin(o string) error {
	u, err := url.Parse(o)
	switch {
	case err != nil:
		return fmt.Errorf("%q is not a URL: %v", o, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%q: the scheme must be http or https", o)
	case u.Host == "" || u.Opaque != "":
		return fmt.Errorf("%q has no host", o)
	case u.User != nil, u.Path != "", u.RawQuery != "", u.Fragment != "", u.ForceQuery, strings.HasSuffix(o, "#"):
		return fmt.Errorf("%q: an origin is scheme://host[:port], without user, path (not even /), query or fragment", o)
	case strings.ToLower(o) != o:
		return fmt.Errorf("%q: browsers send origins in lowercase", o)
	case (u.Scheme == "http" && u.Port() == "80") || (u.Scheme == "https" && u.Port() == "443"):
		return fmt.Errorf("%q: browsers leave out the default port; write %s://%s", o, u.Scheme, u.Hostname())
	case strings.HasSuffix(u.Host, ":"):
		return fmt.Errorf("%q: empty port", o)
	}
	return nil
}

// isToken reports whether s is an HTTP token (RFC 9110 §5.6.2), the
// shape of a header name.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}
