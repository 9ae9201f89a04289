package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"net/netip"
	"net/url"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ocdn/ocdn/internal/analyze"
	"github.com/ocdn/ocdn/internal/api"
	"github.com/ocdn/ocdn/internal/control"
	"github.com/ocdn/ocdn/internal/cpstore"
	"github.com/ocdn/ocdn/internal/measure"
	"github.com/ocdn/ocdn/internal/rib"
	"github.com/ocdn/ocdn/internal/stats"
)

// contentSecurityPolicy allows only the console's own files: no inline
// script, no inline style, nothing from elsewhere. Markup that slipped
// past escaping still could not run.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

func (c *Console) routes() {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ui/login", c.loginPage)
	mux.HandleFunc("POST /ui/login", c.loginSubmit)
	mux.HandleFunc("POST /ui/logout", c.logout)
	mux.Handle("GET /ui/static/", assetHandler(staticFS, "static", "/ui/static/"))
	mux.Handle("GET /ui/vendor/", assetHandler(vendorFS, "vendor", "/ui/vendor/"))
	mux.HandleFunc("GET /ui/{$}", c.authed(roleViewer, c.fleetPage))
	mux.HandleFunc("GET /ui/routes", c.authed(roleViewer, c.routesPage))
	mux.HandleFunc("GET /ui/fill", c.authed(roleViewer, c.fillPage))
	mux.HandleFunc("GET /ui/measure", c.authed(roleViewer, c.measurePage))
	mux.HandleFunc("GET /ui/audit", c.authed(roleViewer, c.auditPage))
	mux.HandleFunc("GET /ui/confirm", c.authed(roleOperator, c.confirmPage))
	mux.HandleFunc("POST /ui/action", c.authed(roleOperator, c.action))
	mux.HandleFunc("GET /ui/series.json", c.authed(roleViewer, c.seriesJSON))
	mux.HandleFunc("/ui/", c.authed(roleViewer, func(w http.ResponseWriter, r *http.Request, s session) {
		c.fail(w, r, s, http.StatusNotFound, "No such page: %s", r.URL.Path)
	}))
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.log.Warn("cross-origin request refused", "path", r.URL.Path, "origin", r.Header.Get("Origin"), "remote", r.RemoteAddr)
		http.Error(w, "cross-origin request refused: the console takes form posts from its own pages only", http.StatusForbidden)
	}))
	c.mux = securityHeaders(cop.Handler(mux))
}

func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", contentSecurityPolicy)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "same-origin")
		hd.Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}

