package appliance

import (
	"cmp"
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/ocdn/ocdn/internal/api"
)

// defaultStaleLimit is how long an appliance serves on its last keys and
// content without reaching the control plane.
const defaultStaleLimit = 24 * time.Hour

// defaultMaxQueued bounds the heartbeat records kept for later delivery:
// at one per 5 s, a day of outage.
const defaultMaxQueued = 17280

// hbAgent is the heartbeat side of an appliance: what the last interval
// looked like (for rates), contact with the control plane, and the records
// waiting for delivery. heartbeatLoop owns it; /healthz and the counters
// read it under mu.
type hbAgent struct {
	mu         sync.Mutex
	seq        uint64
	lastOK     time.Time // last heartbeat the control plane accepted
	staleSince time.Time // first failure since lastOK (zero: in contact)
	expired    bool      // stale for longer than StaleLimit
	queue      []api.Heartbeat
	queued     int64 // records ever queued
	delivered  int64 // queued records the control plane accepted
	dropped    int64 // records dropped because the queue was full

	prevAt             time.Time
	prevBytes, prevReq int64
	prevCPU            time.Duration
}

// ReportStats counts heartbeat records queued while the control plane
// was unreachable and delivered after it came back.
type ReportStats = api.ReportStats

// Reports returns the heartbeat queue counters.
func (a *Appliance) Reports() ReportStats {
	g := &a.hb
	g.mu.Lock()
	defer g.mu.Unlock()
	return ReportStats{Queued: g.queued, Delivered: g.delivered, Pending: len(g.queue), Dropped: g.dropped}
}

// ControlPlaneState is the appliance's view of its control plane:
// "serving", or "stale-control-plane (since T)" while it serves on its last
// keys and content, or "stale-control-plane-expired (since T)" once the
// stale limit passed.
func (a *Appliance) ControlPlaneState() string {
	g := &a.hb
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.stateLocked()
}

func (g *hbAgent) stateLocked() string {
	switch {
	case g.staleSince.IsZero():
		return "serving"
	case g.expired:
		return "stale-control-plane-expired (since " + g.staleSince.UTC().Format(time.RFC3339) + ")"
	}
	return "stale-control-plane (since " + g.staleSince.UTC().Format(time.RFC3339) + ")"
}

// staleExpired reports whether the appliance was cut off from the control
// plane for longer than StaleLimit.
func (a *Appliance) staleExpired() bool {
	g := &a.hb
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.expired
}

func (a *Appliance) staleLimit() time.Duration { return cmp.Or(a.cfg.StaleLimit, defaultStaleLimit) }

func softwareVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return "ocdn " + bi.Main.Version
	}
	return "ocdn dev"
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// inflight reads the edge's in-progress request gauge.
func (a *Appliance) inflight() int {
	mfs, err := a.cfg.Registry.Gather()
	if err != nil {
		return 0
	}
	for _, mf := range mfs {
		if mf.GetName() == "ocdn_edge_inflight_requests" && len(mf.Metric) > 0 {
			return int(mf.Metric[0].GetGauge().GetValue())
		}
	}
	return 0
}

// record builds this interval's heartbeat.
func (a *Appliance) record(known uint64) api.Heartbeat {
	g := &a.hb
	now := time.Now()
	used, capacity, _ := a.store.Usage()
	// What it reports holding leaves out files being retired (fill):
	// steering stops sending clients to them before they are deleted.
	gen, held := a.fill.agent.Advertised()
	bytes, reqs, cpu := a.edge.BytesServed(), a.edge.Requests(), processCPU()
	g.mu.Lock()
	g.seq++
	hb := api.Heartbeat{Appliance: a.cfg.ID, ContentGen: gen, BytesServed: bytes, Draining: a.draining.Load(), BGP: a.BGPSessions(),
		State: g.stateLocked(), Seq: g.seq, SentAt: now.UTC(), Software: cmp.Or(a.cfg.Software, softwareVersion())}
	load := &api.Load{Connections: a.inflight(), CapacityBitsPerSec: a.cfg.CapacityBitsPerSec}
	if dt := now.Sub(g.prevAt).Seconds(); !g.prevAt.IsZero() && dt > 0 {
		load.BitsPerSec = float64(bytes-g.prevBytes) * 8 / dt
		load.RequestsPerSec = float64(reqs-g.prevReq) / dt
		load.CPU = min(1, (cpu-g.prevCPU).Seconds()/dt/float64(runtime.NumCPU()))
	}
	g.prevAt, g.prevBytes, g.prevReq, g.prevCPU = now, bytes, reqs, cpu
	g.mu.Unlock()
	if hb.Draining {
		hb.State = "draining"
	}
	hb.Load = load
	hb.Disk = &api.Disk{CapacityBytes: capacity, UsedBytes: used, Disks: 1}
	fs := a.Fill()
	hb.Fill = &api.HeartbeatFill{FilesHeld: len(held), BytesFilled: fs.Bytes, FilesRejected: fs.FilesRejected}
	hb.ManifestVersion = a.fill.agent.ManifestVersion()
	if gen != known {
		hb.Held = held
		if hb.Held == nil {
			hb.Held = []string{}
		}
	}
	return hb
}

