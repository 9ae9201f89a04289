package control

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"sort"

	"github.com/ocdn/ocdn/internal/dns"
	"github.com/ocdn/ocdn/internal/measure"
	"github.com/ocdn/ocdn/internal/probe"
	"github.com/ocdn/ocdn/internal/steer"
	"github.com/ocdn/ocdn/internal/urlsign"
)

// openMeasure opens the measurement store when the config names one.
func (s *Server) openMeasure() error {
	if s.cfg.MeasureDir == "" {
		return nil
	}
	contexts, err := contextSigner(s.cfg.Keys)
	if err != nil {
		return err
	}
	s.contexts = contexts
	opts := measure.Options{Registerer: s.cfg.Registry, Logger: s.cfg.Logger, Contexts: contexts}
	if s.cfg.Store != nil && s.cfg.Store.Shared() {
		// Replicas share the store: a report re-sent to another replica
		// must not be stored twice (measure/claims.go).
		opts.Claims = s.cfg.Store
	}
	if c := &s.cfg.Measured; c.Enabled || c.Experiment != nil {
		c.setDefaults()
		s.msteer = newMeasuredSteering(*c, s.cfg.Now(), s.cfg.Registry)
		opts.Observe = s.msteer.observe
	}
	if s.cfg.ProbeLog != nil {
		opts.Resolvers = resolverJoiner{s}
	}
	ing, err := measure.Open(s.cfg.MeasureDir, measure.FuncAnnotator(s.annotate), opts)
	if err != nil {
		return fmt.Errorf("measurement store %s: %w", s.cfg.MeasureDir, err)
	}
	s.measure = ing
	return nil
}

// annotate tells the ingester, from the control plane's own view, which
// routed prefix, ISP and AS a client is in and at which site an appliance
// is. It runs on the report path, so it only reads immutable tables.
func (s *Server) annotate(client netip.Addr, appliance string) measure.Annotation {
	var a measure.Annotation
	if pfx, _, ok := s.Lookup(client); ok {
		a.PrefixGroup = pfx.String()
	}
	if isp, ok := s.ispOf.Lookup(client); ok {
		a.ISP, a.ASN = isp.Name, isp.ASN
		if a.PrefixGroup == "" {
			if p, _, ok := s.ispOf.LookupPrefixLPM(netip.PrefixFrom(client, client.BitLen())); ok {
				a.PrefixGroup = p.String()
			}
		}
	}
	a.Site = s.applianceSite[appliance]
	if s.msteer != nil && s.msteer.exp != nil {
		a.Arm = s.msteer.exp.arm(client)
	}
	return a
}

// probeFile is what clients probe: the catalog's first (smallest-title)
// file, which every site holds first under rendezvous placement of a
// popular file.
func (s *Server) probeFile() string {
	files := s.cfg.Catalog.Files
	if len(files) == 0 {
		return ""
	}
	best := files[0]
	for _, f := range files[1:] {
		if f.Title() == best.Title() && f.Size > best.Size {
			best = f
		}
	}
	return best.Path
}

// probeTargets are a client's steered appliances for the probe file plus,
// for comparison, the best-ranked serving appliance of every other site
// that holds it; for a dual-stack client, with families: both, each
// dual-stack one over the other family as well.
func (s *Server) probeTargets(client netip.Addr, dualStack bool) ([]probe.Target, error) {
	path := s.probeFile()
	snap := s.snap.Load()
	choices, _, err := s.engine.Steer(snap, client, path, s.cfg.ProbeTargets, false)
	if err != nil {
		return nil, err
	}
	own := steer.FamilyClient.For(client)
	var out []probe.Target
	sites := map[string]bool{}
	for _, c := range choices {
		out = append(out, probe.Target{ID: c.Appliance, Appliance: c.Appliance, Site: c.Site, URL: c.URL, Steered: true, Family: familyName(own)})
		sites[c.Site] = true
	}
	var others []*steer.Appliance
	for _, a := range snap.Appliances {
		if !sites[a.Site] && a.Serving && a.Holds[path] {
			others = append(others, a)
		}
	}
	sort.Slice(others, func(i, j int) bool { return others[i].ID < others[j].ID })
	for _, a := range others {
		if sites[a.Site] || a.Base(own) == "" { // none over the client's family
			continue
		}
		sites[a.Site] = true
		u, err := s.engine.URLFamily(a, own, path)
		if err != nil {
			return nil, err
		}
		out = append(out, probe.Target{ID: a.ID, Appliance: a.ID, Site: a.Site, URL: u, Family: familyName(own)})
	}
	if s.cfg.ProbeBothFamilies && dualStack {
		other := steer.FamilyIPv4 + steer.FamilyIPv6 - own
		for _, t := range out[:len(out):len(out)] {
			a := snap.Appliances[t.Appliance]
			if a == nil || a.Base(other) == "" {
				continue
			}
			u, err := s.engine.URLFamily(a, other, path)
			if err != nil {
				return nil, err
			}
			out = append(out, probe.Target{ID: a.ID + "/" + familyName(other), Appliance: a.ID, Site: a.Site, URL: u,
				Steered: t.Steered, Family: familyName(other)})
		}
	}
	if len(out) == 0 {
		return nil, probe.ErrNoTargets
	}
	return out, nil
}

