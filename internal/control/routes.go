package control

import (
	"fmt"
	"net/http"
	"net/netip"
	"time"

	"github.com/ocdn/ocdn/internal/api"
	"github.com/ocdn/ocdn/internal/rib"
)

// routeState is where an appliance's route reports have got to.
type routeState struct {
	epoch string
	seq   uint64
}

// maxRoutesPerReport bounds one report; a full table is sent in chunks.
const maxRoutesPerReport = 2_000_000

// routesReadTimeout bounds reading one route report.
const routesReadTimeout = 10 * time.Minute

func (s *Server) handleRoutes(w http.ResponseWriter, r *http.Request) {
	var rep api.RouteReport
	// A full table is hundreds of MB: an authenticated appliance gets
	// longer than the server's whole-request deadline to send it (the
	// deadline is only extended once its credential checked out).
	if _, ok := s.authenticate(w, r); !ok {
		return
	}
	http.NewResponseController(w).SetReadDeadline(time.Now().Add(routesReadTimeout))
	if !s.readApplianceBody(w, r, "route report", maxRoutesBody, &rep, func() string { return rep.Appliance }) {
		return
	}
	if _, ok := s.applianceSite[rep.Appliance]; !ok {
		http.Error(w, fmt.Sprintf("route report: unknown appliance %q", rep.Appliance), http.StatusForbidden)
		return
	}
	if rep.Epoch == "" || len(rep.Announce)+len(rep.Withdraw) > maxRoutesPerReport {
		http.Error(w, "route report: epoch must be set and a report carry at most 2000000 changes", http.StatusBadRequest)
		return
	}
	for i, p := range rep.Withdraw {
		if !p.IsValid() || p != p.Masked() {
			http.Error(w, fmt.Sprintf("route report: withdraw[%d]: %s is not a canonical prefix", i, p), http.StatusBadRequest)
			return
		}
	}
	reply, err := s.applyRoutes(rep)
	if err != nil {
		// rib validates every route before changing anything.
		http.Error(w, "route report: "+err.Error(), http.StatusBadRequest)
		return
	}
	s.persistRoutes(rep.Appliance)
	writeJSON(w, reply)
}

// applyRoutes applies a report in order. Reports for one appliance are
// serialized so sequence checks and RIB updates agree.
func (s *Server) applyRoutes(rep api.RouteReport) (api.RouteReportReply, error) {
	s.routeMu.Lock()
	defer s.routeMu.Unlock()
	st := s.routeSeq[rep.Appliance]
	reply := func() api.RouteReportReply {
		cur := s.routeSeq[rep.Appliance]
		return api.RouteReportReply{Epoch: cur.epoch, Seq: cur.seq, Prefixes: s.routes.Prefixes(rep.Appliance)}
	}
	switch {
	case rep.Snapshot:
		if err := s.routes.Replace(rep.Appliance, rep.Announce); err != nil {
			return api.RouteReportReply{}, err
		}
		s.routeSeq[rep.Appliance] = routeState{epoch: rep.Epoch, seq: rep.Seq}
	case rep.Epoch != st.epoch || rep.Seq > st.seq+1:
		// A gap, or a restarted appliance we have no snapshot from.
		out := reply()
		out.Resync = true
		return out, nil
	case rep.Seq <= st.seq:
		return reply(), nil // already applied
	default:
		if err := s.routes.Apply(rep.Appliance, rep.Announce, rep.Withdraw); err != nil {
			return api.RouteReportReply{}, err
		}
		s.routeSeq[rep.Appliance] = routeState{epoch: rep.Epoch, seq: rep.Seq}
	}
	s.metrics.routeReports.Inc()
	return reply(), nil
}

// Consistency reports, per site, prefixes heard by some but not all of its
// appliances, and prefixes with no backup path at another site.
func (s *Server) Consistency() rib.Report {
	sites := map[string][]string{}
	for _, a := range s.cfg.Inventory.Appliances {
		sites[a.Site] = append(sites[a.Site], a.ID)
	}
	return rib.Consistency(s.routes.Snapshot(), sites)
}

// Lookup answers which appliances heard a route to addr (for operators).
func (s *Server) Lookup(addr netip.Addr) (netip.Prefix, []rib.Candidate, bool) {
	return s.routes.Snapshot().Lookup(addr)
}

// ribView gives steering the RIB's current snapshot on every lookup, so a
// route change is visible to the next decision without rebuilding the
// steering snapshot.
type ribView struct{ r *rib.RIB }

func (v ribView) Lookup(a netip.Addr) (netip.Prefix, []rib.Candidate, bool) {
	return v.r.Snapshot().Lookup(a)
}

// LoadSiteRoutes gives every appliance of site the routes of a global
// table (a full table learned at an exchange, loaded from MRT or a prefix
// list), as if each had heard them over BGP. It replaces what the
// appliances had; a later BGP snapshot from the appliance replaces it in
// turn.
func (s *Server) LoadSiteRoutes(site string, routes []rib.Route) error {
	if _, ok := s.sites[site]; !ok {
		return fmt.Errorf("unknown site %q", site)
	}
	for _, a := range s.cfg.Inventory.Appliances {
		if a.Site == site {
			if err := s.routes.Replace(a.ID, routes); err != nil {
				return fmt.Errorf("routes for %s: %w", a.ID, err)
			}
		}
	}
	return nil
}

// LookupReply is the body of GET /v1/routes/lookup.
type LookupReply struct {
	IP         string          `json:"ip"`
	Prefix     string          `json:"prefix,omitempty"`
	Candidates []rib.Candidate `json:"candidates"`
}

func (s *Server) handleLookup(w http.ResponseWriter, r *http.Request) {
	if !s.isAdmin(r) {
		http.Error(w, "routes lookup needs an admin token", http.StatusForbidden)
		return
	}
	ip, err := netip.ParseAddr(r.URL.Query().Get("ip"))
	if err != nil {
		http.Error(w, fmt.Sprintf("ip=%q: not an IP address", r.URL.Query().Get("ip")), http.StatusBadRequest)
		return
	}
	reply := LookupReply{IP: ip.String(), Candidates: []rib.Candidate{}}
	if pfx, cands, ok := s.Lookup(ip); ok {
		reply.Prefix, reply.Candidates = pfx.String(), cands
	}
	writeJSON(w, reply)
}
