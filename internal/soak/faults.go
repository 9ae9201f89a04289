package soak

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ocdn/ocdn/internal/clock"
	"github.com/ocdn/ocdn/internal/lab"
)

// The fault kinds, in the order the summary lists them.
const (
	KindApplianceKill = "appliance_kill" // SIGKILL, down a few seconds, restarted
	KindStoreCorrupt  = "store_corrupt"  // SIGKILL, an object bit-flipped or truncated on disk, restarted
	KindControlKill   = "control_kill"   // a control-plane replica SIGKILLed, restarted
	KindBGPFlap       = "bgp_flap"       // a router disables an appliance's session, then enables it
	KindDiskFull      = "disk_full"      // an appliance's store file system filled to the last byte for a while
	KindSlowClient    = "slow_client"    // Slowloris: a request header trickled a byte a second
	KindSilentClient  = "silent_client"  // a request declaring a body it never sends
)

// Kinds are every fault kind.
var Kinds = []string{KindApplianceKill, KindStoreCorrupt, KindControlKill, KindBGPFlap, KindDiskFull, KindSlowClient, KindSilentClient}

// chaos is lab.Options.Chaos: it starts the invariant checkers and runs
// the schedule until ctx (the streaming) ends, then waits for every fault
// in progress to be undone.
func (s *soak) chaos(ctx context.Context, c *lab.Chaos) {
	s.mu.Lock()
	s.replicas = c.ControlReplicas()
	s.mu.Unlock()
	s.sessions.sites = c.Sites
	s.sessions.appliances = c.Appliances()
	s.sessions.down = s.downDuring

	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); s.bytes.run(ctx, c, s.cfg.Seed) }()
	go func() { defer wg.Done(); s.procs.run(ctx, c, s.cfg) }()
	go func() { defer wg.Done(); s.agree.run(ctx, c, s.cfg.AgreeBound) }()

	rng := rand.New(rand.NewPCG(s.cfg.Seed, 0x5eed))
	sch := &scheduler{s: s, c: c, rng: rng, busy: map[string]bool{}}
	sch.cond = sync.NewCond(&sch.mu)
	end, _ := ctx.Deadline()
	// The first round injects every kind once, in a seeded order; then
	// kinds are drawn at random.
	first := rng.Perm(len(Kinds))
	for n := 0; ; n++ {
		gap := time.Duration((0.5 + rng.Float64()) * float64(s.cfg.Gap))
		if n < len(first) {
			// The first round comes sooner, so that a short soak sees
			// every kind.
			gap = gap * 3 / 4
		}
		// A fault must have time to be undone before the clients stop.
		if time.Until(end) < gap+20*time.Second {
			break
		}
		if clock.Sleep(ctx, gap) != nil {
			break
		}
		var kind string
		if n < len(first) {
			kind = Kinds[first[n]]
		} else {
			kind = Kinds[rng.IntN(len(Kinds))]
		}
		// Faults of a kind take turns; others run alongside.
		if !sch.acquire(ctx, kind) {
			break
		}
		args := sch.draw(kind)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer sch.release(kind)
			err := sch.inject(ctx, kind, args)
			s.count(kind, err)
		}()
	}
	wg.Wait()
}

// scheduler runs faults; its rng is used from the schedule's goroutine
// only, so that a seed gives one schedule.
type scheduler struct {
	s    *soak
	c    *lab.Chaos
	rng  *rand.Rand
	mu   sync.Mutex
	cond *sync.Cond
	busy map[string]bool // kinds in progress, and "down" while an appliance is down
}

// acquire waits until no fault of kind is in progress (kills and
// corruptions also wait for each other: one appliance down at a time, so
// that every site stays able to serve).
func (sch *scheduler) acquire(ctx context.Context, kind string) bool {
	slot := kind
	if kind == KindApplianceKill || kind == KindStoreCorrupt {
		slot = "down"
	}
	stop := context.AfterFunc(ctx, func() { sch.mu.Lock(); sch.cond.Broadcast(); sch.mu.Unlock() })
	defer stop()
	sch.mu.Lock()
	defer sch.mu.Unlock()
	for sch.busy[slot] && ctx.Err() == nil {
		sch.cond.Wait()
	}
	if ctx.Err() != nil {
		return false
	}
	sch.busy[slot] = true
	return true
}

