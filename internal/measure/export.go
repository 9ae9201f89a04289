package measure

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/parquet-go/parquet-go"
)

// Export writes every row of table ("pulses", "qoe" or "transport") stored under dir (an
// ingest directory, or a directory of them: see TableFiles) to w, as CSV
// (with a header) or JSONL (one object per line), in partition then file
// order. Timestamps are RFC 3339 UTC;
// NULLs are empty CSV fields and JSON nulls. It reads only the Parquet
// files: reports still in the WAL (at most Options.SegmentMaxAge old, or
// left by a process that has not been reopened) are not exported; open and
// close the ingester, or Flush it, first to include them. It may run while
// an ingester writes: files appear by atomic rename, so each is read whole
// or not at all.
func Export(w io.Writer, dir, table, format string) (rows int, err error) {
	if table != "pulses" && table != "qoe" && table != "transport" {
		return 0, fmt.Errorf("table %q: want pulses, qoe or transport", table)
	}
	if format != "csv" && format != "jsonl" {
		return 0, fmt.Errorf("format %q: want csv or jsonl", format)
	}
	files, err := TableFiles(dir, table)
	if err != nil {
		return 0, err
	}
	bw := bufio.NewWriterSize(w, 1<<16)
	var out rowWriter
	if format == "csv" {
		out = &csvOut{w: csv.NewWriter(bw)}
	} else {
		out = &jsonlOut{w: bw}
	}
	var cols []string
	switch table {
	case "pulses":
		cols = pulseColumns
	case "qoe":
		cols = qoeColumns
	default:
		cols = transportColumns
	}
	if err := out.header(cols); err != nil {
		return 0, err
	}
	for _, f := range files {
		var n int
		switch table {
		case "pulses":
			n, err = exportFile(f, cols, out, PulseRow.values)
		case "qoe":
			n, err = exportFile(f, cols, out, QoERow.values)
		default:
			n, err = exportFile(f, cols, out, TransportRow.values)
		}
		rows += n
		if err != nil {
			return rows, fmt.Errorf("%s: %w", f, err)
		}
	}
	if err := out.flush(); err != nil {
		return rows, err
	}
	return rows, bw.Flush()
}

// TableFiles lists the Parquet files of table ("pulses", "qoe" or "transport") under
// dir in time order: by partition, then file name. dir is an ingest
// directory (DIR/table/date=…/hour=…/part-*.parquet), or a directory
// holding several — the measure dirs of control-plane replicas,
// DIR/<replica>/table/… — whose union is the measurement store.
func TableFiles(dir, table string) ([]string, error) {
	var files []string
	for _, pattern := range []string{
		filepath.Join(dir, table, "date=*", "hour=*", "part-*.parquet"),
		filepath.Join(dir, "*", table, "date=*", "hour=*", "part-*.parquet"),
	} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			return nil, err
		}
		files = append(files, m...)
	}
	// "date=…/hour=…/part-…" sorts by time, then by store and segment.
	key := func(p string) string {
		hour := filepath.Dir(p)
		return filepath.Base(filepath.Dir(hour)) + "/" + filepath.Base(hour) + "/" + filepath.Base(p) + "\x00" + p
	}
	sort.Slice(files, func(i, j int) bool { return key(files[i]) < key(files[j]) })
	return files, nil
}