// mountMeasure adds POST /v1/reports, POST /v1/transport and GET
// /v1/recipe.
func (s *Server) mountMeasure(mux *http.ServeMux) {
	if s.measure == nil {
		return
	}
	mux.Handle("POST /v1/reports", s.measure.Handler(measure.DefaultRateLimit))
	mux.HandleFunc("POST /v1/transport", s.handleTransport)
	cfg := s.cfg.Recipe
	cfg.Version = "1"
	if s.msteer != nil && s.msteer.exp != nil {
		cfg.Context = s.recipeContext
	}
	cfg.Sign = s.contexts.Sign
	// issued_at on the clock measured steering records its moves with, so
	// an analysis can tell a recipe issued before a move from one after.
	cfg.Now = s.cfg.Now
	mux.Handle("GET /v1/recipe", probe.RecipeHandler(s.probeTargets, cfg))
}

// contextSigner signs recipe contexts with keys derived from the
// URL-signing keys of the config's key file, which every replica loads:
// any replica verifies what another issued, and no new secret needs
// distributing. The derivation (an HMAC of a fixed label) keeps the
// context key useless for minting content tokens. Keys rotated in at run
// time are not used: a context signed before a restart still verifies.
func contextSigner(ks *urlsign.KeySet) (*measure.ContextSigner, error) {
	if ks == nil {
		return nil, errors.New("measurement store: recipe contexts are signed with the URL-signing keys, and there are none")
	}
	var keys [][]byte
	for _, k := range ks.Keys {
		material := k.Secret
		if len(material) == 0 {
			material = k.Private
		}
		if len(material) == 0 {
			continue // a verifier's public key: nothing secret to derive from
		}
		m := hmac.New(sha256.New, material)
		m.Write([]byte("ocdn recipe context key v1"))
		if k.ID == ks.Active {
			keys = append([][]byte{m.Sum(nil)}, keys...)
		} else {
			keys = append(keys, m.Sum(nil))
		}
	}
	if len(keys) == 0 {
		return nil, errors.New("measurement store: the key file holds no private key to sign recipe contexts with")
	}
	return measure.NewContextSigner(keys...)
}

// measuredView is the steering snapshot's measurement hook, or nil when
// measured steering is off.
func (s *Server) measuredView() steer.Measurements {
	if s.msteer == nil || !s.cfg.Measured.Enabled {
		return nil
	}
	return measuredView{&s.msteer.cur}
}

// maxTransportBody bounds a transport batch: measure.MaxTransportRecords
// records of about 800 bytes of JSON each.
const maxTransportBody = 8 << 20

