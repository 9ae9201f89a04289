package measure

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/zstd"
)

// PulseRow is one row of DIR/pulses: one pulse of one report, with what
// the server knew about the uploader. Times are UTC microseconds
// (Parquet TIMESTAMP(MICROS, UTC)). Optional timings are NULL when the
// client did not report them (the wire format cannot tell 0 from absent,
// and none of them can really be 0). The partition columns date and hour
// (of received_time) are in the directory names, not in the file.
type PulseRow struct {
	ReportID     string   `parquet:"report_id"`
	ReceivedTime int64    `parquet:"received_time,timestamp(microsecond)"`
	ClientAddr   string   `parquet:"client_addr"`
	ClientPrefix string   `parquet:"client_prefix,dict"`
	PrefixGroup  string   `parquet:"prefix_group,dict"`
	ASN          uint32   `parquet:"asn"`
	ISP          string   `parquet:"isp,dict"`
	Recipe       string   `parquet:"recipe,dict"`
	Context      string   `parquet:"context,dict"` // JSON object, "{}" when none
	ClientTime   int64    `parquet:"client_time,timestamp(microsecond)"`
	Target       string   `parquet:"target,dict"`
	Appliance    string   `parquet:"appliance,dict"`
	Site         string   `parquet:"site,dict"` // the annotator's site for the appliance, else the client's
	Type         string   `parquet:"type,dict"`
	Seq          int32    `parquet:"seq"`
	Start        int64    `parquet:"start,timestamp(microsecond)"`
	ConnectMs    *float64 `parquet:"connect_ms,optional"`
	TLSMs        *float64 `parquet:"tls_ms,optional"`
	TTFBMs       *float64 `parquet:"ttfb_ms,optional"`
	DurationMs   float64  `parquet:"duration_ms"`
	Bytes        int64    `parquet:"bytes"`
	Throughput   *float64 `parquet:"throughput_bps,optional"`
	Status       string   `parquet:"status,dict"`
	HTTPStatus   *int32   `parquet:"http_status,optional"`
	Error        *string  `parquet:"error,optional"`
	// Family is the pulse's address family ("ipv4", "ipv6"), empty when
	// unknown. DNSMs and Nonce come from dns pulses; Resolver,
	// ResolverASN, ECS and ResolverDistance from joining the nonce with
	// the authoritative server's log (empty/0 when it did not see the
	// name, or for other pulse types).
	Family           string   `parquet:"family,dict"`
	DNSMs            *float64 `parquet:"dns_ms,optional"`
	Nonce            string   `parquet:"nonce"`
	Resolver         string   `parquet:"resolver,dict"`
	ResolverASN      uint32   `parquet:"resolver_asn"`
	ECS              string   `parquet:"ecs,dict"`
	ResolverDistance string   `parquet:"resolver_distance,dict"`
}

// QoERow is one row of DIR/qoe: the playback record of one report.
type QoERow struct {
	ReportID       string   `parquet:"report_id"`
	ReceivedTime   int64    `parquet:"received_time,timestamp(microsecond)"`
	ClientAddr     string   `parquet:"client_addr"`
	ClientPrefix   string   `parquet:"client_prefix,dict"`
	PrefixGroup    string   `parquet:"prefix_group,dict"`
	ASN            uint32   `parquet:"asn"`
	ISP            string   `parquet:"isp,dict"`
	Recipe         string   `parquet:"recipe,dict"`
	Context        string   `parquet:"context,dict"`
	ClientTime     int64    `parquet:"client_time,timestamp(microsecond)"`
	Site           string   `parquet:"site,dict"` // site of served_by[0], if the annotator knows it
	StartupMs      float64  `parquet:"startup_ms"`
	Rebuffers      int32    `parquet:"rebuffers"`
	RebufferMs     float64  `parquet:"rebuffer_ms"`
	AvgBitrateKbps float64  `parquet:"avg_bitrate_kbps"`
	Switches       int32    `parquet:"switches"`
	Failovers      int32    `parquet:"failovers"`
	ServedBy       []string `parquet:"served_by,list"`
	DurationMs     float64  `parquet:"duration_ms"`
}

func micros(t time.Time) int64 { return t.UnixMicro() }

func optF(v float64) *float64 {
	if v == 0 {
		return nil
	}
	return &v
}