func exportFile[T any](path string, cols []string, out rowWriter, values func(T) []any) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	pf, err := parquet.OpenFile(f, st.Size())
	if err != nil {
		return 0, err
	}
	r := parquet.NewGenericReader[T](pf)
	defer r.Close()
	buf := make([]T, 512)
	n := 0
	for {
		k, err := r.Read(buf)
		for _, row := range buf[:k] {
			if werr := out.row(cols, values(row)); werr != nil {
				return n, werr
			}
			n++
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

var pulseColumns = []string{"report_id", "received_time", "client_addr", "client_prefix", "prefix_group",
	"asn", "isp", "recipe", "context", "client_time", "target", "appliance", "site", "type", "seq", "start",
	"connect_ms", "tls_ms", "ttfb_ms", "duration_ms", "bytes", "throughput_bps", "status", "http_status", "error"}

var qoeColumns = []string{"report_id", "received_time", "client_addr", "client_prefix", "prefix_group",
	"asn", "isp", "recipe", "context", "client_time", "site", "startup_ms", "rebuffers", "rebuffer_ms",
	"avg_bitrate_kbps", "switches", "failovers", "served_by", "duration_ms"}

var transportColumns = []string{"report_id", "received_time", "sample_time", "appliance", "site", "client_prefix",
	"file", "experiment", "arm", "congestion_control", "reason", "conn_age_us", "min_rtt_us", "smoothed_rtt_us",
	"rtt_var_us", "cwnd_segments", "unacked_segments", "lost_segments", "retransmitted_segments",
	"data_segments_out", "bytes_sent", "bytes_retrans", "bytes_acked", "delivery_rate_bps", "pacing_rate_bps",
	"busy_us", "rwnd_limited_us", "sndbuf_limited_us", "bbr_bw_bps", "bbr_min_rtt_us"}

type ts int64 // microseconds

func (p PulseRow) values() []any {
	return []any{p.ReportID, ts(p.ReceivedTime), p.ClientAddr, p.ClientPrefix, p.PrefixGroup, p.ASN, p.ISP,
		p.Recipe, json.RawMessage(p.Context), ts(p.ClientTime), p.Target, p.Appliance, p.Site, p.Type, p.Seq,
		ts(p.Start), p.ConnectMs, p.TLSMs, p.TTFBMs, p.DurationMs, p.Bytes, p.Throughput, p.Status,
		p.HTTPStatus, p.Error}
}

func (q QoERow) values() []any {
	return []any{q.ReportID, ts(q.ReceivedTime), q.ClientAddr, q.ClientPrefix, q.PrefixGroup, q.ASN, q.ISP,
		q.Recipe, json.RawMessage(q.Context), ts(q.ClientTime), q.Site, q.StartupMs, q.Rebuffers, q.RebufferMs,
		q.AvgBitrateKbps, q.Switches, q.Failovers, q.ServedBy, q.DurationMs}
}

func (t TransportRow) values() []any {
	return []any{t.ReportID, ts(t.ReceivedTime), ts(t.SampleTime), t.Appliance, t.Site, t.ClientPrefix,
		t.File, t.Experiment, t.Arm, t.CongestionControl, t.Reason, t.ConnAgeUs, t.MinRTTUs, t.SmoothedRTTUs,
		t.RTTVarUs, t.CwndSegments, t.UnackedSegments, t.LostSegments, t.RetransmittedSegments,
		t.DataSegmentsOut, t.BytesSent, t.BytesRetrans, t.BytesAcked, t.DeliveryRateBps, t.PacingRateBps,
		t.BusyUs, t.RwndLimitedUs, t.SndbufLimitedUs, t.BBRBwBps, t.BBRMinRTTUs}
}

type rowWriter interface {
	header(cols []string) error
	row(cols []string, vals []any) error
	flush() error
}

type csvOut struct {
	w   *csv.Writer
	rec []string
}

func (c *csvOut) header(cols []string) error { return c.w.Write(cols) }
func (c *csvOut) flush() error               { c.w.Flush(); return c.w.Error() }

func (c *csvOut) row(_ []string, vals []any) error {
	c.rec = c.rec[:0]
	for _, v := range vals {
		c.rec = append(c.rec, csvField(v))
	}
	return c.w.Write(c.rec)
}

func csvField(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case ts:
		return time.UnixMicro(int64(v)).UTC().Format(time.RFC3339Nano)
	case json.RawMessage:
		return string(v)
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	case *float64:
		if v == nil {
			return ""
		}
		return strconv.FormatFloat(*v, 'g', -1, 64)
	case *int32:
		if v == nil {
			return ""
		}
		return strconv.Itoa(int(*v))
	case *string:
		if v == nil {
			return ""
		}
		return *v
	case []string:
		b, _ := json.Marshal(v)
		return string(b)
	}
	return fmt.Sprint(v)
}

type jsonlOut struct {
	w   *bufio.Writer
	buf []byte
}

func (j *jsonlOut) header([]string) error { return nil }
func (j *jsonlOut) flush() error          { return nil }

func (j *jsonlOut) row(cols []string, vals []any) error {
	b := append(j.buf[:0], '{')
	for i, v := range vals {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendQuote(b, cols[i])
		b = append(b, ':')
		if t, ok := v.(ts); ok {
			v = time.UnixMicro(int64(t)).UTC().Format(time.RFC3339Nano)
		}
		enc, err := json.Marshal(v)
		if err != nil {
			return err
		}
		b = append(b, enc...)
	}
	b = append(b, '}', '\n')
	j.buf = b
	_, err := j.w.Write(b)
	return err
}
