package measure

import (
	"errors"
	"fmt"
	"math"
	"time"
	"unicode/utf8"

	"github.com/ocdn/ocdn/internal/dnsname"
)

// Bounds on a report. They keep one upload small (a report is at most a
// few hundred kilobytes of JSON), and every stored string short enough to
// be a Parquet dictionary entry rather than a blob.
const (
	MaxPulses      = 1000
	MaxStringBytes = 256
	MaxContextKeys = 32
	MaxServedBy    = 64
	MinIDBytes     = 16
	// MaxFutureSkew is how far ahead of the server's clock a client_time
	// or pulse start may be: client clocks drift, but a report from the
	// future is a broken clock or a forgery and would land in a partition
	// that analyses think is not yet written.
	MaxFutureSkew = 5 * time.Minute
	// MaxReportAge is how old a report may be. Clients spool reports
	// while offline, so a few days is legitimate; older ones would land
	// in partitions analyses have already consumed, and outlive the
	// deduplication window (see Options.DedupeWindow).
	MaxReportAge = 7 * 24 * time.Hour
)

// Sentinel errors of validation; every error Validate returns wraps
// exactly one of them (and is a *FieldError).
var (
	ErrInvalidReport = errors.New("invalid report")
	ErrFutureDated   = errors.New("report is future-dated")
	ErrTooOld        = errors.New("report is too old")
)

// FieldError names the field of a report that is wrong and what is wrong
// with it, e.g. "pulses[3].ttfb_ms: -2 is negative".
type FieldError struct {
	Field   string // JSON path: "id", "pulses[3].ttfb_ms", "qoe.rebuffers"
	Problem string
	Kind    error // ErrInvalidReport, ErrFutureDated or ErrTooOld
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Problem }
func (e *FieldError) Unwrap() error { return e.Kind }

func invalid(field, format string, args ...any) error {
	return &FieldError{Field: field, Problem: fmt.Sprintf(format, args...), Kind: ErrInvalidReport}
}

// Validate checks the report against the schema and the server's clock
// now, and returns the first problem found as a *FieldError. It does not
// modify r.
func (r *Report) Validate(now time.Time) error {
	if n := len(r.ID); n < MinIDBytes || n > 64 {
		return invalid("id", "%d bytes, want %d to 64", n, MinIDBytes)
	}
	for i := 0; i < len(r.ID); i++ {
		if c := r.ID[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '_') {
			return invalid("id", "byte %d is %q, want letters, digits, '-' or '_'", i, c)
		}
	}
	if err := checkString("recipe", r.Recipe, true); err != nil {
		return err
	}
	if len(r.Context) > MaxContextKeys {
		return invalid("context", "%d keys, at most %d", len(r.Context), MaxContextKeys)
	}
	for k, v := range r.Context {
		if err := checkString("context key", k, true); err != nil {
			return err
		}
		if err := checkString(fmt.Sprintf("context[%q]", k), v, false); err != nil {
			return err
		}
	}
	if err := checkTime("client_time", r.ClientTime, now); err != nil {
		return err
	}
	if len(r.Pulses) > MaxPulses {
		return invalid("pulses", "%d pulses, at most %d", len(r.Pulses), MaxPulses)
	}
	if r.Transport != nil {
		if len(r.Pulses) > 0 || r.Player != nil {
			return invalid("transport", "a transport batch carries no pulses or qoe record")
		}
		return r.Transport.validate("transport", now)
	}
	if len(r.Pulses) == 0 && r.Player == nil {
		return invalid("pulses", "empty, and no qoe record either: nothing to store")
	}
	for i := range r.Pulses {
		if err := r.Pulses[i].validate(fmt.Sprintf("pulses[%d]", i), now); err != nil {
			return err
		}
	}
	if r.Player != nil {
		if err := r.Player.validate("qoe"); err != nil {
			return err
		}
	}
	return nil
}

