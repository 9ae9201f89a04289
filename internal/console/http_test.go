package console_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ocdn/ocdn/internal/api"
	"github.com/ocdn/ocdn/internal/auth"
	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/daemon"
	"github.com/ocdn/ocdn/internal/urlsign"
)

const (
	viewerToken   = "viewer-token-0123456789abcdef"
	operatorToken = "operator-token-0123456789abcdef"
	// markupID is an appliance id the inventory accepts (no '/' or
	// space) that is also markup: every page must show it as text.
	markupID = "<b\tid=injected-id>x"
)

// plane is a control plane assembled by internal/daemon from a config
// file, as `ocdn control` runs it, with the console on; the test plays
// the appliances by posting their heartbeats.
type plane struct {
	base string
	t    *testing.T
}

// applianceSecret mints the credentials the test's heartbeats carry, as
// a deployment's appliance tokens are minted from appliance_secret_file.
var applianceSecret = auth.NewSecret()

const adminToken = "admin-token-0123456789"

// testCatalog is the control plane's catalog (content.Synth is
// deterministic, so the test knows its files).
func testCatalog(t *testing.T) *content.Catalog {
	t.Helper()
	cat, err := content.Synth(content.SynthSpec{Titles: 1, LadderKbps: []int{100}, Duration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

// writeFiles writes a catalog, keys and token files into dir.
func writeFiles(t *testing.T, dir string, tokens map[string]string) {
	t.Helper()
	catJSON, _ := testCatalog(t).Marshal()
	keys, _ := json.Marshal(urlsign.Generate())
	files := map[string]string{"catalog.json": string(catJSON), "keys.json": string(keys)}
	for name, tok := range tokens {
		files[name] = tok + "\n"
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func startPlane(t *testing.T) *plane {
	t.Helper()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"admin.token": adminToken, "viewer.token": viewerToken, "operator.token": operatorToken, "appliance.secret": applianceSecret.Encode()})
	yaml := fmt.Sprintf(`listen: 127.0.0.1:0
catalog: catalog.json
origin_url: http://127.0.0.1:9
key_file: keys.json
admin_token_file: admin.token
appliance_secret_file: appliance.secret
viewer_token_file: viewer.token
operator_token_file: operator.token
heartbeat_interval: 1s
turn_up: {enabled: false}
measure: {dir: measure}
isps: [{name: isp, asn: 64500, prefixes: [198.51.100.0/24]}]
sites:
  - {id: ix, kind: ixp, time_zone: UTC, location: {lat: 52.4, lon: 4.9}}
  - {id: "s<i>2", kind: ixp, time_zone: UTC, location: {lat: 50.1, lon: 8.7}}
appliances:
  - {id: x1, site: ix, address: 127.0.0.1:1, capacity: 1GiB}
  - {id: x2, site: ix, address: 127.0.0.1:2, capacity: 1GiB}
  - {id: %q, site: "s<i>2", address: 127.0.0.1:3, capacity: 1GiB}
`, markupID)
	p := filepath.Join(dir, "control.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	var cfg config.Control
	if err := config.Load(p, &cfg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c, err := daemon.NewControl(ctx, &cfg, daemon.Hooks{})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	pl := &plane{base: c.URLs()[0], t: t}
	ids := []string{"x1", "x2", markupID}
	for _, id := range ids {
		if err := pl.beat(id); err != nil {
			cancel()
			<-done
			t.Fatal(err)
		}
	}
	// The appliances keep beating until the test ends (three missed
	// beats, 3 s, would take them out of steering).
	beating := make(chan struct{})
	go func() {
		defer close(beating)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				for _, id := range ids {
					pl.beat(id) // a lost beat is made up by the next
				}
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-beating; <-done })
	return pl
}

// beat posts a heartbeat for id.
func (p *plane) beat(id string) error {
	hb := api.Heartbeat{Appliance: id, BytesServed: 1234, BGP: []api.BGPSession{{Neighbor: "192.0.2.1", Family: "ipv4", State: "established"}},
		Load: &api.Load{BitsPerSec: 1e6, CPU: 0.1}}
	resp, err := http.DefaultClient.Do(p.applianceRequest(id, "/v1/heartbeat", hb))
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("heartbeat of %s: %s", id, resp.Status)
	}
	return nil
}

// applianceRequest is a POST of v as JSON to path, with appliance id's
// credentials.
func (p *plane) applianceRequest(id, path string, v any) *http.Request {
	b, _ := json.Marshal(v)
	req, _ := http.NewRequest(http.MethodPost, p.base+path, bytes.NewReader(b)) // a valid URL and method
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+applianceSecret.Mint(id, time.Now().Add(time.Hour)))
	return req
}

// demand reports that appliance id served files (path → bytes), which
// the control plane counts as demand at id's site.
func (p *plane) demand(id string, files map[string]int64) {
	p.t.Helper()
	req := p.applianceRequest(id, "/v1/demand", api.DemandReport{Appliance: id, Files: files})
	if a := do(p.t, http.DefaultClient, req); a.status != http.StatusOK {
		p.t.Fatalf("POST /v1/demand for %s = %d: %s", id, a.status, a.body)
	}
}

// replan asks the control plane to replan now, as an operator's script
// would, with the admin token.
func (p *plane) replan() api.Replan {
	p.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, p.base+"/v1/admin/replan", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	a := do(p.t, http.DefaultClient, req)
	var r api.Replan
	if a.status != http.StatusOK || json.Unmarshal([]byte(a.body), &r) != nil {
		p.t.Fatalf("POST /v1/admin/replan = %d: %s", a.status, a.body)
	}
	return r
}

// client is a browser-like HTTP client: a cookie jar, no redirects
// followed (the tests look at them).
func client(t *testing.T) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

type answer struct {
	status   int
	location string
	body     string
}

func do(t *testing.T, c *http.Client, req *http.Request) answer {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header.Get("Location"), string(b)}
}

func (p *plane) get(c *http.Client, path string) answer {
	req, _ := http.NewRequest(http.MethodGet, p.base+path, nil)
	return do(p.t, c, req)
}

func (p *plane) post(c *http.Client, path string, form url.Values, header map[string]string) answer {
	req, _ := http.NewRequest(http.MethodPost, p.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return do(p.t, c, req)
}

// login signs c in with token and returns its CSRF token.
func (p *plane) login(c *http.Client, token string) string {
	p.t.Helper()
	a := p.post(c, "/ui/login", url.Values{"token": {token}, "next": {"/ui/"}}, nil)
	if a.status != http.StatusSeeOther || a.location != "/ui/" {
		p.t.Fatalf("login = %d to %q, want 303 to /ui/\n%s", a.status, a.location, a.body)
	}
	page := p.get(c, "/ui/")
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page.body)
	if m == nil {
		p.t.Fatalf("no CSRF token on the fleet page:\n%s", page.body)
	}
	return m[1]
}

// serving reports whether the API says id is serving.
func (p *plane) serving(id string) bool {
	p.t.Helper()
	var sts []api.ApplianceStatus
	req, err := http.NewRequest(http.MethodGet, p.base+"/v1/appliances", nil)
	if err != nil {
		p.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		p.t.Fatalf("GET /v1/appliances: %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&sts); err != nil {
		p.t.Fatalf("GET /v1/appliances: %v", err)
	}
	for _, st := range sts {
		if st.ID == id {
			return st.Serving
		}
	}
	p.t.Fatalf("appliance %q not in /v1/appliances", id)
	return false
}

// TestNoSessionNoData: without a valid session every page answers the
// login page (by redirect) and the plot data a 401, never data; a wrong
// token at the login form gets the form again, without a cookie.
func TestNoSessionNoData(t *testing.T) {
	p := startPlane(t)
	c := client(t)
	for _, path := range []string{"/ui/", "/ui/routes?q=198.51.100.1", "/ui/fill", "/ui/measure", "/ui/audit", "/ui/confirm?action=drain&appliance=x1", "/ui/nope"} {
		a := p.get(c, path)
		if a.status != http.StatusSeeOther || !strings.HasPrefix(a.location, "/ui/login?next=") || strings.Contains(a.body, "appliance-x1") {
			t.Errorf("GET %s without a session = %d to %q, want 303 to the login page and no data", path, a.status, a.location)
		}
	}
	if a := p.get(c, "/ui/series.json?page=fleet"); a.status != http.StatusUnauthorized || strings.Contains(a.body, "serving") {
		t.Errorf("GET series.json without a session = %d %q, want 401 and no data", a.status, a.body)
	}
	a := p.post(c, "/ui/login", url.Values{"token": {"wrong-token-0123456789"}}, nil)
	if a.status != http.StatusUnauthorized || !strings.Contains(a.body, `id="login-error"`) || strings.Contains(a.body, "wrong-token") {
		t.Errorf("login with a wrong token = %d, want 401 with the form, an error and the token not echoed:\n%s", a.status, a.body)
	}
	if u, _ := url.Parse(p.base + "/ui/"); len(c.Jar.Cookies(u)) != 0 {
		t.Errorf("a wrong token got a cookie: %v", c.Jar.Cookies(u))
	}
	// Forged cookies: a viewer ticket relabelled operator, garbage, and a
	// ticket signed with the wrong token.
	vc := client(t)
	p.login(vc, viewerToken)
	u, _ := url.Parse(p.base + "/ui/")
	ticket := vc.Jar.Cookies(u)[0].Value
	for _, forged := range []string{strings.Replace(ticket, "viewer.", "operator.", 1), "operator.99999999999.AAAA", ticket + "x"} {
		fc := client(t)
		fc.Jar.SetCookies(u, []*http.Cookie{{Name: "ocdn_console", Value: forged, Path: "/ui/"}})
		if a := p.get(fc, "/ui/"); a.status != http.StatusSeeOther {
			t.Errorf("GET /ui/ with forged cookie %q = %d, want 303 to the login page", forged, a.status)
		}
	}
	// A post-login redirect stays inside the console.
	a = p.post(client(t), "/ui/login", url.Values{"token": {viewerToken}, "next": {"//evil.example/"}}, nil)
	if a.status != http.StatusSeeOther || a.location != "/ui/" {
		t.Errorf("login with next=//evil.example/ redirects to %q, want /ui/", a.location)
	}
}

// TestViewerCannotAct: a viewer reads the fleet but cannot drain, nor
// look up routes (the API keeps lookups for the admin token).
func TestViewerCannotAct(t *testing.T) {
	p := startPlane(t)
	c := client(t)
	csrf := p.login(c, viewerToken)
	if a := p.get(c, "/ui/"); a.status != http.StatusOK || !strings.Contains(a.body, `id="appliance-x1"`) || strings.Contains(a.body, `id="drain-x1"`) {
		t.Errorf("viewer's fleet page = %d, want the appliances and no drain buttons", a.status)
	}
	a := p.post(c, "/ui/action", url.Values{"csrf": {csrf}, "action": {"drain"}, "appliance": {"x1"}}, nil)
	if a.status != http.StatusForbidden || !p.serving("x1") {
		t.Errorf("viewer's drain = %d, serving %v; want 403 and x1 still serving", a.status, p.serving("x1"))
	}
	if a := p.get(c, "/ui/routes?q=198.51.100.1"); a.status != http.StatusForbidden || strings.Contains(a.body, `id="explanation"`) {
		t.Errorf("viewer's lookup = %d, want 403 without an explanation", a.status)
	}
	if a := p.get(c, "/ui/confirm?action=drain&appliance=x1"); a.status != http.StatusForbidden {
		t.Errorf("viewer's confirmation page = %d, want 403", a.status)
	}
	// Placement is the API's to admins only: a viewer sees fill
	// progress, not replans or predicted demand.
	p.replan()
	if a := p.get(c, "/ui/fill"); a.status != http.StatusOK || !strings.Contains(a.body, `id="fill-progress"`) ||
		strings.Contains(a.body, `id="replans"`) || strings.Contains(a.body, `id="top-files"`) || strings.Contains(a.body, "churn-bound") {
		t.Errorf("viewer's fill page = %d, want fill progress without replans, churn bound or top files:\n%s", a.status, a.body)
	}
}

// TestActionsNeedCSRFAndSameOrigin: an operator's drain without the
// session's CSRF token, with a forged one, or cross-origin changes
// nothing; with it, the appliance leaves steering and the audit log says
// who; an unknown appliance is named in the refusal.
func TestActionsNeedCSRFAndSameOrigin(t *testing.T) {
	p := startPlane(t)
	c := client(t)
	csrf := p.login(c, operatorToken)
	drain := url.Values{"action": {"drain"}, "appliance": {"x1"}, "reason": {"disk swap <script>alert(1)</script>"}}
	for _, tc := range []struct {
		name   string
		csrf   string
		header map[string]string
		want   string
	}{
		{"missing CSRF token", "", nil, "CSRF token is missing or wrong"},
		{"forged CSRF token", "AAAA" + csrf[4:], nil, "CSRF token is missing or wrong"},
		{"another session's token", p.login(client(t), operatorToken) + "x", nil, "CSRF token is missing or wrong"},
		{"cross-origin", csrf, map[string]string{"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}, "cross-origin request refused"},
		{"cross-origin without fetch metadata", csrf, map[string]string{"Origin": "http://evil.example"}, "cross-origin request refused"},
	} {
		f := url.Values{"csrf": {tc.csrf}}
		for k, v := range drain {
			f[k] = v
		}
		a := p.post(c, "/ui/action", f, tc.header)
		if a.status != http.StatusForbidden || !strings.Contains(a.body, tc.want) {
			t.Errorf("%s: POST /ui/action = %d, want 403 saying %q:\n%.400s", tc.name, a.status, tc.want, a.body)
		}
		if !p.serving("x1") {
			t.Fatalf("%s: x1 left steering", tc.name)
		}
	}
	unknown := url.Values{"csrf": {csrf}, "action": {"drain"}, "appliance": {"x9<i>"}}
	if a := p.post(c, "/ui/action", unknown, nil); a.status != http.StatusNotFound || !strings.Contains(a.body, `Unknown appliance &#34;x9&lt;i&gt;&#34;`) {
		t.Errorf("drain of an unknown appliance = %d, want 404 naming it (escaped):\n%.600s", a.status, a.body)
	}
	if a := p.get(c, "/ui/confirm?action=drain&appliance=nope"); a.status != http.StatusNotFound || !strings.Contains(a.body, "Unknown appliance &#34;nope&#34;") {
		t.Errorf("confirmation page for an unknown appliance = %d, want 404 naming it", a.status)
	}
	if a := p.get(c, "/ui/confirm?action=drain&appliance=x1"); a.status != http.StatusOK || !strings.Contains(a.body, `id="confirm"`) {
		t.Errorf("confirmation page = %d, want the confirm button", a.status)
	}
	ok := url.Values{"csrf": {csrf}}
	for k, v := range drain {
		ok[k] = v
	}
	a := p.post(c, "/ui/action", ok, map[string]string{"Origin": p.base, "Sec-Fetch-Site": "same-origin"})
	if a.status != http.StatusSeeOther || !strings.HasPrefix(a.location, "/ui/?done=drain") {
		t.Fatalf("drain = %d to %q, want 303 back to the fleet:\n%.400s", a.status, a.location, a.body)
	}
	if p.serving("x1") {
		t.Error("x1 still serving after the console drained it")
	}
	audit := p.get(c, "/ui/audit").body
	if !strings.Contains(audit, "console:operator") || !strings.Contains(audit, "disk swap &lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Errorf("audit page does not show the console's drain with its reason as text:\n%s", audit)
	}
	if strings.Contains(audit, "<script>alert") {
		t.Error("audit page carries the reason's markup unescaped")
	}
	// Enable puts it back.
	en := url.Values{"csrf": {csrf}, "action": {"enable"}, "appliance": {"x1"}}
	if a := p.post(c, "/ui/action", en, nil); a.status != http.StatusSeeOther {
		t.Fatalf("enable = %d, want 303", a.status)
	}
	// Back in steering once its health allows (its beats continue; a
	// loaded machine may have let the last ones lapse).
	for deadline := time.Now().Add(10 * time.Second); !p.serving("x1"); {
		if time.Now().After(deadline) {
			t.Fatal("x1 not serving 10 s after the console enabled it")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestMarkupEscaped: appliance and site ids, query strings and file names
// reach pages as text. Demand at the site whose id is markup and a replan
// an operator asked the API for put that id into the fill page's
// placement tables; the page shows the control plane's record of the
// replan (its sequence number and reason), and the fleet's change list
// gets it once the console samples.
func TestMarkupEscaped(t *testing.T) {
	p := startPlane(t)
	c := client(t)
	p.login(c, operatorToken)
	hot := testCatalog(t).Files[0]
	p.demand(markupID, map[string]int64{hot.Path: 50 * hot.Size})
	rp := p.replan()
	if rp.Reason != "admin" || rp.Seq < 2 {
		t.Fatalf("POST /v1/admin/replan = %+v, want reason admin and a sequence number after the first plan's", rp)
	}
	fill := p.get(c, "/ui/fill").body
	row := regexp.MustCompile(fmt.Sprintf(`<tr data-seq="%d" data-reason="admin"><th scope="row">%d</th>.*?</tr>`, rp.Seq, rp.Seq)).FindString(
		strings.ReplaceAll(fill, "\n", " "))
	if row == "" || !strings.Contains(row, ">admin</td>") || !strings.Contains(row, "placed") {
		t.Errorf("fill page has no row for replan %d with reason admin:\n%s", rp.Seq, fill)
	}
	if !strings.Contains(fill, `id="churn-bound">10.0%<`) || !regexp.MustCompile(`id="replan-count">[1-9]`).MatchString(fill) {
		t.Errorf("fill page does not show the churn bound (10.0%%, the default) and the replan count:\n%s", fill)
	}
	top := regexp.MustCompile(`(?s)<table id="top-files-\d+" data-site="s&lt;i&gt;2">.*?</table>`).FindString(fill)
	if top == "" || !strings.Contains(top, "Site s&lt;i&gt;2:") ||
		!regexp.MustCompile(`<tr data-path="`+regexp.QuoteMeta(hot.Path)+`" data-placed="[1-9]"`).MatchString(top) {
		t.Errorf("fill page does not list %s, placed, among the top files of site s<i>2 (escaped):\n%s", hot.Path, fill)
	}
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for range tick.C {
		if strings.Contains(p.get(c, "/ui/").body, fmt.Sprintf("replan %d (admin):", rp.Seq)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the fleet's change list lacks replan %d 30 s after it", rp.Seq)
		}
	}
	for _, path := range []string{"/ui/", "/ui/routes?q=" + url.QueryEscape("<b id=q>") + "&file=" + url.QueryEscape("<i>x"),
		"/ui/routes?q=198.51.100.1&file=" + url.QueryEscape("t/<i id=f>"), "/ui/fill", "/ui/measure", "/ui/audit",
		"/ui/confirm?action=drain&appliance=" + url.QueryEscape(markupID), "/ui/" + url.PathEscape("<b>")} {
		a := p.get(c, path)
		for _, raw := range []string{"<b\tid=injected-id>", "<i>2", "<b id=q>", "<i>x", "<i id=f>", "<b>"} {
			if strings.Contains(a.body, raw) {
				t.Errorf("GET %s: page carries %q unescaped", path, raw)
			}
		}
	}
	if body := p.get(c, "/ui/").body; !strings.Contains(body, "&lt;b\tid=injected-id&gt;x") {
		t.Errorf("fleet page does not show the appliance id %q as text", markupID)
	}
	if a := p.get(c, "/ui/routes?q="+url.QueryEscape("<b id=q>")); a.status != http.StatusBadRequest || !strings.Contains(a.body, "&#34;&lt;b id=q&gt;&#34; is not an IP address or prefix") {
		t.Errorf("lookup of markup = %d, want 400 quoting it as text", a.status)
	}
}

// TestEveryPageRenders: each page answers 200 to both roles from the
// start, before any measurement or experiment arm exists.
func TestEveryPageRenders(t *testing.T) {
	p := startPlane(t)
	for _, tok := range []string{viewerToken, operatorToken} {
		c := client(t)
		p.login(c, tok)
		for _, path := range []string{"/ui/", "/ui/routes", "/ui/routes?q=198.51.100.7", "/ui/fill", "/ui/measure", "/ui/audit"} {
			a := p.get(c, path)
			want := http.StatusOK
			if tok == viewerToken && strings.Contains(path, "q=") {
				want = http.StatusForbidden
			}
			if a.status != want || !strings.Contains(a.body, `<main id="main"`) {
				t.Errorf("GET %s as %s = %d, want %d with the page:\n%.300s", path, tok[:8], a.status, want, a.body)
			}
		}
	}
}

// TestPlotData: the plot data follows the samples; the console samples
// every heartbeat interval (1s here).
func TestPlotData(t *testing.T) {
	p := startPlane(t)
	c := client(t)
	p.login(c, viewerToken)
	if a := p.get(c, "/ui/series.json?page=bogus"); a.status != http.StatusBadRequest {
		t.Errorf("series.json?page=bogus = %d, want 400", a.status)
	}
	type series struct {
		Labels []string     `json:"labels"`
		Data   [][]*float64 `json:"data"`
	}
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for range tick.C {
		var got map[string]series
		json.Unmarshal([]byte(p.get(c, "/ui/series.json?page=fleet").body), &got)
		s := got["serving"]
		if n := len(s.Data); n == 2 && len(s.Data[0]) >= 3 {
			last := s.Data[1][len(s.Data[1])-1]
			if last == nil || *last != 3 {
				t.Fatalf("serving series ends at %v, want 3 appliances", last)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no three samples of the fleet after 30s: %+v", got)
		}
	}
}

// TestConsoleTokensRefused: the daemon refuses token files that merge
// roles, naming the field.
func TestConsoleTokensRefused(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"admin": "admin-token-0123456789", "same1": "same-token-0123456789",
		"same2": "same-token-0123456789", "short": "secret"})
	f := func(name string) string {
		if name == "" {
			return ""
		}
		return filepath.Join(dir, name)
	}
	for _, tc := range []struct {
		admin, viewer, operator string
		want                    []string
	}{
		{"admin", "same1", "same2", []string{"viewer_token_file", "holds the operator token"}},
		{"same1", "same2", "", []string{"viewer_token_file", "holds the admin token"}},
		{"admin", "", "missing", []string{"operator_token_file"}},
		{"admin", "short", "", []string{"viewer_token_file", "at least 16"}},
	} {
		cfg := &config.Control{Catalog: f("catalog.json"), KeyFile: f("keys.json"), AdminTokenFile: f(tc.admin),
			ViewerTokenFile: f(tc.viewer), OperatorTokenFile: f(tc.operator)}
		_, err := daemon.ReadControlFiles(cfg)
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("ReadControlFiles(viewer %s, operator %s) = %v, want an error mentioning %q", tc.viewer, tc.operator, err, w)
			}
		}
	}
}
