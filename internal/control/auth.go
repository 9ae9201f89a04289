package control

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/ocdn/ocdn/internal/auth"
)

// authenticate checks an appliance's bearer token when appliance
// authentication is on (Config.ApplianceSecret) and returns the appliance
// it names; it answers 401 itself and returns ok false. With it off every
// caller is trusted as the appliance it names ("" id).
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (id string, ok bool) {
	if len(s.cfg.ApplianceSecret) == 0 {
		return "", true
	}
	tok, err := auth.Bearer(r)
	if err == nil {
		id, err = s.cfg.ApplianceSecret.Verify(tok, s.cfg.Now())
	}
	if err != nil {
		s.hs.authFailures.Add(1)
		// Never echo the token: only the kind of failure.
		w.Header().Set("WWW-Authenticate", `Bearer realm="ocdn"`)
		http.Error(w, "appliance authentication: "+authReason(err), http.StatusUnauthorized)
		return "", false
	}
	if _, known := s.applianceSite[id]; !known {
		http.Error(w, fmt.Sprintf("appliance authentication: unknown appliance %q", id), http.StatusForbidden)
		return "", false
	}
	return id, true
}

func authReason(err error) string {
	for _, e := range []error{auth.ErrMissing, auth.ErrMalformed, auth.ErrSignature, auth.ErrExpired} {
		if errors.Is(err, e) {
			return e.Error()
		}
	}
	return "invalid token"
}

// readApplianceBody authenticates an appliance's request before reading
// a byte of its body, then decodes at most limit bytes of strict JSON into
// v, whose Appliance field (named) must be the authenticated appliance.
// On failure it has answered (401, 403, 400 or 413) and ok is false.
func (s *Server) readApplianceBody(w http.ResponseWriter, r *http.Request, what string, limit int64, v any, named func() string) (ok bool) {
	if _, ok := s.authenticate(w, r); !ok {
		return false
	}
	if err := decodeLimited(w, r, limit, v); err != nil {
		code := http.StatusBadRequest
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			code = http.StatusRequestEntityTooLarge
		}
		http.Error(w, what+": "+err.Error(), code)
		return false
	}
	return s.authorizeAppliance(w, r, named())
}

// Body limits, sized per endpoint: a heartbeat lists every file an
// appliance holds; a route report may carry a full table (as a snapshot
// after a session comes up) and is only read from an authenticated
// appliance; the rest are small.
const (
	maxHeartbeatBody = 8 << 20
	maxRoutesBody    = 512 << 20
	maxDemandBody    = 8 << 20
	maxSmallBody     = 64 << 10
	// maxFeedBody bounds a release feed: a prediction per file of a
	// large catalog.
	maxFeedBody = 32 << 20
)

// authorizeAppliance checks that a request naming appliance named came
// from it: with authentication on, the token's appliance must be named.
func (s *Server) authorizeAppliance(w http.ResponseWriter, r *http.Request, named string) bool {
	id, ok := s.authenticate(w, r)
	if !ok {
		return false
	}
	if id != "" && id != named {
		http.Error(w, fmt.Sprintf("appliance %q may not report for %q", id, named), http.StatusForbidden)
		return false
	}
	return true
}
