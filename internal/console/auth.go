package console

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// role is what a session may do.
type role int

const (
	roleNone role = iota
	roleViewer
	roleOperator
)

func (r role) String() string {
	switch r {
	case roleViewer:
		return "viewer"
	case roleOperator:
		return "operator"
	}
	return "none"
}

// Sessions are stateless, so that every control-plane replica behind a
// load balancer accepts the same cookie: the cookie holds a ticket
//
//	ROLE.EXPIRY.MAC   MAC = HMAC-SHA256(role's token, "session" ROLE EXPIRY)
//
// which only a holder of the role's token could have made. Changing a
// token (and restarting) ends every session of that role. The CSRF token
// of a session is an HMAC of its ticket under the same key, so it too
// needs no server state and is worthless without the cookie.
const (
	cookieName = "ocdn_console"
	sessionTTL = 12 * time.Hour
)

// session is an authenticated request's identity.
type session struct {
	role   role
	ticket string
}

func (s session) operator() bool { return s.role == roleOperator }

func (c *Console) tokenOf(r role) string {
	switch r {
	case roleViewer:
		return c.cfg.ViewerToken
	case roleOperator:
		return c.cfg.OperatorToken
	}
	return ""
}

func mac(key, msg string) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(msg))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// login checks a token typed into the login form, in constant time for
// either role, and returns the role it grants.
func (c *Console) login(token string) role {
	got := []byte(token)
	r := roleNone
	// Both comparisons always run: timing tells nothing about which
	// role (if any) came close.
	if v := c.cfg.ViewerToken; v != "" && subtle.ConstantTimeCompare(got, []byte(v)) == 1 {
		r = roleViewer
	}
	if o := c.cfg.OperatorToken; o != "" && subtle.ConstantTimeCompare(got, []byte(o)) == 1 {
		r = roleOperator
	}
	return r
}

func (c *Console) ticket(r role, expires time.Time) string {
	body := r.String() + "." + strconv.FormatInt(expires.Unix(), 10)
	return body + "." + mac(c.tokenOf(r), "session\x00"+body)
}

// session reads and checks the request's cookie.
func (c *Console) session(r *http.Request) (session, bool) {
	ck, err := r.Cookie(cookieName)
	if err != nil {
		return session{}, false
	}
	parts := strings.Split(ck.Value, ".")
	if len(parts) != 3 {
		return session{}, false
	}
	var ro role
	switch parts[0] {
	case "viewer":
		ro = roleViewer
	case "operator":
		ro = roleOperator
	default:
		return session{}, false
	}
	key := c.tokenOf(ro)
	exp, err := strconv.ParseInt(parts[1], 10, 64)
	if key == "" || err != nil || c.cfg.Now().Unix() >= exp {
		return session{}, false
	}
	want := mac(key, "session\x00"+parts[0]+"."+parts[1])
	if !hmac.Equal([]byte(parts[2]), []byte(want)) {
		return session{}, false
	}
	return session{role: ro, ticket: ck.Value}, true
}

// csrf is the token every form of the session carries.
func (c *Console) csrf(s session) string {
	if s.role == roleNone {
		return ""
	}
	return mac(c.tokenOf(s.role), "csrf\x00"+s.ticket)
}

// checkCSRF compares a submitted form's token with the session's.
func (c *Console) checkCSRF(s session, r *http.Request) bool {
	want := c.csrf(s)
	got := r.PostFormValue("csrf")
	return want != "" && hmac.Equal([]byte(got), []byte(want))
}

func (c *Console) setSession(w http.ResponseWriter, r *http.Request, ro role) {
	exp := c.cfg.Now().Add(sessionTTL)
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: c.ticket(ro, exp), Path: "/ui/", Expires: exp,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
}

func clearSession(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/ui/", MaxAge: -1,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
}

// safeNext keeps a post-login redirect inside the console, so the login
// form cannot be used to send someone elsewhere.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/ui/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return "/ui/"
	}
	return next
}
