package control

import (
	"context"
	"errors"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"
)

// pollLoop is the active prober (like Traffic Monitor): every half
// interval it GETs each appliance's /healthz with a short timeout. A
// refused connection marks the appliance down at once (the host answers
// but the daemon is gone), so a killed appliance leaves steering within one
// poll; a timeout alone only marks it unreachable (the control plane may
// be cut off while clients are not), and heartbeats decide.
func (s *Server) pollLoop(ctx context.Context) {
	every := s.cfg.HeartbeatInterval / 2
	timeout := min(every/2, time.Second)
	client := &http.Client{Timeout: timeout, Transport: &http.Transport{MaxIdleConnsPerHost: 1, IdleConnTimeout: 4 * every,
		DisableKeepAlives: false}}
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
				refused, timedOut := probeHealthz(ctx, client, "http://"+a.Address.String()+"/healthz")
				if ctx.Err() != nil {
					return
				}
				s.health.Probe(a.ID, s.cfg.Now(), refused, timedOut)
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

// probeHealthz GETs u and classifies a failure.
func probeHealthz(ctx context.Context, c *http.Client, u string) (refused, timedOut bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return false, false
	}
	resp, err := c.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) {
			return true, false
		}
		return false, errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) || isTimeout(err)
	}
	resp.Body.Close()
	return false, false
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}
