package control

import (
	"context"
	"errors"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// pollLoop is the active prober (like Traffic Monitor): every half
// interval it GETs each appliance's /healthz with a short timeout. A
// refused connection marks the appliance down at once (the host answers
// but the daemon is gone), so a killed appliance leaves steering within one
// poll; a timeout alone only marks it unreachable (the control plane may
// be cut off while clients are not), and heartbeats decide.
//
// An appliance serving TLS is probed at the URL clients get, its
// certificate verified as they would (against the CA and the appliance's
// name): a certificate clients would refuse (not the appliance's name,
// expired, not from the CA, unreadable) keeps it out of steering with that
// reason until a probe verifies again.
func (s *Server) pollLoop(ctx context.Context) {
	every := s.cfg.HeartbeatInterval / 2
	// A TLS handshake on a busy machine needs more than a bare request.
	timeout := min(every/2, 2*time.Second)
	client := applianceClient(s.eps, s.cfg.ApplianceRoots, timeout)
	client.Transport.(*http.Transport).IdleConnTimeout = 4 * every
	defer client.CloseIdleConnections()
	t := time.NewTicker(every)
	defer t.Stop()
	sem := make(chan struct{}, 32)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var wg sync.WaitGroup
		for _, a := range s.cfg.Inventory.Appliances {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				before := s.healthKey(a.ID, s.cfg.Now())
				ep := s.eps[a.ID]
				refused, timedOut, err := probeHealthz(ctx, client, ep.base+"/healthz")
				if ctx.Err() != nil {
					return
				}
				s.health.Probe(a.ID, s.cfg.Now(), refused, timedOut)
				if ep.tls && !refused && !timedOut {
					s.certificateChecked(a.ID, ep.host, err)
				}
				// At once, not after the round: a dead appliance must not
				// wait in steering for a slow probe of another.
				if s.healthKey(a.ID, s.cfg.Now()) != before {
					s.rebuild()
				}
			}()
		}
		wg.Wait()
	}
}

// certificateChecked records what a probe of an appliance serving TLS
// found: err nil (or not a certificate matter) clears a fault.
func (s *Server) certificateChecked(id, host string, err error) {
	label, reason := "", ""
	if err != nil {
		label, reason, _ = certFault(err, host)
	}
	prev := s.health.Status(id, s.cfg.Now()).CertFault
	if reason == prev {
		return
	}
	s.health.Certificate(id, reason)
	s.metrics.certFaults.DeletePartialMatch(prometheus.Labels{"appliance": id})
	if label != "" {
		s.metrics.certFaults.WithLabelValues(id, label).Set(1)
		s.log.Warn("appliance certificate refused; out of steering", "appliance", id, "fault", label, "reason", reason)
	} else {
		s.log.Info("appliance certificate verifies again", "appliance", id)
	}
}

// probeHealthz GETs u and classifies a failure; err is the request's
// error, for the certificate checks.
func probeHealthz(ctx context.Context, c *http.Client, u string) (refused, timedOut bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return false, false, err
	}
	resp, err := c.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) {
			return true, false, err
		}
		return false, errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) || isTimeout(err), err
	}
	resp.Body.Close()
	return false, false, nil
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}