// rows turns a WAL record into table rows.
func (rec *walRecord) rows(pulses []PulseRow, qoe []QoERow) ([]PulseRow, []QoERow) {
	r := rec.Report
	ctx := "{}"
	if len(r.Context) > 0 || rec.AssignedArm != "" {
		c := r.Context
		if rec.AssignedArm != "" {
			c = make(map[string]string, len(r.Context)+1)
			for k, v := range r.Context {
				c[k] = v
			}
			c[ContextAssignedArm] = rec.AssignedArm
		}
		b, _ := json.Marshal(c) // map[string]string cannot fail; keys sorted
		ctx = string(b)
	}
	rx := rec.Received / 1000
	for i := range r.Pulses {
		p := &r.Pulses[i]
		row := PulseRow{
			ReportID: r.ID, ReceivedTime: rx, ClientAddr: rec.Client, ClientPrefix: rec.ClientPrefix,
			PrefixGroup: rec.PrefixGroup, ASN: rec.ASN, ISP: rec.ISP, Recipe: r.Recipe, Context: ctx,
			ClientTime: micros(r.ClientTime), Target: p.Target, Appliance: p.Appliance, Site: p.Site,
			Type: p.Type, Seq: int32(p.Seq), Start: micros(p.Start),
			ConnectMs: optF(p.ConnectMs), TLSMs: optF(p.TLSMs), TTFBMs: optF(p.TTFBMs),
			DurationMs: p.DurationMs, Bytes: p.Bytes, Throughput: optF(p.ThroughputBps), Status: p.Status,
			Family: p.Family, DNSMs: optF(p.DNSMs), Nonce: p.Nonce,
		}
		if j, ok := rec.Resolvers[p.Nonce]; ok && p.Nonce != "" {
			row.Resolver, row.ResolverASN, row.ECS, row.ResolverDistance = j.Resolver, j.ResolverASN, j.ECS, j.Distance
		}
		if i < len(rec.Sites) && rec.Sites[i] != "" {
			row.Site = rec.Sites[i]
		}
		if p.HTTPStatus != 0 {
			h := int32(p.HTTPStatus)
			row.HTTPStatus = &h
		}
		if p.Error != "" {
			e := p.Error
			row.Error = &e
		}
		pulses = append(pulses, row)
	}
	if q := r.Player; q != nil {
		qoe = append(qoe, QoERow{
			ReportID: r.ID, ReceivedTime: rx, ClientAddr: rec.Client, ClientPrefix: rec.ClientPrefix,
			PrefixGroup: rec.PrefixGroup, ASN: rec.ASN, ISP: rec.ISP, Recipe: r.Recipe, Context: ctx,
			ClientTime: micros(r.ClientTime), Site: rec.QoESite,
			StartupMs: q.StartupMs, Rebuffers: int32(q.Rebuffers), RebufferMs: q.RebufferMs,
			AvgBitrateKbps: q.AvgBitrateKbps, Switches: int32(q.Switches), Failovers: int32(q.Failovers),
			ServedBy: q.ServedBy, DurationMs: q.DurationMs,
		})
	}
	return pulses, qoe
}

// PartitionDir is the hive partition directory of an hour, relative to a
// table directory: "date=2026-11-26/hour=10".
func PartitionDir(t time.Time) string {
	t = t.UTC()
	return fmt.Sprintf("date=%s/hour=%02d", t.Format("2006-01-02"), t.Hour())
}

// partName is the file segment seq of store compacts into.
func partName(store string, seq uint64) string {
	return fmt.Sprintf("part-%s-%012d.parquet", store, seq)
}

// compactSegment turns WAL segment seq into Parquet files and an id file,
// then deletes the segment. Every output is named after seq and written to
// a temporary name, fsynced and renamed into place, so that running it
// again after a crash at any point rewrites the same files with the same
// content: compaction is idempotent, and the segment, deleted last, is the
// commit point. With Claims, only the reports this segment holds the
// claim of are written (claims.go); claims never change, so a rerun
// writes the same rows.
func (in *Ingester) compactSegment(seq uint64) error {
	walDir := filepath.Join(in.dir, "wal")
	path := filepath.Join(walDir, segmentName(seq))
	var recs []walRecord
	var ids []string
	seen := make(map[string]bool)
	size, err := readFrames(path, func(p []byte) error {
		var rec walRecord
		if err := json.Unmarshal(p, &rec); err != nil || rec.Report == nil {
			return fmt.Errorf("record %d: intact checksum but undecodable: %v", len(ids), err)
		}
		if seen[rec.Report.ID] { // cannot happen (Ingest dedupes); never store twice anyway
			return nil
		}
		seen[rec.Report.ID] = true
		ids = append(ids, rec.Report.ID)
		recs = append(recs, rec)
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading WAL segment %d: %w", seq, err)
	}
	hour := int64(-1)
	if len(recs) > 0 {
		hour = recs[0].Received / int64(time.Hour)
	}
	var held map[string]bool // nil: every record
	if in.opts.Claims != nil && len(ids) > 0 {
		if held, err = in.claimSegment(seq, time.Unix(0, recs[0].Received), ids); err != nil {
			return err
		}
		in.opts.hook("compact-claimed")
	}
	var pulses []PulseRow
	var qoe []QoERow
	var transport []TransportRow
	elsewhere := 0
	for i := range recs {
		if held != nil && !held[recs[i].Report.ID] {
			elsewhere++
			continue
		}
		if t := recs[i].Report.Transport; t != nil {
			transport = t.rows(recs[i].Received/1000, transport)
			continue
		}
		pulses, qoe = recs[i].rows(pulses, qoe)
	}
	if hour >= 0 {
		part := PartitionDir(time.Unix(hour*3600, 0))
		name := partName(in.storeID, seq)
		if len(pulses) > 0 {
			if err := writeParquet(filepath.Join(in.dir, "pulses", part), name, pulses); err != nil {
				return fmt.Errorf("compacting WAL segment %d: %w", seq, err)
			}
		}
		if len(qoe) > 0 {
			if err := writeParquet(filepath.Join(in.dir, "qoe", part), name, qoe); err != nil {
				return fmt.Errorf("compacting WAL segment %d: %w", seq, err)
			}
		}
		if len(transport) > 0 {
			if err := writeParquet(filepath.Join(in.dir, "transport", part), name, transport); err != nil {
				return fmt.Errorf("compacting WAL segment %d: %w", seq, err)
			}
		}
	}
	// Every id, including those held elsewhere: the local set answers
	// "duplicate" for them without asking the database.
	if err := writeIDs(filepath.Join(in.dir, "ids"), seq, hour, ids); err != nil {
		return fmt.Errorf("compacting WAL segment %d: ids: %w", seq, err)
	}
	in.opts.hook("compact-written")
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("removing compacted WAL segment %d: %w", seq, err)
	}
	if err := syncDir(walDir); err != nil {
		return err
	}
	in.m.walBytes.Sub(float64(size))
	in.m.compactions.Inc()
	in.m.heldElsewhere.Add(float64(elsewhere))
	in.log.Debug("compacted WAL segment", "seq", seq, "reports", len(ids), "held_elsewhere", elsewhere, "pulses", len(pulses), "qoe", len(qoe), "transport", len(transport))
	return nil
}

