// Package dnsname provides the DNS names of appliances: one stable
// hostname per appliance and address family under the CDN's domain, and
// the unique per-probe names beneath them that let the authoritative
// server tell which resolver asked on behalf of which probe.
//
// The scheme (docs/dns.md):
//
//	ipv4-<id>-<site>.<domain>            A    the appliance's IPv4 address
//	ipv6-<id>-<site>.<domain>            AAAA the appliance's IPv6 address
//	p-<nonce>.ipv4-<id>-<site>.<domain>  A    the same address, one name per probe
//
// <id> and <site> are the inventory's appliance and site ids mapped to
// label characters by Label: ASCII letters are lowercased, letters and
// digits are kept, every other character becomes '-', and hyphens at
// either end are dropped. The mapping is not one-to-one ("a_1" and "A.1"
// both become "a-1"), so config validation rejects two appliances whose
// names collide. A name exists only for a family the appliance has an
// address in.
//
// Only the leaf packages may depend on this one: it imports nothing of
// ocdn's.
package dnsname

import (
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
)

// Family is an address family, the first part of an appliance's name.
type Family uint8

// The families an appliance may have an address in.
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

func (f Family) String() string {
	switch f {
	case IPv4:
		return "ipv4"
	case IPv6:
		return "ipv6"
	}
	return fmt.Sprintf("family(%d)", uint8(f))
}

// Limits from RFC 1035 §2.3.4: a label holds at most 63 octets, a name
// (in text, without the root's trailing dot) at most 253.
const (
	MaxLabel = 63
	MaxName  = 253
)

// Nonce lengths accepted in a probe label.
const (
	MinNonce = 8
	MaxNonce = 32
)

// probePrefix starts every probe label. No appliance label starts with it
// (those start with "ipv4-" or "ipv6-"), so the two never collide.
const probePrefix = "p-"

// Label maps an inventory id to label characters: letters lowercased,
// letters and digits kept, anything else '-', hyphens trimmed from both
// ends. It returns "" when nothing is left.
func Label(id string) string {
	var b strings.Builder
	b.Grow(len(id))
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case r >= 'A' && r <= 'Z':
			b.WriteRune(r + ('a' - 'A'))
		default:
			b.WriteByte('-')
		}
	}
	return strings.Trim(b.String(), "-")
}

// Appliance is the hostname of appliance id at site for family, under
// domain (in canonical form, see Domain). It fails when an id maps to no
// label characters or the name would break a DNS length limit, naming
// which.
func Appliance(domain, id, site string, f Family) (string, error) {
	if f != IPv4 && f != IPv6 {
		return "", fmt.Errorf("%s is not ipv4 or ipv6", f)
	}
	li, ls := Label(id), Label(site)
	if li == "" {
		return "", fmt.Errorf("appliance id %q has no letter or digit to make a DNS label of", id)
	}
	if ls == "" {
		return "", fmt.Errorf("site id %q has no letter or digit to make a DNS label of", site)
	}
	label := f.String() + "-" + li + "-" + ls
	if len(label) > MaxLabel {
		return "", fmt.Errorf("the DNS label %s of appliance %q at site %q is %d characters long, above the limit of %d: shorten the ids", label, id, site, len(label), MaxLabel)
	}
	name := label + "." + domain
	if len(name) > MaxName {
		return "", fmt.Errorf("the DNS name %s of appliance %q is %d characters long, above the limit of %d: shorten the domain or the ids", name, id, len(name), MaxName)
	}
	return name, nil
}

// Domain checks a CDN domain and returns it in canonical form: lower
// case, without the root's trailing dot. Every label must be letters,
// digits and hyphens (not at either end), 1 to 63 long; room is left for
// the longest appliance label beneath it.
func Domain(domain string) (string, error) {
	d := strings.ToLower(strings.TrimSuffix(domain, "."))
	if d == "" {
		return "", errors.New("is empty; want a domain such as cdn.example.net")
	}
	if len(d)+1+MaxLabel > MaxName {
		return "", fmt.Errorf("%q is %d characters long; at most %d leaves room for appliance names beneath it", domain, len(d), MaxName-1-MaxLabel)
	}
	if err := checkHostname(d); err != nil {
		return "", fmt.Errorf("%q: %w", domain, err)
	}
	return d, nil
}

// Hostname checks a host name (a name server's) and returns it in
// canonical form, like Domain.
func Hostname(name string) (string, error) {
	n := strings.ToLower(strings.TrimSuffix(name, "."))
	if n == "" {
		return "", errors.New("is empty")
	}
	if len(n) > MaxName {
		return "", fmt.Errorf("%q is longer than %d characters", name, MaxName)
	}
	if err := checkHostname(n); err != nil {
		return "", fmt.Errorf("%q: %w", name, err)
	}
	return n, nil
}

func checkHostname(n string) error {
	for l := range strings.SplitSeq(n, ".") {
		switch {
		case l == "":
			return errors.New("has an empty label")
		case len(l) > MaxLabel:
			return fmt.Errorf("label %q is longer than %d characters", l, MaxLabel)
		case l[0] == '-' || l[len(l)-1] == '-':
			return fmt.Errorf("label %q starts or ends with a hyphen", l)
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("label %q has %q; labels are letters, digits and hyphens", l, c)
			}
		}
	}
	return nil
}

// InZone reports whether canonical name n is zone or beneath it.
func InZone(n, zone string) bool {
	return n == zone || (len(n) > len(zone) && strings.HasSuffix(n, zone) && n[len(n)-len(zone)-1] == '.')
}

// NewNonce returns a fresh probe nonce: 16 characters of [a-z2-7]
// (80 random bits), so that two probes never share a name and a resolver
// cache never answers for the authoritative server.
func NewNonce() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	var b [16]byte
	rand.Read(b[:])
	for i := range b {
		b[i] = alphabet[b[i]&31]
	}
	return string(b[:])
}

// Probe is the unique name of one probe of the appliance named name.
func Probe(nonce, name string) (string, error) {
	if !ValidNonce(nonce) {
		return "", fmt.Errorf("probe nonce %q is not %d to %d letters and digits", nonce, MinNonce, MaxNonce)
	}
	n := probePrefix + nonce + "." + name
	if len(n) > MaxName {
		return "", fmt.Errorf("probe name %s is longer than %d characters", n, MaxName)
	}
	return n, nil
}

// SplitProbe splits canonical name n into a probe nonce and the name
// beneath it; ok is false when n's first label is not a probe label.
func SplitProbe(n string) (nonce, rest string, ok bool) {
	first, rest, found := strings.Cut(n, ".")
	if !found || !strings.HasPrefix(first, probePrefix) {
		return "", "", false
	}
	nonce = first[len(probePrefix):]
	if !ValidNonce(nonce) {
		return "", "", false
	}
	return nonce, rest, true
}

// ValidNonce reports whether s is a probe nonce: MinNonce to MaxNonce
// lower-case ASCII letters and digits.
func ValidNonce(s string) bool {
	if len(s) < MinNonce || len(s) > MaxNonce {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
