// Package dns provides ocdn's authoritative DNS server for the CDN
// domain: A and AAAA records for every appliance's per-family name
// (package dnsname has the scheme), SOA and NS at the zone's apex, and a
// log of the queries for per-probe names, so the measurement side can
// learn which resolver a client uses and whether it passes on the
// client's subnet. It is built on github.com/miekg/dns's message types;
// the serving loops are its own, so that one function turns a query's
// bytes into its reply's bytes (fuzzed as such), UDP is answered without
// a goroutine per packet, and TCP connections are bounded in number and
// time.
//
// What a query gets (docs/dns.md has the reasoning):
//
//	query                                   reply
//	shorter than a header, or a response    nothing (counted as dropped)
//	unparseable, not one question           FORMERR
//	opcode other than QUERY                 NOTIMP
//	EDNS version above 0                    BADVERS
//	malformed EDNS Client Subnet            FORMERR
//	two OPT records                         FORMERR
//	class other than IN, name outside zone  REFUSED (authoritative only, no recursion)
//	AXFR, IXFR                              REFUSED (the zone is the inventory)
//	type OPT                                FORMERR
//	apex SOA (or ANY)                       the SOA
//	apex NS                                 the NS records, in-zone name servers' addresses as additional
//	an appliance's name, A or AAAA          its address, TTL dns.ttl (default 30s)
//	an appliance's name, other type         NODATA: the SOA in authority, TTL dns.negative_ttl
//	ANY                                     one RRset (RFC 8482)
//	p-<nonce>.<appliance name>              as the appliance's name, owned by the probe name; logged
//	any other name in the zone              NXDOMAIN, the SOA in authority
//
// Health does not change the answers: an appliance out of steering keeps
// its records. Steering hands out URLs, not DNS answers, and never lists
// an appliance out of steering; the names must keep resolving for the
// clients still streaming from a draining appliance, for turn-up checks,
// peer fill and operators, and a withdrawn name would be cached as
// NXDOMAIN by resolvers for longer than a failover takes.
//
// Every reply to a query with EDNS carries an OPT record (payload size
// MaxUDPSize, the DO bit copied) and echoes the client subnet with scope
// 0: the answers are the same for every client. UDP replies larger than
// the client's payload size (512 without EDNS) are truncated with TC set.
// A query's case is echoed in the question (resolvers using 0x20 check
// it); answers use the zone's lower-case names.
package dns