func writeParquet[T any](dir, name string, rows []T) error {
	if err := mkdirAllSync(dir); err != nil {
		return err
	}
	return writeAtomic(dir, name, func(f *os.File) error {
		bw := bufio.NewWriterSize(f, 1<<20)
		w := parquet.NewGenericWriter[T](bw, parquet.Compression(&zstd.Codec{}))
		if _, err := w.Write(rows); err != nil {
			return err
		}
		if err := w.Close(); err != nil {
			return err
		}
		return bw.Flush()
	})
}

func writeIDs(dir string, seq uint64, hour int64, ids []string) error {
	return writeAtomic(dir, idsFileName(seq), func(f *os.File) error {
		bw := bufio.NewWriter(f)
		fmt.Fprintf(bw, "hour %d\n", hour)
		for _, id := range ids {
			bw.WriteString(id)
			bw.WriteByte('\n')
		}
		return bw.Flush()
	})
}

// writeAtomic writes dir/name through a hidden temporary file, fsyncs it,
// renames it into place and fsyncs the directory.
func writeAtomic(dir, name string, fill func(*os.File) error) error {
	tmp := filepath.Join(dir, "."+name+".tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	err = fill(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, name))
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

// compactor is the goroutine that compacts closed WAL segments in order.
// A failed compaction (disk full, say) is retried every few seconds; the
// segment stays in the WAL meanwhile, so nothing is lost.
type compactor struct {
	in      *Ingester
	mu      sync.Mutex
	queue   []uint64
	lastErr error
	changed chan struct{} // closed and replaced on every progress
	wake    chan struct{}
	quit    chan struct{}
	done    chan struct{}
}

func newCompactor(in *Ingester, pending []uint64) *compactor {
	return &compactor{in: in, queue: pending, changed: make(chan struct{}),
		wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
}

func (c *compactor) enqueue(seq uint64) {
	c.mu.Lock()
	c.queue = append(c.queue, seq)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// run compacts until stop; on stop it compacts what is queued (one attempt
// each) and exits.
func (c *compactor) run() {
	defer close(c.done)
	stopping := false
	for {
		c.mu.Lock()
		if len(c.queue) == 0 {
			c.mu.Unlock()
			if stopping {
				return
			}
			select {
			case <-c.wake:
			case <-c.quit:
				stopping = true
			}
			continue
		}
		seq := c.queue[0]
		c.mu.Unlock()
		err := c.in.compactSegment(seq)
		c.mu.Lock()
		c.lastErr = err
		if err == nil {
			c.queue = c.queue[1:]
		}
		close(c.changed)
		c.changed = make(chan struct{})
		c.mu.Unlock()
		if err != nil {
			c.in.log.Error("compaction failed; the segment stays in the WAL", "seq", seq, "err", err)
			if stopping {
				return
			}
			select {
			case <-time.After(c.in.opts.retryDelay):
			case <-c.quit:
				return
			}
		}
	}
}

func (c *compactor) stop() error {
	close(c.quit)
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastErr
}

// waitFor returns once every segment numbered up to upTo is compacted, or
// with the compactor's error if the oldest pending one failed.
func (c *compactor) waitFor(ctx context.Context, upTo uint64) error {
	for {
		c.mu.Lock()
		if len(c.queue) == 0 || c.queue[0] > upTo {
			c.mu.Unlock()
			return nil
		}
		if c.lastErr != nil {
			err := c.lastErr
			c.mu.Unlock()
			return err
		}
		ch := c.changed
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-c.done:
			c.mu.Lock()
			err := c.lastErr
			c.mu.Unlock()
			if err == nil {
				err = ErrClosed
			}
			return err
		}
	}
}
