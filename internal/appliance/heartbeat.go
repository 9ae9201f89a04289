package appliance

import (
	"context"
	"time"

	"github.com/ocdn/ocdn/internal/api"
)

// heartbeatLoop reports every HeartbeatInterval until stop ends, and at
// once when drain ends (the start of draining).
func (a *Appliance) heartbeatLoop(drain, stop context.Context) {
	t := time.NewTicker(a.cfg.HeartbeatInterval)
	defer t.Stop()
	var known uint64
	drained := drain.Done()
	for {
		_, _, gen := a.store.Usage()
		hb := api.Heartbeat{Appliance: a.cfg.ID, ContentGen: gen, BytesServed: a.edge.BytesServed(), Draining: a.draining.Load(), BGP: a.BGPSessions()}
		if gen != known {
			hb.Held = []string{}
			for _, e := range a.store.List() {
				hb.Held = append(hb.Held, e.Path)
			}
		}
		var reply api.HeartbeatReply
		if err := a.post(stop, "/v1/heartbeat", hb, &reply); err != nil {
			if stop.Err() == nil {
				a.log.Warn("heartbeat failed", "err", err)
			}
		} else {
			known = reply.KnownContentGen
		}
		select {
		case <-stop.Done():
			return
		case <-drained:
			drained = nil
			a.draining.Store(true) // the AfterFunc may not have run yet
		case <-t.C:
		}
	}
}