func (sch *scheduler) release(kind string) {
	slot := kind
	if kind == KindApplianceKill || kind == KindStoreCorrupt {
		slot = "down"
	}
	sch.mu.Lock()
	sch.busy[slot] = false
	sch.cond.Broadcast()
	sch.mu.Unlock()
}

// faultArgs are a fault's random choices, drawn by the schedule.
type faultArgs struct {
	appliance lab.ApplianceInfo
	replica   int
	session   lab.BGPSession
	hold      time.Duration
	pick      uint64 // which object, which byte
	truncate  bool
	toControl bool
}

func (sch *scheduler) draw(kind string) faultArgs {
	apps := sch.c.Appliances()
	a := faultArgs{appliance: apps[sch.rng.IntN(len(apps))], hold: time.Duration(2+sch.rng.IntN(5)) * time.Second,
		pick: sch.rng.Uint64(), truncate: sch.rng.IntN(2) == 0, toControl: sch.rng.IntN(2) == 0}
	a.replica = sch.rng.IntN(sch.c.ControlReplicas())
	if ss := sch.c.BGPSessions(); len(ss) > 0 {
		a.session = ss[sch.rng.IntN(len(ss))]
	}
	if kind == KindDiskFull {
		a.hold = time.Duration(5+sch.rng.IntN(11)) * time.Second
	}
	return a
}

// inject carries out one fault and undoes it. Undoing does not depend on
// ctx: a crashed daemon is restarted even when streaming has just ended.
func (sch *scheduler) inject(ctx context.Context, kind string, a faultArgs) error {
	s, c := sch.s, sch.c
	undo := context.WithoutCancel(ctx)
	switch kind {
	case KindApplianceKill, KindStoreCorrupt:
		id := a.appliance.ID
		defer s.markDown(id)()
		if err := c.KillAppliance(id); err != nil {
			return err
		}
		what := ""
		if kind == KindStoreCorrupt {
			var err error
			if what, err = corruptObject(a.appliance.Store, a.pick, a.truncate); err != nil {
				c.RestartAppliance(id)
				return err
			}
		}
		s.status("%s %s %s (down %v)", kind, id, what, a.hold)
		clock.Sleep(undo, a.hold)
		if err := c.RestartAppliance(id); err != nil {
			return err
		}
		if what != "" {
			// The damaged object is asked for first once the appliance
			// answers again.
			s.bytes.watch(id, what)
		}
		return nil
	case KindControlKill:
		s.status("%s replica %d (down %v)", kind, a.replica+1, a.hold)
		c.KillControl(a.replica)
		clock.Sleep(undo, a.hold)
		return c.RestartControl(a.replica)
	case KindBGPFlap:
		if a.session.Router == "" {
			return errors.New("no BGP session to flap")
		}
		s.status("%s %s–%s (down %v)", kind, a.session.Router, a.session.Appliance, a.hold)
		// Without the routes the appliance may not serve the ISP's
		// clients: it counts as down for the session invariant.
		defer s.markDown(a.session.Appliance)()
		if err := c.SetBGPSession(undo, a.session, false); err != nil {
			return err
		}
		clock.Sleep(undo, a.hold)
		return c.SetBGPSession(undo, a.session, true)
	case KindDiskFull:
		s.status("%s %s (held %v)", kind, a.appliance.ID, a.hold)
		return fillDisk(undo, a.appliance.Store, a.hold)
	case KindSlowClient, KindSilentClient:
		target, name, err := sch.clientTarget(a)
		if err != nil {
			return err
		}
		s.status("%s against %s", kind, name)
		return s.cutoff.run(undo, kind, target, name, s.cfg.CutOffBound)
	}
	return fmt.Errorf("unknown fault kind %q", kind)
}

// clientTarget is where a slow or silent client goes: an appliance's
// content port (with a real signed URL) or a control-plane replica's API.
func (sch *scheduler) clientTarget(a faultArgs) (clientTarget, string, error) {
	if a.toControl {
		u := sch.c.ControlURL(a.replica)
		host := strings.TrimPrefix(u, "http://")
		return clientTarget{addr: host, method: "POST", path: "/v1/reports"}, fmt.Sprintf("control replica %d", a.replica+1), nil
	}
	files := sch.c.Catalog().Files
	f := files[int(a.pick%uint64(len(files)))]
	u, err := sch.c.ContentURL(a.appliance.ID, f.Path)
	if err != nil {
		return clientTarget{}, "", err
	}
	pu, err := url.Parse(u)
	if err != nil {
		return clientTarget{}, "", err
	}
	return clientTarget{addr: a.appliance.Address.String(), method: "GET", path: pu.EscapedPath()}, "appliance " + a.appliance.ID, nil
}

