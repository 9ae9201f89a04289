package config

import (
	"strings"
	"testing"
	"time"
)

const goodCORS = `cors:
  allowed_origins: ["https://player.example.com", "http://127.0.0.1:18000", "http://[::1]:8080"]
  exposed_headers: [Content-Range, X-Ocdn-Appliance]
  max_age: 10m
`

func TestCORSSectionLoads(t *testing.T) {
	var c Control
	if err := Load(write(t, "control.yaml", goodControl+goodCORS), &c); err != nil {
		t.Fatalf("Load(control with cors) = %v", err)
	}
	if c.CORS == nil || len(c.CORS.AllowedOrigins) != 3 || c.CORS.MaxAge != 10*time.Minute {
		t.Errorf("cors = %+v", c.CORS)
	}
	var a ApplianceDaemon
	if err := Load(write(t, "appliance.yaml", goodAppliance+"cors: {allowed_origins: [\"*\"]}\n"), &a); err != nil {
		t.Fatalf("Load(appliance with cors) = %v", err)
	}
	if a.CORS == nil || a.CORS.AllowedOrigins[0] != "*" {
		t.Errorf("cors = %+v", a.CORS)
	}
}

// TestBadCORSNamesTheField: every refusal names the file, the field and
// what a browser would send instead.
func TestBadCORSNamesTheField(t *testing.T) {
	for _, tc := range []struct {
		name, from, to string
		want           []string
	}{
		{"no origins", `["https://player.example.com", "http://127.0.0.1:18000", "http://[::1]:8080"]`, "[]", []string{"cors.allowed_origins", "at least one"}},
		{"trailing slash", `"https://player.example.com"`, `"https://player.example.com/"`, []string{"cors.allowed_origins[0]", "path"}},
		{"path", `"http://127.0.0.1:18000"`, `"http://127.0.0.1:18000/play"`, []string{"cors.allowed_origins[1]", "path"}},
		{"scheme", `"https://player.example.com"`, `"ftp://player.example.com"`, []string{"cors.allowed_origins[0]", "http or https"}},
		{"no scheme", `"https://player.example.com"`, `"player.example.com"`, []string{"cors.allowed_origins[0]"}},
		{"uppercase", `"https://player.example.com"`, `"https://Player.example.com"`, []string{"cors.allowed_origins[0]", "lowercase"}},
		{"default port", `"https://player.example.com"`, `"https://player.example.com:443"`, []string{"cors.allowed_origins[0]", "default port", "https://player.example.com"}},
		{"null origin", `"https://player.example.com"`, `"null"`, []string{"cors.allowed_origins[0]"}},
		{"star with others", `"https://player.example.com"`, `"*"`, []string{"cors.allowed_origins[0]", "alone"}},
		{"twice", `"http://[::1]:8080"`, `"http://127.0.0.1:18000"`, []string{"cors.allowed_origins[2]", "twice"}},
		{"header name", "X-Ocdn-Appliance]", "X Ocdn]", []string{"cors.exposed_headers[1]", "header name"}},
		{"max age too long", "max_age: 10m", "max_age: 48h", []string{"cors.max_age", "24h"}},
		{"max age fractional", "max_age: 10m", "max_age: 1500ms", []string{"cors.max_age", "whole number of seconds"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(goodCORS, tc.from) {
				t.Fatalf("test case: %q not in the cors section", tc.from)
			}
			section := strings.Replace(goodCORS, tc.from, tc.to, 1)
			for _, load := range []struct {
				base string
				v    Validator
			}{{goodControl, &Control{}}, {goodAppliance, &ApplianceDaemon{}}} {
				p := write(t, "bad.yaml", load.base+section)
				err := Load(p, load.v)
				if err == nil {
					t.Fatalf("Load(%T) = nil, want an error naming %v", load.v, tc.want)
				}
				for _, w := range append([]string{p}, tc.want...) {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("Load(%T) = %q, want it to mention %q", load.v, err, w)
					}
				}
			}
		})
	}
}