// heartbeatLoop reports every HeartbeatInterval until stop ends, and at
// once when drain ends (the start of draining). A heartbeat that cannot be
// delivered is queued (bounded by MaxQueuedReports, oldest dropped first)
// and sent with the next one that gets through, so the control plane sees
// every interval's counters; the file list is not queued, since the next
// delivered heartbeat carries the current one.
func (a *Appliance) heartbeatLoop(drain, stop context.Context) {
	t := time.NewTicker(a.cfg.HeartbeatInterval)
	defer t.Stop()
	var known uint64
	var keys string // version of the key set held
	drained := drain.Done()
	g := &a.hb
	for {
		hb := a.record(known)
		if reply, err := a.deliver(stop, hb); err != nil {
			if stop.Err() == nil {
				a.log.Warn("heartbeat failed; queued", "err", err, "state", hb.State)
			}
		} else {
			known = reply.KnownContentGen
			// The control plane has the list of generation known: files
			// retired before it have left steering and may go.
			a.fill.agent.Acknowledge(known)
			if v := reply.ManifestVersion; v != "" && v != a.fill.agent.ManifestVersion() {
				a.fill.agent.Wake() // a new plan: fill its delta now (within the window rules)
			}
			if reply.KeysVersion != "" && reply.KeysVersion != keys {
				if err := a.refreshKeys(stop); err != nil {
					a.log.Warn("fetching url-signing keys failed", "err", err)
				} else {
					keys = reply.KeysVersion
				}
			}
		}
		g.mu.Lock()
		if !g.staleSince.IsZero() && time.Since(g.staleSince) > a.staleLimit() && !g.expired {
			g.expired = true
			a.log.Error("control plane unreachable for longer than the stale limit; reporting unhealthy", "since", g.staleSince, "stale_limit", a.staleLimit())
		}
		g.mu.Unlock()
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

// deliver sends the queued records, then hb. On failure hb joins the queue.
func (a *Appliance) deliver(ctx context.Context, hb api.Heartbeat) (api.HeartbeatReply, error) {
	g := &a.hb
	ctx, cancel := context.WithTimeout(ctx, max(a.cfg.HeartbeatInterval, time.Second))
	defer cancel()
	fail := func(err error) (api.HeartbeatReply, error) {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.staleSince.IsZero() {
			g.staleSince = time.Now()
		}
		q := hb
		q.Held, q.Queued = nil, true
		if len(g.queue) >= cmp.Or(a.cfg.MaxQueuedReports, defaultMaxQueued) {
			g.queue = g.queue[1:]
			g.dropped++
		}
		g.queue = append(g.queue, q)
		g.queued++
		return api.HeartbeatReply{}, err
	}
	g.mu.Lock()
	pending := append([]api.Heartbeat(nil), g.queue...)
	g.mu.Unlock()
	if len(pending) > 0 {
		var br api.HeartbeatBatchReply
		if err := a.cfg.Control.PostJSON(ctx, "/v1/heartbeats", api.HeartbeatBatch{Heartbeats: pending}, &br); err != nil {
			return fail(fmt.Errorf("queued heartbeats: %w", err))
		}
		g.mu.Lock()
		g.queue = g.queue[len(pending):]
		g.delivered += int64(len(pending))
		g.mu.Unlock()
		a.log.Info("queued heartbeats delivered", "records", len(pending))
	}
	var reply api.HeartbeatReply
	if err := a.cfg.Control.PostJSON(ctx, "/v1/heartbeat", hb, &reply); err != nil {
		return fail(err)
	}
	g.mu.Lock()
	g.lastOK, g.staleSince, g.expired = time.Now(), time.Time{}, false
	g.mu.Unlock()
	return reply, nil
}
