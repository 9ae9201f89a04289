package control

import (
	"net/url"
	"strings"
)

// queryValues sets vals[i] to the first value of keys[i] in a raw query
// string, exactly as url.ParseQuery(raw) followed by Values.Get would (a
// fuzz test checks), in one pass and without building the map: the
// steering hot path reads four keys from every request.
func queryValues(raw string, keys, vals []string) {
	clear(vals)
	var seen uint64 // keys beyond the 64th are never found
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		k, v, ok := queryPair(pair)
		if !ok {
			continue
		}
		for i, key := range keys {
			if k == key && i < 64 && seen&(1<<i) == 0 {
				vals[i], seen = v, seen|1<<i
			}
		}
	}
}

// queryPair splits key=value and unescapes both; ok is false for the pairs
// url.ParseQuery skips: empty ones, ones with a semicolon, and bad escapes.
func queryPair(pair string) (k, v string, ok bool) {
	if pair == "" {
		return "", "", false
	}
	escaped := false
	for i := 0; i < len(pair); i++ {
		switch pair[i] {
		case ';':
			return "", "", false
		case '%', '+':
			escaped = true
		}
	}
	k, v, _ = strings.Cut(pair, "=")
	if !escaped {
		return k, v, true
	}
	k, err1 := url.QueryUnescape(k)
	v, err2 := url.QueryUnescape(v)
	return k, v, err1 == nil && err2 == nil
}