// handleTransport stores an appliance's batch of transport records on the
// probe reports' exactly-once path. Authenticated as heartbeats are; the
// site comes from the inventory, not the appliance. Answers 200
// measure.AcceptResponse (Pulses: records stored), 400 naming the field
// of an impossible value, 503 when it could not be stored (retry).
func (s *Server) handleTransport(w http.ResponseWriter, r *http.Request) {
	var b measure.TransportBatch
	if !s.readApplianceBody(w, r, "transport", maxTransportBody, &b, func() string { return b.Appliance }) {
		return
	}
	site, ok := s.applianceSite[b.Appliance]
	if !ok {
		http.Error(w, fmt.Sprintf("transport: unknown appliance %q", b.Appliance), http.StatusForbidden)
		return
	}
	b.Site = site
	res, err := s.measure.IngestTransport(r.Context(), &b)
	switch {
	case errors.Is(err, measure.ErrInvalidReport), errors.Is(err, measure.ErrFutureDated), errors.Is(err, measure.ErrTooOld):
		// An appliance checks its records before it sends them: a
		// refusal here is a disagreement between versions, or a bug.
		s.log.Warn("transport batch refused", "appliance", b.Appliance, "batch", b.ID, "records", len(b.Records), "err", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	case err != nil:
		s.log.Warn("transport batch not stored", "appliance", b.Appliance, "err", err)
		w.Header().Set("Retry-After", "5")
		http.Error(w, "transport batch not stored; retry later", http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, measure.AcceptResponse{Accepted: true, Duplicate: res.Duplicate, Pulses: res.Pulses})
}

// Measure is the measurement store (nil when none is configured).
func (s *Server) Measure() *measure.Ingester { return s.measure }

func familyName(f steer.Family) string {
	if f == steer.FamilyIPv6 {
		return measure.FamilyIPv6
	}
	return measure.FamilyIPv4
}

// ProbeLog is what the control plane reads of its authoritative DNS
// server's probe log (*dns.ProbeLog).
type ProbeLog interface {
	Lookup(nonce string) []dns.ProbeQuery
}

// resolverJoiner joins a report's dns pulses with the probe log.
type resolverJoiner struct{ s *Server }

// JoinResolver finds who asked for the probe name of nonce and how far
// that resolver is from client, by the control plane's own tables
// (docs/dns.md, "Resolver distance"): the resolver's address in the
// client's routed prefix (for an unrouted client, the inventory ISP
// prefix holding it, else its /24 or /48) is
// same_prefix; in another prefix of the client's ISP's AS, same_as; in a
// prefix of another AS the control plane knows (an ISP of the inventory,
// or a route's origin AS), other_as; anywhere else (a public resolver
// outside every network it serves), unknown.
func (j resolverJoiner) JoinResolver(client netip.Addr, nonce string) (measure.ResolverJoin, bool) {
	qs := j.s.cfg.ProbeLog.Lookup(nonce)
	if len(qs) == 0 {
		return measure.ResolverJoin{}, false
	}
	client = client.Unmap()
	resolver := qs[0].Resolver.Addr().Unmap()
	out := measure.ResolverJoin{Resolver: resolver.String(), Queries: len(qs)}
	for _, q := range qs {
		if q.ECS.IsValid() {
			out.ECS = q.ECS.String()
			break
		}
	}
	out.Distance, out.ResolverASN = j.s.resolverDistance(client, resolver)
	return out, true
}

// resolverDistance classifies resolver relative to client (see
// JoinResolver) and returns the resolver's AS when known.
func (s *Server) resolverDistance(client, resolver netip.Addr) (string, uint32) {
	asOf := func(a netip.Addr) (netip.Prefix, uint32) {
		pfx, cands, ok := s.Lookup(a)
		var asn uint32
		if isp, found := s.ispOf.Lookup(a); found {
			asn = isp.ASN
		} else if ok {
			for _, c := range cands {
				if c.Attrs != nil && len(c.Attrs.ASPath) > 0 {
					asn = c.Attrs.ASPath[len(c.Attrs.ASPath)-1]
					break
				}
			}
		}
		if !ok {
			if p, _, found := s.ispOf.LookupPrefixLPM(netip.PrefixFrom(a, a.BitLen())); found {
				pfx = p
			}
		}
		return pfx, asn
	}
	cpfx, casn := asOf(client)
	if !cpfx.IsValid() {
		cpfx, _ = netip.ParsePrefix(measure.DefaultPrefix(client))
	}
	_, rasn := asOf(resolver)
	switch {
	case cpfx.Contains(resolver):
		return measure.DistanceSamePrefix, rasn
	case rasn != 0 && rasn == casn:
		return measure.DistanceSameAS, rasn
	case rasn != 0:
		return measure.DistanceOtherAS, rasn
	}
	return measure.DistanceUnknown, 0
}