// markDown records that appliance id is down by our doing from now until
// the returned function is called, and a little after.
func (s *soak) markDown(id string) (up func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := len(s.down[id])
	s.down[id] = append(s.down[id], interval{from: time.Now()})
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		// A restarted appliance needs a heartbeat or two before steering
		// trusts it again (a re-established session, a fresh route); it
		// counts as down until then.
		s.down[id][i].to = time.Now().Add(5 * time.Second)
	}
}

// downDuring says whether appliance id was down by our doing at any time
// in [from, to].
func (s *soak) downDuring(id string, from, to time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, iv := range s.down[id] {
		if iv.from.Before(to) && (iv.to.IsZero() || iv.to.After(from)) {
			return true
		}
	}
	return false
}

// corruptObject damages one stored object of the store in root, chosen by
// pick: it flips one byte, or truncates the file by a few bytes, as bit
// rot or a torn write would, keeping its name and modification time (bit
// rot does not touch them). It returns the object's catalog path.
func corruptObject(root string, pick uint64, truncate bool) (string, error) {
	var objs []string
	filepath.WalkDir(filepath.Join(root, "objects"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			objs = append(objs, p)
		}
		return nil
	})
	if len(objs) == 0 {
		return "", fmt.Errorf("store %s holds no object to corrupt", root)
	}
	p := objs[int(pick%uint64(len(objs)))]
	st, err := os.Stat(p)
	if err != nil {
		return "", err
	}
	if st.Size() < 2 {
		return "", fmt.Errorf("%s: too small to corrupt", p)
	}
	if truncate {
		err = os.Truncate(p, st.Size()-1-int64(pick>>32)%min(st.Size()-1, 4096))
	} else {
		err = flipByte(p, int64(pick>>16)%st.Size())
	}
	if err != nil {
		return "", err
	}
	if err := os.Chtimes(p, st.ModTime(), st.ModTime()); err != nil {
		return "", err
	}
	// objects/<xx>/<title>/<file>~<sha>~<size>
	rel, _ := filepath.Rel(filepath.Join(root, "objects"), p)
	parts := strings.Split(filepath.ToSlash(rel), "/")
	if len(parts) != 3 {
		return "", fmt.Errorf("%s: not an object name", rel)
	}
	file, _, _ := strings.Cut(parts[2], "~")
	return parts[1] + "/" + file, nil
}

func flipByte(p string, off int64) error {
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		return err
	}
	b[0] ^= 0x5a
	if _, err := f.WriteAt(b, off); err != nil {
		return err
	}
	return f.Close()
}

// fillDisk fills the file system of the store in root to its last byte
// (ENOSPC), holds it full for hold, then frees it.
func fillDisk(ctx context.Context, root string, hold time.Duration) error {
	release, err := fillUp(ctx, root)
	if err != nil {
		return err
	}
	defer release()
	clock.Sleep(ctx, hold)
	return nil
}

// fillUp writes a file into root's file system until nothing more fits;
// release removes it.
func fillUp(ctx context.Context, root string) (release func(), err error) {
	p := filepath.Join(root, "soak-disk-full")
	f, err := os.Create(p)
	if err != nil {
		return nil, err
	}
	release = func() { f.Close(); os.Remove(p) }
	buf := make([]byte, 1<<20)
	for {
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				break
			}
			release()
			return nil, err
		}
		if ctx.Err() != nil {
			release()
			return nil, ctx.Err()
		}
	}
	// The last megabyte may not have fitted whole: fill the rest.
	for _, n := range []int{64 << 10, 4 << 10, 512, 1} {
		for {
			if _, err := f.Write(buf[:n]); err != nil {
				break
			}
		}
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(root, &st); err == nil && st.Bavail > 0 {
		release()
		return nil, fmt.Errorf("%s: %d blocks still free after filling", root, st.Bavail)
	}
	return release, nil
}
