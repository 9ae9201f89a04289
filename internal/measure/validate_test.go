package measure

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	long := strings.Repeat("x", MaxStringBytes+1)
	tests := []struct {
		name    string
		mut     func(r *Report)
		want    string // substring of the error; "" means valid
		wantErr error
	}{
		{"valid", func(r *Report) {}, "", nil},
		{"qoe only", func(r *Report) { r.Pulses = nil; r.Player = &QoE{StartupMs: 1} }, "", nil},
		{"short id", func(r *Report) { r.ID = "abc" }, "id: 3 bytes", ErrInvalidReport},
		{"id charset", func(r *Report) { r.ID = "0123456789abcdef/" }, `id: byte 16 is '/'`, ErrInvalidReport},
		{"no recipe", func(r *Report) { r.Recipe = "" }, "recipe: missing", ErrInvalidReport},
		{"long recipe", func(r *Report) { r.Recipe = long }, "recipe: 257 bytes, at most 256", ErrInvalidReport},
		{"context keys", func(r *Report) {
			r.Context = map[string]string{}
			for i := range MaxContextKeys + 1 {
				r.Context[strings.Repeat("k", i+1)] = "v"
			}
		}, "context: 33 keys, at most 32", ErrInvalidReport},
		{"context value", func(r *Report) { r.Context = map[string]string{"a": long} }, `context["a"]: 257 bytes`, ErrInvalidReport},
		{"no client_time", func(r *Report) { r.ClientTime = time.Time{} }, "client_time: missing", ErrInvalidReport},
		{"future client_time", func(r *Report) { r.ClientTime = now.Add(6 * time.Minute) }, "client_time: 2026-11-26T10:06:00Z is 6m0s ahead", ErrFutureDated},
		{"skewed client_time ok", func(r *Report) { r.ClientTime = now.Add(4 * time.Minute) }, "", nil},
		{"old client_time", func(r *Report) { r.ClientTime = now.Add(-8 * 24 * time.Hour) }, "client_time: 2026-11-18T10:00:00Z is 192h0m0s old", ErrTooOld},
		{"future pulse", func(r *Report) { r.Pulses[2].Start = now.Add(time.Hour) }, "pulses[2].start:", ErrFutureDated},
		{"no pulses", func(r *Report) { r.Pulses = nil }, "pulses: empty", ErrInvalidReport},
		{"too many pulses", func(r *Report) { r.Pulses = make([]Pulse, MaxPulses+1) }, "pulses: 1001 pulses, at most 1000", ErrInvalidReport},
		{"negative ttfb", func(r *Report) { r.Pulses[3].TTFBMs = -2 }, "pulses[3].ttfb_ms: -2 is negative", ErrInvalidReport},
		{"negative connect", func(r *Report) { r.Pulses[0].ConnectMs = -1 }, "pulses[0].connect_ms: -1 is negative", ErrInvalidReport},
		{"negative tls", func(r *Report) { r.Pulses[1].TLSMs = -0.5 }, "pulses[1].tls_ms: -0.5 is negative", ErrInvalidReport},
		{"negative duration", func(r *Report) { r.Pulses[1].DurationMs = -3 }, "pulses[1].duration_ms: -3 is negative", ErrInvalidReport},
		{"negative throughput", func(r *Report) { r.Pulses[1].ThroughputBps = -3 }, "pulses[1].throughput_bps: -3 is negative", ErrInvalidReport},
		{"negative bytes", func(r *Report) { r.Pulses[1].Bytes = -3 }, "pulses[1].bytes: -3 is negative", ErrInvalidReport},
		{"negative seq", func(r *Report) { r.Pulses[1].Seq = -1 }, "pulses[1].seq: -1 is out of range", ErrInvalidReport},
		{"bad type", func(r *Report) { r.Pulses[2].Type = "ping" }, `pulses[2].type: "ping" is not one of`, ErrInvalidReport},
		{"bad status", func(r *Report) { r.Pulses[2].Status = "fine" }, `pulses[2].status: "fine" is not one of`, ErrInvalidReport},
		{"bad http status", func(r *Report) { r.Pulses[2].HTTPStatus = 42 }, "pulses[2].http_status: 42 is not an HTTP status", ErrInvalidReport},
		{"no target", func(r *Report) { r.Pulses[2].Target = "" }, "pulses[2].target: missing", ErrInvalidReport},
		{"long appliance", func(r *Report) { r.Pulses[2].Appliance = long }, "pulses[2].appliance: 257 bytes", ErrInvalidReport},
		{"long site", func(r *Report) { r.Pulses[2].Site = long }, "pulses[2].site: 257 bytes", ErrInvalidReport},
		{"long error", func(r *Report) { r.Pulses[2].Error = long }, "pulses[2].error: 257 bytes", ErrInvalidReport},
		{"bad utf8", func(r *Report) { r.Pulses[2].Error = "\xff" }, "pulses[2].error: not valid UTF-8", ErrInvalidReport},
		{"no pulse start", func(r *Report) { r.Pulses[2].Start = time.Time{} }, "pulses[2].start: missing", ErrInvalidReport},
		{"qoe negative startup", func(r *Report) { r.Player = &QoE{StartupMs: -1} }, "qoe.startup_ms: -1 is negative", ErrInvalidReport},
		{"qoe negative rebuffers", func(r *Report) { r.Player = &QoE{Rebuffers: -1} }, "qoe.rebuffers: -1 is negative", ErrInvalidReport},
		{"qoe served_by empty", func(r *Report) { r.Player = &QoE{ServedBy: []string{"a", ""}} }, "qoe.served_by[1]: missing", ErrInvalidReport},
		{"qoe served_by count", func(r *Report) { r.Player = &QoE{ServedBy: make([]string, MaxServedBy+1)} }, "qoe.served_by: 65 entries", ErrInvalidReport},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := testReport("0123456789abcdef", 5, now.Add(-time.Minute))
			tc.mut(r)
			err := r.Validate(now)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tc.want)
			}
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("Validate() = %v, want it to wrap %v", err, tc.wantErr)
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field == "" {
				t.Errorf("Validate() = %#v, want a *FieldError naming the field", err)
			}
		})
	}
}

func FuzzReportDecodeValidate(f *testing.F) {
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	f.Add([]byte(`{"id":"0123456789abcdef","recipe":"r","client_time":"2026-11-26T09:59:00Z","pulses":[{"target":"t","appliance":"a","type":"http_ttfb","seq":0,"start":"2026-11-26T09:59:00Z","ttfb_ms":3,"duration_ms":4,"status":"ok"}]}`))
	f.Add([]byte(`{"id":"0123456789abcdef","recipe":"r","client_time":"2026-11-26T09:59:00Z","pulses":[],"qoe":{"startup_ms":1,"served_by":["a"]}}`))
	f.Add([]byte(`{"id":1}`))
	f.Add([]byte(`{"pulses":[{"seq":1e400}]}`))
	f.Add([]byte(`{} {}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeReport(b)
		if err != nil {
			return
		}
		if err := r.Validate(now); err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Validate error %v is not a *FieldError", err)
			}
			return
		}
		// A valid report survives the WAL encoding and row conversion.
		rec := walRecord{Client: "192.0.2.1", Report: r, Sites: make([]string, len(r.Pulses))}
		p, q := rec.rows(nil, nil)
		if len(p) != len(r.Pulses) || (r.Player != nil) != (len(q) == 1) {
			t.Fatalf("rows: %d pulses, %d qoe for %d pulses, qoe %v", len(p), len(q), len(r.Pulses), r.Player != nil)
		}
	})
}
