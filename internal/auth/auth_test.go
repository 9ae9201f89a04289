package auth

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestTokens(t *testing.T) {
	s, other := NewSecret(), NewSecret()
	now := time.Unix(1_800_000_000, 0)
	tok := s.Mint("ams-1", now.Add(time.Hour))
	if id, err := s.Verify(tok, now); err != nil || id != "ams-1" {
		t.Fatalf("Verify(good) = %q, %v", id, err)
	}
	for _, tc := range []struct {
		name, tok string
		now       time.Time
		want      error
	}{
		{"expired", tok, now.Add(2 * time.Hour), ErrExpired},
		{"other secret", other.Mint("ams-1", now.Add(time.Hour)), now, ErrSignature},
		{"tampered id", strings.Replace(tok, tok[4:8], "QUFB", 1), now, ErrSignature},
		{"garbage", "hello", now, ErrMalformed},
		{"long", "at1." + strings.Repeat("a", 600), now, ErrMalformed},
	} {
		if _, err := s.Verify(tc.tok, tc.now); !errors.Is(err, tc.want) {
			t.Errorf("%s: Verify = %v, want %v", tc.name, err, tc.want)
		}
	}
	if got := fmt.Sprintf("%v %s", s, s); strings.Contains(got, string(s)) || !strings.Contains(got, "[secret]") {
		t.Errorf("formatting a secret = %q, want it hidden", got)
	}
}

func FuzzVerify(f *testing.F) {
	s := NewSecret()
	f.Add(s.Mint("a", time.Unix(2e9, 0)))
	f.Add("at1..")
	f.Fuzz(func(t *testing.T, tok string) {
		s.Verify(tok, time.Unix(1e9, 0))
	})
}
