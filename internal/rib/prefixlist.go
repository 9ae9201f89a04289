package rib

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/netip"
	"strings"
)

// gzipMagic starts every gzip stream (RFC 1952 section 2.3.1).
var gzipMagic = []byte{0x1f, 0x8b}

// OpenMaybeGzip returns a reader of r's content, decompressed when r starts
// with the gzip magic bytes, so importers accept dumps as published (RIS
// and RouteViews ship them gzipped) or already unpacked.
func OpenMaybeGzip(r io.Reader) (io.Reader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(len(gzipMagic))
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("sniff compression: %w", err)
	}
	if !bytes.Equal(head, gzipMagic) {
		return br, nil
	}
	zr, err := gzip.NewReader(br)
	if err != nil {
		return nil, fmt.Errorf("open gzip: %w", err)
	}
	return zr, nil
}

// LoadPrefixList reads one prefix per line, optionally gzipped. Text from
// '#' to the end of a line is a comment; blank lines are ignored. Prefixes
// must be canonical (no host bits set). Errors name the line.
func LoadPrefixList(r io.Reader) ([]netip.Prefix, error) {
	rd, err := OpenMaybeGzip(r)
	if err != nil {
		return nil, fmt.Errorf("prefix list: %w", err)
	}
	sc := bufio.NewScanner(rd)
	var out []netip.Prefix
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if i := strings.IndexByte(text, '#'); i >= 0 {
			text = text[:i]
		}
		text = strings.TrimSpace(text)
		if text == "" {
			continue
		}
		p, err := netip.ParsePrefix(text)
		if err != nil {
			return nil, fmt.Errorf("prefix list: line %d: %w", line, err)
		}
		if err := (Route{Prefix: p}).Validate(); err != nil {
			return nil, fmt.Errorf("prefix list: line %d: %w", line, err)
		}
		out = append(out, p)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("prefix list: after %d prefixes: %w", len(out), err)
	}
	return out, nil
}