// authed admits requests with a session of at least need. Without one, a
// page request gets the login page (by redirect) and a data request a
// 401; with too weak a role, a 403 that says which token is needed.
func (c *Console) authed(need role, h func(http.ResponseWriter, *http.Request, session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, ok := c.session(r)
		if !ok {
			if r.Method == http.MethodGet && r.URL.Path != "/ui/series.json" {
				http.Redirect(w, r, "/ui/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			http.Error(w, "console: sign in first (no valid session)", http.StatusUnauthorized)
			return
		}
		if s.role < need {
			c.fail(w, r, s, http.StatusForbidden, "This needs an operator token; you are signed in as a %s.", s.role)
			return
		}
		h(w, r, s)
	}
}

// pageData is what the layout needs besides a page's own data.
type pageData struct {
	Title, Page string
	Role        string
	Operator    bool
	CSRF        string
	Now         time.Time
	Refresh     int
	Assets      assets
	Flash       string
	Error       string
	Data        any
}

func (c *Console) render(w http.ResponseWriter, r *http.Request, s session, status int, tmpl, title string, data any) {
	pd := pageData{Title: title, Page: tmpl, Role: s.role.String(), Operator: s.operator(), CSRF: c.csrf(s), Now: c.cfg.Now(),
		Refresh: max(1, int(c.cfg.SampleEvery/time.Second)), Assets: embeddedAssets(), Data: data}
	if s.role == roleNone {
		pd.Role = ""
	}
	if f, ok := data.(interface{ flash() string }); ok {
		pd.Flash = f.flash()
	}
	t := c.pages[tmpl]
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", pd); err != nil {
		c.log.Error("rendering a console page", "page", tmpl, "err", err)
		http.Error(w, "console: internal error rendering the page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// fail answers an error page; the message is escaped like any other text.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, s session, status int, format string, args ...any) {
	c.render(w, r, s, status, "error", http.StatusText(status), errorView{Message: fmt.Sprintf(format, args...)})
}

type errorView struct{ Message string }

// --- login ---

type loginView struct {
	Next, Error string
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, session{}, http.StatusOK, "login", "Sign in", loginView{Next: safeNext(r.URL.Query().Get("next"))})
}

func (c *Console) loginSubmit(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	next := safeNext(r.PostFormValue("next"))
	ro := c.login(r.PostFormValue("token"))
	if ro == roleNone {
		// Never echo the token, not even in the log.
		c.log.Warn("console sign-in refused", "remote", r.RemoteAddr)
		c.render(w, r, session{}, http.StatusUnauthorized, "login", "Sign in",
			loginView{Next: next, Error: "That is neither the viewer nor the operator token of this control plane."})
		return
	}
	c.setSession(w, r, ro)
	c.log.Info("console sign-in", "role", ro.String(), "remote", r.RemoteAddr)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	if s, ok := c.session(r); ok && !c.checkCSRF(s, r) {
		c.fail(w, r, s, http.StatusForbidden, "The form's CSRF token is missing or wrong; reload the page and try again.")
		return
	}
	clearSession(w, r)
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}

// --- fleet ---

type fleetView struct {
	Total, Serving, Drained int
	Map                     mapData
	Rows                    []applianceRow
	Events                  []event
	Done                    string
}

func (f fleetView) flash() string { return f.Done }

type mapData struct {
	W, H    float64
	Outline string
	Sites   []mapSite
}

type applianceRow struct {
	api.ApplianceStatus
	Beat    api.Heartbeat
	HasBeat bool
	Drained bool
	Fill    *api.FillProgress
}

// Since is how long ago the last heartbeat came.
func (a applianceRow) Since(now time.Time) string {
	if a.LastBeat.IsZero() {
		return "never"
	}
	return ago(now.Sub(a.LastBeat))
}

func (c *Console) fleetPage(w http.ResponseWriter, r *http.Request, s session) {
	v := fleetView{}
	sts := c.cfg.Plane.Appliances()
	// Fill progress is what GET /v1/fill/status serves without a token.
	fill := map[string]*api.FillProgress{}
	progress := c.cfg.Plane.FillSummary().Progress
	for i := range progress {
		fill[progress[i].Appliance] = &progress[i]
	}
	bySite := map[string]*mapSite{}
	for _, site := range c.cfg.Inventory.Sites {
		x, y := c.geo.view.project(site.Location.Lon, site.Location.Lat)
		bySite[site.ID] = &mapSite{ID: site.ID, Kind: string(site.Kind), X: x, Y: y}
	}
	for _, st := range sts {
		row := applianceRow{ApplianceStatus: st, Drained: st.State == "draining" || st.State == "drained", Fill: fill[st.ID]}
		row.Beat, row.HasBeat = c.cfg.Plane.Latest(st.ID)
		v.Rows = append(v.Rows, row)
		v.Total++
		if st.Serving {
			v.Serving++
		}
		if row.Drained {
			v.Drained++
		}
		if m := bySite[st.Site]; m != nil {
			m.Appliances++
			if st.Serving {
				m.Serving++
			}
		}
	}
	var sites []mapSite
	for _, m := range bySite {
		switch {
		case m.Appliances == 0:
			m.State = "empty"
		case m.Serving == m.Appliances:
			m.State = "ok"
		case m.Serving == 0:
			m.State = "down"
		default:
			m.State = "partial"
		}
		sites = append(sites, *m)
	}
	v.Map = mapData{W: c.geo.view.W, H: c.geo.view.H, Outline: c.geo.outline, Sites: c.geo.markers(sites)}
	kinds := []string{"state", "routes"}
	if s.operator() { // replans are the API's to admins only
		kinds = append(kinds, "replan")
	}
	v.Events = c.hist.recentEvents(15, kinds...)
	if q := r.URL.Query(); q.Get("done") != "" {
		v.Done = fmt.Sprintf("%s of %s recorded in the audit log.", q.Get("done"), q.Get("appliance"))
	}
	c.render(w, r, s, http.StatusOK, "fleet", "Fleet", v)
}

// --- routes ---

type routesView struct {
	Query, File string
	Lookup      *lookupView
	Consistency rib.Report
	Changes     []event
}

type lookupView struct {
	Client     netip.Addr
	Prefix     string
	Candidates []rib.Candidate
	Steer      api.FileSteer
}

func (c *Console) defaultFile() string {
	files := c.cfg.Catalog.Files
	if len(files) == 0 {
		return ""
	}
	best := files[0].Path
	for _, f := range files[1:] {
		if f.Path < best {
			best = f.Path
		}
	}
	return best
}

// parseLookup reads the lookup form: an address, or a prefix (its first
// address is looked up).
func parseLookup(q string) (netip.Addr, error) {
	q = strings.TrimSpace(q)
	if a, err := netip.ParseAddr(q); err == nil {
		return a.Unmap(), nil
	}
	if p, err := netip.ParsePrefix(q); err == nil {
		return p.Masked().Addr(), nil
	}
	return netip.Addr{}, fmt.Errorf("%q is not an IP address or prefix", q)
}

func (c *Console) routesPage(w http.ResponseWriter, r *http.Request, s session) {
	q := r.URL.Query()
	v := routesView{Query: q.Get("q"), File: q.Get("file"), Consistency: c.cfg.Plane.Consistency(), Changes: c.hist.recentEvents(20, "routes")}
	if v.File == "" {
		v.File = c.defaultFile()
	}
	status := http.StatusOK
	var problem string
	if v.Query != "" {
		switch addr, err := parseLookup(v.Query); {
		case !s.operator():
			status, problem = http.StatusForbidden, "Route lookups and steering explanations need an operator token (the API gives them to the admin token only)."
		case err != nil:
			status, problem = http.StatusBadRequest, "Look up: "+err.Error()
		default:
			lv := &lookupView{Client: addr}
			if pfx, cands, ok := c.cfg.Plane.Lookup(addr); ok {
				lv.Prefix, lv.Candidates = pfx.String(), cands
			}
			if lv.Steer, err = c.cfg.Plane.Explain(addr, v.File, 5); err != nil {
				status, problem = http.StatusBadRequest, fmt.Sprintf("File %q: %v", v.File, err)
				break
			}
			v.Lookup = lv
		}
	}
	c.renderWithError(w, r, s, status, "routes", "Routes", v, problem)
}

func (c *Console) renderWithError(w http.ResponseWriter, r *http.Request, s session, status int, tmpl, title string, data any, problem string) {
	if problem == "" {
		c.render(w, r, s, status, tmpl, title, data)
		return
	}
	c.render(w, r, s, status, tmpl, title, withError{data, problem})
}

// withError carries a page's data with a problem to show above it.
type withError struct {
	Page    any
	Problem string
}

// --- fill ---

type fillView struct {
	Progress  []api.FillProgress
	Sites     []siteManifest
	BadCopies int
	Placement *placementView // operators only
}

type siteManifest struct {
	Site       string
	Appliances int
	Files      int
	Bytes      int64
	Versions   []string
}

// placementView is the control plane's own record of its placement loop
// (GET /v1/admin/placement): the churn bound, the recent replans and what
// demand predicts per site.
type placementView struct {
	ChurnBound float64
	Replans    int // since start
	Recent     []replanRow
	Top        []siteTop
}

// replanRow is one replan as the table shows it: the site it made churn
// most (its share of the site's capacity, against the bound; none when it
// added nothing) and the sites the bound held back.
type replanRow struct {
	api.Replan
	MaxSite  string
	MaxShare float64
	Capped   []string
}

type siteTop struct {
	Site       string
	Appliances int
	Files      []api.FileDemand
}

// shownReplans and topFiles bound the fill page's placement tables.
const (
	shownReplans = 10
	topFiles     = 10
)

func (c *Console) fillPage(w http.ResponseWriter, r *http.Request, s session) {
	sum := c.cfg.Plane.FillSummary()
	v := fillView{Progress: sum.Progress}
	if s.operator() {
		bySite := map[string]*siteManifest{}
		for _, a := range c.cfg.Inventory.Appliances {
			m, ok := sum.Manifests[a.ID]
			if !ok {
				continue
			}
			sm := bySite[a.Site]
			if sm == nil {
				sm = &siteManifest{Site: a.Site}
				bySite[a.Site] = sm
			}
			sm.Appliances++
			sm.Files += m.Files
			sm.Bytes += m.Bytes
			if !contains(sm.Versions, m.Version) {
				sm.Versions = append(sm.Versions, m.Version)
			}
		}
		for _, sm := range bySite {
			v.Sites = append(v.Sites, *sm)
		}
		sort.Slice(v.Sites, func(i, j int) bool { return v.Sites[i].Site < v.Sites[j].Site })
		v.BadCopies = sum.BadCopies
		v.Placement = c.placement()
	}
	c.render(w, r, s, http.StatusOK, "fill", "Fill and placement", v)
}

// placement reads the control plane's placement status for the fill
// page: the newest replans first, sites in inventory order.
func (c *Console) placement() *placementView {
	st := c.cfg.Plane.PlacementStatus(topFiles)
	pv := &placementView{ChurnBound: st.ChurnBound, Replans: st.Replans}
	for i := len(st.Recent) - 1; i >= 0 && len(pv.Recent) < shownReplans; i-- {
		pv.Recent = append(pv.Recent, replanRowOf(st.Recent[i]))
	}
	appliances := map[string]int{}
	for _, a := range c.cfg.Inventory.Appliances {
		appliances[a.Site]++
	}
	for _, site := range c.cfg.Inventory.Sites {
		pv.Top = append(pv.Top, siteTop{Site: site.ID, Appliances: appliances[site.ID], Files: st.Top[site.ID]})
	}
	return pv
}

func replanRowOf(r api.Replan) replanRow {
	row := replanRow{Replan: r}
	for _, sc := range r.Sites {
		if sc.Share > row.MaxShare {
			row.MaxSite, row.MaxShare = sc.Site, sc.Share
		}
		if sc.Capped {
			row.Capped = append(row.Capped, sc.Site)
		}
	}
	return row
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// --- measurements ---

type measureView struct {
	Enabled bool
	Trail   time.Duration
	Sites   []siteQuantiles
	Arms    armsView
	HasArms bool
	Misses  *missView
}

type siteQuantiles struct {
	Site              string
	Count             float64
	TTFB, Connect, TP [3]float64 // p50, p90, p99
}

type missView struct {
	api.Misses
	Total   int64
	Offload float64 // share of bytes from the client's best local site
}

func (c *Console) measurePage(w http.ResponseWriter, r *http.Request, s session) {
	v := measureView{Enabled: c.cfg.Measure != nil, Trail: c.trailWindow(), Arms: c.armsNow(), HasArms: c.cfg.MeasureDir != ""}
	if c.cfg.Measure != nil {
		v.Sites = c.siteQuantiles()
	}
	if s.operator() {
		m := c.cfg.Plane.FillSummary().Misses
		mv := &missView{Misses: m, Total: m.Local + m.Content + m.Health + m.Other}
		if mv.Total > 0 {
			mv.Offload = float64(m.Local) / float64(mv.Total)
		}
		v.Misses = mv
	}
	c.render(w, r, s, http.StatusOK, "measure", "Measurements", v)
}

// siteQuantiles merges every prefix group's sketches per site: what
// clients measured of each site since the control plane started.
func (c *Console) siteQuantiles() []siteQuantiles {
	type key struct{ site, metric string }
	merged := map[key]*stats.Sketch{}
	for _, a := range c.cfg.Measure.Aggregates() {
		sk := c.cfg.Measure.Sketch(a.Group, a.Site, a.Metric)
		if sk == nil {
			continue
		}
		k := key{a.Site, a.Metric}
		if merged[k] == nil {
			merged[k] = stats.NewSketch()
		}
		_ = merged[k].Merge(sk) // one mapping for every sketch
	}
	bySite := map[string]*siteQuantiles{}
	for k, sk := range merged {
		sq := bySite[k.site]
		if sq == nil {
			sq = &siteQuantiles{Site: k.site}
			bySite[k.site] = sq
		}
		var dst *[3]float64
		switch k.metric {
		case measure.MetricTTFBMs:
			dst = &sq.TTFB
			sq.Count = sk.Count()
		case measure.MetricConnectMs:
			dst = &sq.Connect
		case measure.MetricThroughputBps:
			dst = &sq.TP
		default:
			continue
		}
		for i, q := range []float64{0.5, 0.9, 0.99} {
			dst[i], _ = sk.Quantile(q)
		}
	}
	out := make([]siteQuantiles, 0, len(bySite))
	for _, sq := range bySite {
		out = append(out, *sq)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Site < out[j].Site })
	return out
}

// --- audit ---

type auditView struct {
	Enabled bool
	Entries []auditEntry
	Total   int
}

// auditEntry is a logged action with its JSON detail unpacked into
// fields, so a reason reads as the operator typed it (as text).
type auditEntry struct {
	cpstore.AdminAction
	Fields [][2]string
}

func unpackDetail(a cpstore.AdminAction) auditEntry {
	e := auditEntry{AdminAction: a}
	var m map[string]any
	if json.Unmarshal([]byte(a.Detail), &m) != nil {
		return e
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		e.Fields = append(e.Fields, [2]string{k, fmt.Sprint(m[k])})
	}
	return e
}

const auditShown = 200

func (c *Console) auditPage(w http.ResponseWriter, r *http.Request, s session) {
	v := auditView{Enabled: c.cfg.Audit != nil}
	if v.Enabled {
		all, err := c.cfg.Audit.AdminLog(r.Context())
		if err != nil {
			c.fail(w, r, s, http.StatusServiceUnavailable, "The audit log could not be read: %v", err)
			return
		}
		v.Total = len(all)
		for i := len(all) - 1; i >= 0 && len(v.Entries) < auditShown; i-- {
			v.Entries = append(v.Entries, unpackDetail(all[i]))
		}
	}
	c.render(w, r, s, http.StatusOK, "audit", "Audit log", v)
}

// --- actions ---

type confirmView struct {
	Action    string
	Appliance api.ApplianceStatus
}

// maxReason bounds the reason recorded with an action.
const maxReason = 200

func (c *Console) findAppliance(id string) (api.ApplianceStatus, bool) {
	for _, st := range c.cfg.Plane.Appliances() {
		if st.ID == id {
			return st, true
		}
	}
	return api.ApplianceStatus{}, false
}

func (c *Console) confirmPage(w http.ResponseWriter, r *http.Request, s session) {
	q := r.URL.Query()
	action, id := q.Get("action"), q.Get("appliance")
	if action != "drain" && action != "enable" {
		c.fail(w, r, s, http.StatusBadRequest, "Unknown action %q: the console drains and enables appliances.", action)
		return
	}
	st, ok := c.findAppliance(id)
	if !ok {
		c.fail(w, r, s, http.StatusNotFound, "Unknown appliance %q: it is not in this control plane's inventory.", id)
		return
	}
	c.render(w, r, s, http.StatusOK, "confirm", "Confirm "+action, confirmView{Action: action, Appliance: st})
}

func (c *Console) action(w http.ResponseWriter, r *http.Request, s session) {
	r.Body = http.MaxBytesReader(w, r.Body, 8192)
	if !c.checkCSRF(s, r) {
		c.log.Warn("console action refused: bad CSRF token", "remote", r.RemoteAddr)
		c.fail(w, r, s, http.StatusForbidden, "The form's CSRF token is missing or wrong; nothing was done. Reload the page and try again.")
		return
	}
	action, id, reason := r.PostFormValue("action"), r.PostFormValue("appliance"), strings.TrimSpace(r.PostFormValue("reason"))
	if len(reason) > maxReason || !utf8.ValidString(reason) {
		c.fail(w, r, s, http.StatusBadRequest, "The reason is longer than %d bytes or not text; nothing was done.", maxReason)
		return
	}
	if _, ok := c.findAppliance(id); !ok {
		c.fail(w, r, s, http.StatusNotFound, "Unknown appliance %q: nothing was done.", id)
		return
	}
	req := control.DrainRequest{Appliance: id, Reason: reason, Actor: "console:" + s.role.String()}
	var err error
	switch action {
	case "drain":
		_, err = c.cfg.Plane.Drain(req)
	case "enable":
		_, err = c.cfg.Plane.Enable(r.Context(), req)
	default:
		c.fail(w, r, s, http.StatusBadRequest, "Unknown action %q: nothing was done.", action)
		return
	}
	if err != nil {
		status := http.StatusBadRequest
		if action == "enable" && strings.Contains(err.Error(), "refused") {
			status = http.StatusConflict
		}
		c.fail(w, r, s, status, "The control plane refused to %s %s: %v", action, id, err)
		return
	}
	c.log.Info("console action", "action", action, "appliance", id, "remote", r.RemoteAddr)
	http.Redirect(w, r, "/ui/?done="+url.QueryEscape(action)+"&appliance="+url.QueryEscape(id), http.StatusSeeOther)
}

// --- plot data ---

func (c *Console) seriesJSON(w http.ResponseWriter, r *http.Request, s session) {
	page := r.URL.Query().Get("page")
	switch page {
	case "fleet", "routes", "fill", "measure":
	default:
		http.Error(w, fmt.Sprintf("page=%q: want fleet, routes, fill or measure", page), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(c.seriesFor(page))
}

// --- template helpers ---

var funcs = template.FuncMap{
	"bytes": bytesLabel,
	"bits": func(v float64) string {
		return siLabel(v, "bit/s")
	},
	"ms": func(v float64) string {
		if math.IsNaN(v) || v == 0 {
			return "–"
		}
		return fmt.Sprintf("%.1f ms", v)
	},
	"mbps": func(v float64) string {
		if math.IsNaN(v) || v == 0 {
			return "–"
		}
		return fmt.Sprintf("%.1f Mbit/s", v/1e6)
	},
	"pct": func(v float64) string { return fmt.Sprintf("%.0f%%", 100*v) },
	// share is finer than pct: a replan's churn is often a few tenths
	// of a percent of a site.
	"share":  func(v float64) string { return fmt.Sprintf("%.1f%%", 100*v) },
	"perday": func(v float64) string { return siLabel(v, "B/day") },
	"num":    func(v float64) string { return fmt.Sprintf("%.0f", v) },
	"clock": func(t time.Time) string {
		if t.IsZero() {
			return "–"
		}
		return t.Local().Format("15:04:05")
	},
	"iso": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"ago": func(now, t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return ago(now.Sub(t))
	},
	"aspath": func(p []uint32) string {
		s := make([]string, len(p))
		for i, a := range p {
			s[i] = fmt.Sprint(a)
		}
		return strings.Join(s, " ")
	},
	"inc":    func(i int) int { return i + 1 },
	"mul100": func(v float64) float64 { return 100 * v },
	"partial": func(r rib.Report) bool {
		for _, s := range r.Sites {
			if len(s.Partial) > 0 {
				return true
			}
		}
		return false
	},
	// armTitle and armv write an arm comparison's metric (a pulse
	// metric or a playback one, by column name) and its figures in the
	// title's unit: rates in bit/s are shown in Mbit/s.
	"armTitle": armTitle,
	"armv": func(metric string, v float64, sign string) string {
		if strings.HasSuffix(metric, "_bps") {
			v /= 1e6
		}
		return fmt.Sprintf("%"+sign+".2f", v)
	},
	"problem": func(d any) string {
		if e, ok := d.(withError); ok {
			return e.Problem
		}
		return ""
	},
	"page": func(d any) any {
		if e, ok := d.(withError); ok {
			return e.Page
		}
		return d
	},
}

// armTitle is the human label of an experiment metric (analyze's
// ExperimentMetrics), with its unit.
func armTitle(metric string) string {
	for _, m := range analyze.Metrics {
		if m.String() == metric {
			return m.Title()
		}
	}
	switch metric {
	case "startup_ms":
		return "Startup delay (ms)"
	case "rebuffer_ratio":
		return "Rebuffering (share of play time)"
	case "bitrate_kbps":
		return "Average bitrate (kbit/s)"
	}
	return metric
}

func ago(d time.Duration) string {
	switch {
	case d < 0:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%.1f s ago", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	}
	return fmt.Sprintf("%.1f h ago", d.Hours())
}

func bytesLabel(n int64) string { return siLabel(float64(n), "B") }

func siLabel(v float64, unit string) string {
	for _, p := range []struct {
		f float64
		s string
	}{{1e12, "T"}, {1e9, "G"}, {1e6, "M"}, {1e3, "k"}} {
		if math.Abs(v) >= p.f {
			return fmt.Sprintf("%.1f %s%s", v/p.f, p.s, unit)
		}
	}
	return fmt.Sprintf("%.0f %s", v, unit)
}

func itoa(n int) string { return fmt.Sprint(n) }

// stateLabel is an appliance's state as the event list shows it.
func stateLabel(st api.ApplianceStatus) string {
	if !st.Serving && (st.State == "up" || st.State == "degraded" || st.State == "overloaded") {
		return st.State + " (not serving)"
	}
	return st.State
}