func (p *Pulse) validate(at string, now time.Time) error {
	if err := checkString(at+".target", p.Target, true); err != nil {
		return err
	}
	if err := checkString(at+".appliance", p.Appliance, false); err != nil {
		return err
	}
	if err := checkString(at+".site", p.Site, false); err != nil {
		return err
	}
	switch p.Type {
	case TypeTCPConnect, TypeTLSHandshake, TypeHTTPTTFB, TypeThroughput, TypeDNS:
	default:
		return invalid(at+".type", "%q is not one of tcp_connect, tls_handshake, http_ttfb, throughput, dns", clip(p.Type))
	}
	switch p.Family {
	case "", FamilyIPv4, FamilyIPv6:
	default:
		return invalid(at+".family", "%q is not ipv4 or ipv6 (or absent)", clip(p.Family))
	}
	if p.Nonce != "" && !dnsname.ValidNonce(p.Nonce) {
		return invalid(at+".nonce", "%q is not 8 to 32 lower-case letters and digits", clip(p.Nonce))
	}
	if p.Type == TypeDNS && p.Status == StatusOK && p.Nonce == "" {
		return invalid(at+".nonce", "missing: a successful dns pulse names the nonce it resolved")
	}
	if p.Seq < 0 || p.Seq > 1_000_000 {
		return invalid(at+".seq", "%d is out of range 0..1000000", p.Seq)
	}
	if err := checkTime(at+".start", p.Start, now); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		v    float64
	}{
		{"connect_ms", p.ConnectMs}, {"tls_ms", p.TLSMs}, {"ttfb_ms", p.TTFBMs},
		{"duration_ms", p.DurationMs}, {"throughput_bps", p.ThroughputBps}, {"dns_ms", p.DNSMs},
	} {
		if err := checkNonNeg(at+"."+f.name, f.v); err != nil {
			return err
		}
	}
	if p.Bytes < 0 {
		return invalid(at+".bytes", "%d is negative", p.Bytes)
	}
	switch p.Status {
	case StatusOK, StatusTimeout, StatusError:
	default:
		return invalid(at+".status", "%q is not one of ok, timeout, error", clip(p.Status))
	}
	if p.HTTPStatus != 0 && (p.HTTPStatus < 100 || p.HTTPStatus > 599) {
		return invalid(at+".http_status", "%d is not an HTTP status (100..599, or absent)", p.HTTPStatus)
	}
	return checkString(at+".error", p.Error, false)
}

func (q *QoE) validate(at string) error {
	for _, f := range []struct {
		name string
		v    float64
	}{
		{"startup_ms", q.StartupMs}, {"rebuffer_ms", q.RebufferMs},
		{"avg_bitrate_kbps", q.AvgBitrateKbps}, {"duration_ms", q.DurationMs},
	} {
		if err := checkNonNeg(at+"."+f.name, f.v); err != nil {
			return err
		}
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"rebuffers", q.Rebuffers}, {"switches", q.Switches}, {"failovers", q.Failovers}} {
		if f.v < 0 {
			return invalid(at+"."+f.name, "%d is negative", f.v)
		}
		if f.v > 1_000_000 {
			return invalid(at+"."+f.name, "%d is implausibly large (at most 1000000)", f.v)
		}
	}
	if len(q.ServedBy) > MaxServedBy {
		return invalid(at+".served_by", "%d entries, at most %d", len(q.ServedBy), MaxServedBy)
	}
	for i, s := range q.ServedBy {
		if err := checkString(fmt.Sprintf("%s.served_by[%d]", at, i), s, true); err != nil {
			return err
		}
	}
	return nil
}

func checkString(field, s string, required bool) error {
	switch {
	case required && s == "":
		return invalid(field, "missing (empty)")
	case len(s) > MaxStringBytes:
		return invalid(field, "%d bytes, at most %d", len(s), MaxStringBytes)
	case !utf8.ValidString(s):
		return invalid(field, "not valid UTF-8")
	}
	return nil
}

func checkNonNeg(field string, v float64) error {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return invalid(field, "%g is not a finite number", v)
	case v < 0:
		return invalid(field, "%g is negative", v)
	}
	return nil
}

func checkTime(field string, t, now time.Time) error {
	switch {
	case t.IsZero():
		return invalid(field, "missing")
	case t.After(now.Add(MaxFutureSkew)):
		return &FieldError{Field: field, Kind: ErrFutureDated,
			Problem: fmt.Sprintf("%s is %s ahead of the server clock (at most %s)",
				t.UTC().Format(time.RFC3339), t.Sub(now).Round(time.Second), MaxFutureSkew)}
	case t.Before(now.Add(-MaxReportAge)):
		return &FieldError{Field: field, Kind: ErrTooOld,
			Problem: fmt.Sprintf("%s is %s old (at most %s)",
				t.UTC().Format(time.RFC3339), now.Sub(t).Round(time.Second), MaxReportAge)}
	}
	return nil
}

// clip shortens an offending value for an error message, so that a
// megabyte-long bogus field does not come back in a 400 body.
func clip(s string) string {
	if len(s) <= 32 {
		return s
	}
	return s[:32] + "…"
}
