package rib

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
)

// File formats ReadRoutes recognizes.
const (
	FormatPrefixList = "prefix-list"
	FormatMRT        = "mrt"
)

// ReadRoutes reads a global route table from a plain prefix list or an MRT
// file (TABLE_DUMP_V2 RIB or BGP4MP updates), gzipped or not, telling them
// apart by content. An MRT file may hold several peers' paths to a prefix;
// the best one by Compare is kept, so the result has one route a prefix.
// Prefix-list routes carry no attributes beyond the default local-pref.
func ReadRoutes(r io.Reader) ([]Route, string, error) {
	rd, err := OpenMaybeGzip(r)
	if err != nil {
		return nil, "", err
	}
	br := bufio.NewReader(rd)
	head, _ := br.Peek(64)
	if looksLikeText(head) {
		prefixes, err := LoadPrefixList(br)
		if err != nil {
			return nil, FormatPrefixList, err
		}
		out := make([]Route, len(prefixes))
		for i, p := range prefixes {
			out[i] = Route{Prefix: p, Attrs: Attrs{LocalPref: 100}}
		}
		return out, FormatPrefixList, nil
	}
	all, err := LoadMRT(br)
	if err != nil {
		return nil, FormatMRT, err
	}
	best := make(map[netip.Prefix]int, len(all))
	out := all[:0:0]
	for _, rt := range all {
		if i, ok := best[rt.Prefix]; !ok {
			best[rt.Prefix] = len(out)
			out = append(out, rt)
		} else if Compare(rt, out[i]) < 0 {
			out[i] = rt
		}
	}
	if len(out) == 0 {
		return nil, FormatMRT, fmt.Errorf("mrt: no routes in %d bytes", len(head))
	}
	return out, FormatMRT, nil
}

// looksLikeText reports whether b is printable ASCII with line breaks, as
// a prefix list is; MRT starts with a binary timestamp and type.
func looksLikeText(b []byte) bool {
	if len(b) == 0 {
		return true
	}
	for _, c := range b {
		if c != '\n' && c != '\r' && c != '\t' && (c < 0x20 || c > 0x7e) {
			return false
		}
	}
	return true
}
