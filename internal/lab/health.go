package lab

import (
	"context"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/ocdn/ocdn/internal/clock"
	"github.com/ocdn/ocdn/internal/serve"
)

// HealthReport is what the run showed about health and coordination.
type HealthReport struct {
	// ExclusionSeconds is, per killed appliance, the time from the kill to
	// the control plane no longer steering new clients to it.
	ExclusionSeconds map[string]float64 `json:"exclusion_seconds"`
	// ControlPlaneOutageSeconds is how long the control plane was stopped.
	ControlPlaneOutageSeconds float64 `json:"control_plane_outage_seconds"`
	// ReportsQueued counts heartbeat records the appliances could not
	// deliver at once; ReportsDelivered those delivered later,
	// ReportsPending those still queued when the run ended (a heartbeat
	// that failed after the outage, with no later one yet), and
	// ReportsDropped those the bounded queue gave up.
	ReportsQueued    int64 `json:"reports_queued"`
	ReportsDelivered int64 `json:"reports_delivered"`
	ReportsPending   int64 `json:"reports_pending"`
	ReportsDropped   int64 `json:"reports_dropped"`
}

// healthState is the lab's health bookkeeping.
type healthState struct {
	exclusion map[string]float64
	outage    time.Duration
	control   *controlServer
}

// measureExclusion waits (in its own goroutine) until the control plane
// stops steering to id and records how long that took from killed.
func (l *Lab) measureExclusion(id string, killed time.Time) {
	go func() {
		deadline := killed.Add(time.Minute)
		for time.Now().Before(deadline) {
			for _, st := range l.control.Appliances() {
				if st.ID == id && !st.Serving {
					l.mu.Lock()
					if l.health.exclusion == nil {
						l.health.exclusion = map[string]float64{}
					}
					l.health.exclusion[id] = time.Since(killed).Seconds()
					l.mu.Unlock()
					return
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
}

// healthReport sums the appliances' report queues; l.mu is held.
func (l *Lab) healthReport() HealthReport {
	h := HealthReport{ExclusionSeconds: map[string]float64{}, ControlPlaneOutageSeconds: l.health.outage.Seconds()}
	for id, s := range l.health.exclusion {
		h.ExclusionSeconds[id] = s
	}
	for _, la := range l.appliances {
		r := la.a.Reports()
		h.ReportsQueued += r.Queued
		h.ReportsDelivered += r.Delivered
		h.ReportsPending += int64(r.Pending)
		h.ReportsDropped += r.Dropped
	}
	return h
}

// controlServer serves the control plane on one loopback address and can
// be stopped and restarted on it (the stop_control_plane event). The
// listening socket is held across the outage, as systemd socket
// activation or a load balancer in front of replicas would hold it:
// while the server is stopped nothing is answered and every connection it
// had is cut, new connections wait in the kernel's backlog, and they are
// served when it comes back. An outage longer than a client's request
// timeout (the player's is 3 s) fails those requests.
type controlServer struct {
	ln      net.Listener
	handler http.Handler
	opts    serve.Options
	down    chan time.Duration
}

func (l *Lab) listenControl(h http.Handler, opts serve.Options) (*controlServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	cs := &controlServer{ln: ln, handler: h, opts: opts, down: make(chan time.Duration)}
	l.health.control = cs
	return cs, nil
}

// URL is the control plane's base URL.
func (cs *controlServer) URL() string { return "http://" + cs.ln.Addr().String() }

// heldListener hands out the shared listener's connections until closed;
// closing it does not close the shared socket.
type heldListener struct {
	net.Listener
	once   sync.Once
	closed chan struct{}
	conns  chan net.Conn
}

func (h *heldListener) Accept() (net.Conn, error) {
	select {
	case c := <-h.conns:
		return c, nil
	case <-h.closed:
		return nil, net.ErrClosed
	}
}

func (h *heldListener) Close() error { h.once.Do(func() { close(h.closed) }); return nil }

// Run serves until ctx ends, going down for the durations sent by Stop.
func (cs *controlServer) Run(ctx context.Context) error {
	conns := make(chan net.Conn)
	go func() {
		for {
			c, err := cs.ln.Accept()
			if err != nil {
				close(conns)
				return
			}
			select {
			case conns <- c:
			case <-ctx.Done():
				c.Close()
			}
		}
	}()
	defer cs.ln.Close()
	for {
		hl := &heldListener{Listener: cs.ln, closed: make(chan struct{}), conns: conns}
		srv := serve.New(hl, cs.handler, cs.opts)
		sctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- srv.Run(sctx) }()
		select {
		case <-ctx.Done():
			stop()
			return <-done
		case d := <-cs.down:
			srv.Kill()
			stop()
			<-done
			// Nothing accepts now: connections wait in the backlog.
			if clock.Sleep(ctx, d) != nil {
				return nil
			}
		}
	}
}

// stopControlPlane takes the control plane down for d and records the
// outage.
func (l *Lab) stopControlPlane(ctx context.Context, d time.Duration) {
	select {
	case l.health.control.down <- d:
	case <-ctx.Done():
		return
	}
	l.mu.Lock()
	l.health.outage += d
	l.mu.Unlock()
}
