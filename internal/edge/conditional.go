package edge

// Conditional requests (RFC 9110 §13). Objects carry one validator, the
// strong ETag "<sha256>" of their content. They deliberately carry no
// Last-Modified: the file's mtime is the time this appliance filled it,
// which differs between the appliances of a cluster that a client fails
// over between, so a date validator would be inconsistent where the hash
// is not. Consequences, all as RFC 9110 prescribes for a representation
// without a modification date:
//   - If-Modified-Since and If-Unmodified-Since are ignored;
//   - If-Range with a date never matches, so the full 200 is sent.

// etagList reports whether the If-Match / If-None-Match value list matches
// etag ("*" matches anything). weak selects the weak comparison (W/ prefixes
// ignored) used by If-None-Match; the strong one used by If-Match never
// matches a weak tag.
func etagList(list, etag string, weak bool) bool {
	for {
		list = trimOWS(list)
		if list == "" {
			return false
		}
		if list[0] == ',' {
			list = list[1:]
			continue
		}
		if list[0] == '*' {
			return true
		}
		tag, rest, ok := scanETag(list)
		if !ok {
			return false // malformed: stop, as if nothing matched
		}
		if isWeak(tag) {
			if weak && tag[2:] == etag {
				return true
			}
		} else if tag == etag {
			return true
		}
		list = rest
	}
}

func isWeak(tag string) bool { return len(tag) >= 2 && tag[0] == 'W' && tag[1] == '/' }

// scanETag reads one entity-tag (RFC 9110 §8.8.3) from the start of s.
func scanETag(s string) (tag, rest string, ok bool) {
	start := 0
	if isWeak(s) {
		start = 2
	}
	if len(s) <= start || s[start] != '"' {
		return "", "", false
	}
	for i := start + 1; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			return s[:i+1], s[i+1:], true
		case c == 0x21 || (c >= 0x23 && c != 0x7f):
			// etagc, including obs-text
		default:
			return "", "", false
		}
	}
	return "", "", false
}

// ifRangeMatches evaluates If-Range (RFC 9110 §13.1.5): an entity-tag
// matches only by strong comparison; a date never matches because objects
// have no Last-Modified.
func ifRangeMatches(v, etag string) bool {
	if v == "" {
		return true
	}
	tag, rest, ok := scanETag(v)
	if !ok || trimOWS(rest) != "" || isWeak(tag) {
		return false
	}
	return tag == etag
}
