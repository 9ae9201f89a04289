package measure

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func testSigner(t testing.TB, keys ...string) *ContextSigner {
	t.Helper()
	var kb [][]byte
	for _, k := range keys {
		kb = append(kb, []byte(strings.Repeat(k, 32)))
	}
	s, err := NewContextSigner(kb...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestContextSignature(t *testing.T) {
	s := testSigner(t, "k")
	issued := map[string]string{"recipe_version": "1", "steered_site": "ams", "targets": "3"}
	s.Sign("r1", issued)
	if err := s.Verify("r1", maps.Clone(issued)); err != nil {
		t.Fatalf("Verify(as issued) = %v", err)
	}
	// After a rotation the old key still verifies; a foreign key does not.
	if err := testSigner(t, "n", "k").Verify("r1", issued); err != nil {
		t.Errorf("Verify with the old key second = %v", err)
	}
	for _, tc := range []struct {
		name   string
		recipe string
		change func(map[string]string) map[string]string
		field  string
	}{
		{"value changed", "r1", func(m map[string]string) map[string]string { m["steered_site"] = "fra"; return m }, `context["sig"]`},
		{"key added", "r1", func(m map[string]string) map[string]string { m["arm"] = "measured"; return m }, `context["sig"]`},
		{"key removed", "r1", func(m map[string]string) map[string]string { delete(m, "targets"); return m }, `context["sig"]`},
		{"value moved to another key", "r1", func(m map[string]string) map[string]string {
			m["targets"], m["steered_site"] = m["steered_site"], m["targets"]
			return m
		}, `context["sig"]`},
		{"other recipe", "r2", func(m map[string]string) map[string]string { return m }, `context["sig"]`},
		{"signature missing", "r1", func(m map[string]string) map[string]string { delete(m, ContextSigKey); return m }, `context["sig"]`},
		{"signature garbage", "r1", func(m map[string]string) map[string]string { m[ContextSigKey] = "!!"; return m }, `context["sig"]`},
		{"no context", "r1", func(map[string]string) map[string]string { return nil }, "context"},
	} {
		err := s.Verify(tc.recipe, tc.change(maps.Clone(issued)))
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field || !errors.Is(err, ErrInvalidReport) {
			t.Errorf("%s: Verify = %v, want an invalid-report error naming %s", tc.name, err, tc.field)
		}
	}
	if err := testSigner(t, "x").Verify("r1", issued); err == nil {
		t.Error("Verify with another control plane's key = nil")
	}
	if _, err := NewContextSigner([]byte("short")); err == nil {
		t.Error("NewContextSigner(5-byte key) = nil error")
	}
}

// TestBrowserReports goes through POST /v1/reports as a page would (with
// an Origin header): only a report whose recipe context is as signed is
// stored, and it is stored marked as the browser's, without the
// signature; installed clients (no Origin) cannot claim to be browsers.
func TestBrowserReports(t *testing.T) {
	now := time.Now().UTC()
	dir := t.TempDir()
	s := testSigner(t, "k")
	in, err := Open(dir, nil, Options{Contexts: s})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(in.Handler(RateLimit{}))
	defer srv.Close()
	post := func(r *Report, origin string) (int, string) {
		t.Helper()
		b, _ := json.Marshal(r)
		req, _ := http.NewRequest("POST", srv.URL+"/v1/reports", bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	signed := func(id string) *Report {
		r := testReport(id, 4, now)
		r.Context = map[string]string{"recipe_version": "1", "steered_site": "ams"}
		s.Sign(r.Recipe, r.Context)
		return r
	}
	const page = "http://127.0.0.1:18000"

	forged := signed("aaaaaaaaaaaaaaa2")
	forged.Context["steered_site"] = "fra"
	claims := signed("aaaaaaaaaaaaaaa5")
	claims.Context[ContextSourceKey] = SourceBrowser
	for _, tc := range []struct {
		name   string
		r      *Report
		origin string
		code   int
		want   string
	}{
		{"browser, no context", func() *Report { r := testReport("aaaaaaaaaaaaaaa1", 4, now); r.Context = nil; return r }(), page, 400, "context: missing"},
		{"browser, forged context", forged, page, 400, `context["sig"]: does not match`},
		{"browser, unsigned context", testReport("aaaaaaaaaaaaaaa3", 4, now), page, 400, `context["sig"]: missing`},
		{"installed client claims a browser", claims, "", 400, `context["source"]: reserved`},
		{"browser, as signed", signed("aaaaaaaaaaaaaaa4"), page, 200, `"accepted":true`},
		{"installed client, signed context", signed("aaaaaaaaaaaaaaa6"), "", 200, `"accepted":true`},
	} {
		code, body := post(tc.r, tc.origin)
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %q, want %d with %q", tc.name, code, body, tc.code, tc.want)
		}
	}
	if err := in.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := in.Close(); err != nil {
		t.Fatal(err)
	}
	contexts := map[string]string{}
	for _, row := range readTable[PulseRow](t, dir, "pulses") {
		contexts[row.ReportID] = row.Context
	}
	want := map[string]string{
		"aaaaaaaaaaaaaaa4": `{"recipe_version":"1","source":"browser","steered_site":"ams"}`,
		"aaaaaaaaaaaaaaa6": `{"recipe_version":"1","steered_site":"ams"}`,
	}
	if len(contexts) != len(want) {
		t.Errorf("stored reports %v, want only %v", contexts, want)
	}
	for id, w := range want {
		if contexts[id] != w {
			t.Errorf("report %s stored with context %s, want %s", id, contexts[id], w)
		}
	}
}

// TestBrowserReportsNeedASigner: an ingester without a signer refuses
// browser reports, naming the context.
func TestBrowserReportsNeedASigner(t *testing.T) {
	r := testReport("aaaaaaaaaaaaaaa1", 1, time.Now())
	var s *ContextSigner
	if err := s.checkBrowser(r); err == nil || !strings.Contains(err.Error(), "context: ") {
		t.Errorf("checkBrowser without a signer = %v, want an error naming context", err)
	}
}

// FuzzContextVerify: no context makes Verify panic, and only the signed
// one passes.
func FuzzContextVerify(f *testing.F) {
	s := testSigner(f, "k")
	f.Add("r1", "steered_site", "ams", "")
	f.Add("", "", "", "AAAA")
	f.Add("r1", "sig", "x", "x")
	f.Fuzz(func(t *testing.T, recipe, k, v, sig string) {
		ctx := map[string]string{k: v, ContextSigKey: sig}
		err := s.Verify(recipe, ctx)
		good := map[string]string{k: v}
		s.Sign(recipe, good)
		if err == nil && good[ContextSigKey] != sig {
			t.Fatalf("Verify(%q, %v) = nil for a signature that is not ours", recipe, ctx)
		}
		if err := s.Verify(recipe, good); err != nil {
			t.Fatalf("Verify(signed) = %v", err)
		}
	})
}
