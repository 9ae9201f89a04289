package measure

import (
	"context"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

type joiner struct {
	calls atomic.Int32
	log   map[string]ResolverJoin
}

func (j *joiner) JoinResolver(client netip.Addr, nonce string) (ResolverJoin, bool) {
	j.calls.Add(1)
	r, ok := j.log[nonce]
	return r, ok
}

// A dns pulse is joined with the authoritative server's log by nonce at
// ingest, and the join lands in the pulse's row with its family and
// resolution time; a nonce the server never saw leaves the columns empty.
func TestIngestJoinsResolverByNonce(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 12, 6, 3, 30, 0, 0, time.UTC)
	j := &joiner{log: map[string]ResolverJoin{
		"abcdefgh23456789": {Resolver: "198.51.100.53", ResolverASN: 64500, ECS: "198.51.100.0/24", Distance: DistanceSameAS, Queries: 1},
	}}
	in, err := Open(dir, nil, Options{Now: func() time.Time { return now }, Resolvers: j})
	if err != nil {
		t.Fatal(err)
	}
	rep := &Report{ID: "0123456789abcdef", Recipe: "r", ClientTime: now, Pulses: []Pulse{
		{Target: "a", Appliance: "a", Type: TypeDNS, Start: now, DNSMs: 3.5, Nonce: "abcdefgh23456789", Family: FamilyIPv6,
			ConnectMs: 1, TTFBMs: 2, DurationMs: 7, Status: StatusOK},
		{Target: "a", Appliance: "a", Type: TypeDNS, Seq: 1, Start: now, DNSMs: 4, Nonce: "zzzzzzzz22222222", Family: FamilyIPv4,
			DurationMs: 7, Status: StatusOK},
		{Target: "a", Appliance: "a", Type: TypeTCPConnect, Seq: 2, Start: now, ConnectMs: 1, DurationMs: 1, Family: FamilyIPv4, Status: StatusOK},
	}}
	if _, err := in.Ingest(context.Background(), testClient, rep); err != nil {
		t.Fatal(err)
	}
	if err := in.Close(); err != nil {
		t.Fatal(err)
	}
	if n := j.calls.Load(); n != 2 {
		t.Errorf("JoinResolver called %d times, want once per dns nonce (2)", n)
	}
	rows := readTable[PulseRow](t, dir, "pulses")
	if len(rows) != 3 {
		t.Fatalf("%d rows, want 3", len(rows))
	}
	got := map[int32]PulseRow{}
	for _, r := range rows {
		got[r.Seq] = r
	}
	r0 := got[0]
	if r0.Family != FamilyIPv6 || r0.DNSMs == nil || *r0.DNSMs != 3.5 || r0.Nonce != "abcdefgh23456789" ||
		r0.Resolver != "198.51.100.53" || r0.ResolverASN != 64500 || r0.ECS != "198.51.100.0/24" || r0.ResolverDistance != DistanceSameAS {
		t.Errorf("joined row = %+v", r0)
	}
	if r1 := got[1]; r1.Resolver != "" || r1.ResolverDistance != "" || r1.Nonce != "zzzzzzzz22222222" {
		t.Errorf("unjoined row = %+v, want the nonce and no resolver", r1)
	}
	if r2 := got[2]; r2.Family != FamilyIPv4 || r2.DNSMs != nil {
		t.Errorf("connect row = %+v", r2)
	}
}

func TestValidateFamilyAndNonce(t *testing.T) {
	now := time.Date(2026, 12, 6, 3, 30, 0, 0, time.UTC)
	for _, tc := range []struct {
		mutate func(*Pulse)
		want   string // "" = valid
	}{
		{func(p *Pulse) {}, ""},
		{func(p *Pulse) { p.Family = "ipv5" }, "pulses[0].family"},
		{func(p *Pulse) { p.Nonce = "SHOUTING1234" }, "pulses[0].nonce"},
		{func(p *Pulse) { p.Nonce = "short" }, "pulses[0].nonce"},
		{func(p *Pulse) { p.Nonce = "" }, "pulses[0].nonce"},
		{func(p *Pulse) { p.Nonce, p.Status = "", StatusTimeout }, ""},
		{func(p *Pulse) { p.DNSMs = -1 }, "pulses[0].dns_ms"},
	} {
		p := Pulse{Target: "a", Type: TypeDNS, Start: now, Nonce: "abcdefgh", DNSMs: 1, Family: FamilyIPv4, Status: StatusOK}
		tc.mutate(&p)
		r := &Report{ID: "0123456789abcdef", Recipe: "r", ClientTime: now, Pulses: []Pulse{p}}
		err := r.Validate(now)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("Validate(%+v) = %v, want valid", p, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("Validate(%+v) = %v, want an error naming %s", p, err, tc.want)
		}
	}
}
