package analyze

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/ocdn/ocdn/internal/measure"
)

// Sentinel errors of the loader; returned wrapped with the file or
// directory concerned.
var (
	// ErrNoData means the data directory holds no pulse Parquet files.
	ErrNoData = errors.New("no pulse data")
	// ErrEmptyRange means files were read but no row passed the filters.
	ErrEmptyRange = errors.New("no pulses match the filters")
	// ErrNewerSchema means a file was written by a newer ingester than
	// this analysis knows: an unknown column or a higher schema_version.
	ErrNewerSchema = errors.New("file has a newer schema than this version of ocdn analyze knows")
	// ErrBadFile means a Parquet file could not be read.
	ErrBadFile = errors.New("unreadable Parquet file")
)

// SchemaVersion is the pulses-table schema this package reads. The ingester
// does not write a schema_version key-value metadata yet; a file that has
// one above this value is refused.
const SchemaVersion = 1

// pulseColumns is the pulses schema of measure.PulseRow (schema version 1).
// A file with any other column is from a newer ingester and refused, since
// silently ignoring a column could change what a row means.
var pulseColumns = []string{"report_id", "received_time", "client_addr", "client_prefix", "prefix_group",
	"asn", "isp", "recipe", "context", "client_time", "target", "appliance", "site", "type", "seq", "start",
	"connect_ms", "tls_ms", "ttfb_ms", "duration_ms", "bytes", "throughput_bps", "status", "http_status", "error",
	// Added with dns pulses and address families; older files lack them
	// and read as empty.
	"family", "dns_ms", "nonce", "resolver", "resolver_asn", "ecs", "resolver_distance"}

// requiredColumns must be present for the analysis to mean anything.
var requiredColumns = []string{"report_id", "received_time", "client_addr", "client_prefix", "prefix_group",
	"asn", "context", "appliance", "site", "type", "status", "bytes", "connect_ms", "ttfb_ms", "throughput_bps"}

// Filter selects rows while loading. Zero fields select everything.
type Filter struct {
	Since, Until time.Time // received_time in [Since, Until)
	// IssuedSince keeps only rows of recipes the control plane issued at
	// or after it (context issued_at; rows without one are left out):
	// a report received after a change may still carry pulses of a
	// recipe issued before it.
	IssuedSince time.Time
	Sites       []string
	ASNs        []uint32
}

func (f *Filter) keepHour(start time.Time) bool {
	if !f.Since.IsZero() && !start.Add(time.Hour).After(f.Since) {
		return false
	}
	if !f.Until.IsZero() && !start.Before(f.Until) {
		return false
	}
	return true
}

func (f *Filter) keep(r *Row) bool {
	if !f.Since.IsZero() && r.Time.Before(f.Since) {
		return false
	}
	if !f.Until.IsZero() && !r.Time.Before(f.Until) {
		return false
	}
	if !f.IssuedSince.IsZero() && (r.Issued.IsZero() || r.Issued.Before(f.IssuedSince)) {
		return false
	}
	if len(f.Sites) > 0 && !slices.Contains(f.Sites, r.Site) {
		return false
	}
	if len(f.ASNs) > 0 && !slices.Contains(f.ASNs, r.ASN) {
		return false
	}
	return true
}

// LoadStats describes what Load read.
type LoadStats struct {
	Files, FilesSkipped int // files read; files outside the time range
	RowsRead, RowsKept  int
}

// pulseFiles lists DIR/pulses/date=*/hour=*/part-*.parquet in time order;
// DIR may also hold several ingest directories (control-plane replicas'),
// whose union is read (measure.TableFiles).
func pulseFiles(dir string) ([]string, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("data directory %s: not a directory", dir)
	}
	files, err := measure.TableFiles(dir, "pulses")
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%w: no %s files (nor in its subdirectories)", ErrNoData, filepath.Join(dir, "pulses", "date=*", "hour=*", "part-*.parquet"))
	}
	return files, nil
}

// partitionHour parses the hive partition of a file path; ok is false if
// the path does not carry one.
func partitionHour(path string) (time.Time, bool) {
	hourDir := filepath.Base(filepath.Dir(path))
	dateDir := filepath.Base(filepath.Dir(filepath.Dir(path)))
	d, ok1 := strings.CutPrefix(dateDir, "date=")
	h, ok2 := strings.CutPrefix(hourDir, "hour=")
	if !ok1 || !ok2 {
		return time.Time{}, false
	}
	day, err := time.Parse("2006-01-02", d)
	if err != nil {
		return time.Time{}, false
	}
	hh, err := strconv.Atoi(h)
	if err != nil || hh < 0 || hh > 23 {
		return time.Time{}, false
	}
	return day.Add(time.Duration(hh) * time.Hour), true
}

// Load reads every pulse row under dir that passes f. It streams each file
// in batches; memory is that of the kept rows (about 150 bytes each, the
// strings interned). progress, if not nil, is called after each file.
func Load(dir string, f Filter, progress func(done, total int, rows int)) ([]Row, LoadStats, error) {
	var rows []Row
	st, err := scan(dir, f, func(r *Row) { rows = append(rows, *r) }, func(done, total int) {
		if progress != nil {
			progress(done, total, len(rows))
		}
	})
	if err != nil {
		return nil, st, err
	}
	return rows, st, nil
}

// PulseFiles lists the pulses files under dir, in the order Load reads
// them, leaving out those whose hour partition cannot hold a row f keeps.
func PulseFiles(dir string, f Filter) ([]string, error) {
	files, err := pulseFiles(dir)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(files, func(path string) bool {
		h, ok := partitionHour(path)
		return ok && !f.keepHour(h)
	}), nil
}

// ScanFile passes each row of the pulses file at path that passes f to fn,
// keeping none (the *Row is fn's only for the call), and returns how many
// it passed: memory is that file's rows. Parquet files are written
// once and renamed into place, so a caller may keep what it gathered from
// a file for as long as the file is listed.
func ScanFile(path string, f Filter, fn func(*Row)) (int, error) {
	l := newLoader(&f)
	if err := l.readFile(path); err != nil {
		return 0, err
	}
	for i := range l.rows {
		fn(&l.rows[i])
	}
	return len(l.rows), nil
}

// scan passes Load's rows to fn, a file at a time.
func scan(dir string, f Filter, fn func(*Row), progress func(done, total int)) (LoadStats, error) {
	var st LoadStats
	files, err := pulseFiles(dir)
	if err != nil {
		return st, err
	}
	l := newLoader(&f)
	for i, path := range files {
		if h, ok := partitionHour(path); ok && !f.keepHour(h) {
			st.FilesSkipped++
			continue
		}
		if err := l.readFile(path); err != nil {
			return st, err
		}
		for j := range l.rows {
			fn(&l.rows[j])
		}
		st.RowsKept += len(l.rows)
		st.Files++
		if progress != nil {
			progress(i+1, len(files))
		}
	}
	st.RowsRead = l.read
	if st.RowsKept == 0 {
		return st, fmt.Errorf("%w: %d rows in %d files under %s, none %s", ErrEmptyRange, l.read, st.Files, dir, f.describe())
	}
	return st, nil
}

func newLoader(f *Filter) *loader {
	return &loader{filter: f, intern: make(map[string]string), ctx: make(map[string]ctxInfo)}
}

// LoadQoE reads the playback records under dir/qoe that pass f (the time
// range, the ASNs, and the sites by the site that served the session
// first). A directory without a qoe table gives none and no error: older
// stores have none.
func LoadQoE(dir string, f Filter) ([]Session, error) {
	files, err := filepath.Glob(filepath.Join(dir, "qoe", "date=*", "hour=*", "part-*.parquet"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	l := newLoader(&f)
	var out []Session
	for _, path := range files {
		if h, ok := partitionHour(path); ok && !f.keepHour(h) {
			continue
		}
		err := withParquetFile(path, func(pf *parquet.File) error {
			r := parquet.NewGenericReader[measure.QoERow](pf)
			defer r.Close()
			buf := make([]measure.QoERow, 256)
			for {
				n, rerr := r.Read(buf)
				for i := range buf[:n] {
					q := &buf[i]
					c, err := l.context(path, q.Context)
					if err != nil {
						return err
					}
					s := Session{ReportID: strings.Clone(q.ReportID), Time: time.UnixMicro(q.ReceivedTime).UTC(), Prefix: l.str(q.ClientPrefix),
						PrefixGroup: l.str(q.PrefixGroup), Site: l.str(q.Site), Arm: c.arm, AssignedArm: c.assignedArm, Exp: c.exp,
						StartupMs: q.StartupMs, BitrateKbps: q.AvgBitrateKbps, RebufferRatio: math.NaN()}
					s.ClientAddr, _ = netip.ParseAddr(q.ClientAddr)
					if q.DurationMs > 0 {
						s.RebufferRatio = q.RebufferMs / q.DurationMs
					}
					if !f.keep(&Row{Time: s.Time, Issued: c.issued, Site: s.Site, ASN: q.ASN}) {
						continue
					}
					out = append(out, s)
				}
				if rerr == io.EOF {
					return nil
				}
				if rerr != nil {
					return fmt.Errorf("%s: %w: %v", path, ErrBadFile, rerr)
				}
			}
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (f *Filter) describe() string {
	var parts []string
	if !f.Since.IsZero() {
		parts = append(parts, "since "+f.Since.UTC().Format(time.RFC3339))
	}
	if !f.Until.IsZero() {
		parts = append(parts, "until "+f.Until.UTC().Format(time.RFC3339))
	}
	if !f.IssuedSince.IsZero() {
		parts = append(parts, "of recipes issued since "+f.IssuedSince.UTC().Format(time.RFC3339Nano))
	}
	if len(f.Sites) > 0 {
		parts = append(parts, "at sites "+strings.Join(f.Sites, ","))
	}
	if len(f.ASNs) > 0 {
		s := make([]string, len(f.ASNs))
		for i, a := range f.ASNs {
			s[i] = strconv.FormatUint(uint64(a), 10)
		}
		parts = append(parts, "in ASNs "+strings.Join(s, ","))
	}
	if len(parts) == 0 {
		return "readable"
	}
	return strings.Join(parts, ", ")
}

type ctxInfo struct {
	steeredSite, steeredAppliance, arm, assignedArm string
	issued                                          time.Time
	exp                                             *ExperimentMeta
}

type loader struct {
	filter *Filter
	intern map[string]string
	ctx    map[string]ctxInfo
	exps   map[string]*ExperimentMeta // by the context's experiment keys
	// ids interns report ids within a file (a report's pulses share
	// one; a report is in one file), so that it does not grow with the
	// whole range's reports as intern would.
	ids  map[string]string
	rows []Row // the kept rows of the file last read
	read int
}

func (l *loader) str(s string) string {
	if v, ok := l.intern[s]; ok {
		return v
	}
	s = strings.Clone(s)
	l.intern[s] = s
	return s
}

func (l *loader) id(s string) string {
	if v, ok := l.ids[s]; ok {
		return v
	}
	s = strings.Clone(s)
	if l.ids == nil {
		l.ids = make(map[string]string)
	}
	l.ids[s] = s
	return s
}

func (l *loader) context(path, s string) (ctxInfo, error) {
	if c, ok := l.ctx[s]; ok {
		return c, nil
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return ctxInfo{}, fmt.Errorf("%s: %w: context column is not a JSON object of strings: %v", path, ErrBadFile, err)
	}
	c := ctxInfo{steeredSite: l.str(m["steered_site"]), steeredAppliance: l.str(m["steered_appliance"]), arm: l.str(m["arm"]),
		assignedArm: l.str(m[measure.ContextAssignedArm])}
	// An unreadable issued_at reads as none: such rows only drop out of
	// a Filter.IssuedSince, never mislead it.
	c.issued, _ = time.Parse(time.RFC3339Nano, m[measure.ContextIssuedAt])
	if name, ok := m["experiment"]; ok || c.arm != "" {
		// One ExperimentMeta per experiment definition, shared by its rows.
		key := strings.Join([]string{name, m["experiment_start"], m["arm_shares"], m["control_arm"]}, "\x00")
		if l.exps == nil {
			l.exps = map[string]*ExperimentMeta{}
		}
		if p, ok := l.exps[key]; ok {
			c.exp = p
		} else {
			meta := &ExperimentMeta{Name: l.str(name), Control: l.str(m["control_arm"]), Shares: parseShares(m["arm_shares"])}
			meta.Start, _ = time.Parse(time.RFC3339, m["experiment_start"])
			c.exp = meta
			l.exps[key] = meta
		}
	}
	l.ctx[strings.Clone(s)] = c
	return c, nil
}

// CheckSchema returns an error wrapping ErrNewerSchema or ErrBadFile if the
// pulses file pf (at path) is not one this package can read.
func CheckSchema(path string, pf *parquet.File) error {
	if v, ok := pf.Lookup("schema_version"); ok {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n > SchemaVersion {
			return fmt.Errorf("%s: %w: schema_version %q, this version reads %d", path, ErrNewerSchema, v, SchemaVersion)
		}
	}
	have := make(map[string]bool)
	for _, fl := range pf.Schema().Fields() {
		name := fl.Name()
		if !slices.Contains(pulseColumns, name) {
			return fmt.Errorf("%s: %w: unknown column %q", path, ErrNewerSchema, name)
		}
		have[name] = true
	}
	for _, c := range requiredColumns {
		if !have[c] {
			return fmt.Errorf("%s: %w: column %q missing; not a pulses table", path, ErrBadFile, c)
		}
	}
	return nil
}

// withParquetFile opens path as Parquet and runs read on it. parquet-go may
// panic on some corrupt inputs; that, like any failure to open, becomes an
// ErrBadFile error naming the file.
func withParquetFile(path string, read func(*parquet.File) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%s: %w: %v", path, ErrBadFile, p)
		}
	}()
	fh, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%s: %w: %v", path, ErrBadFile, err)
	}
	defer fh.Close()
	fi, err := fh.Stat()
	if err != nil {
		return fmt.Errorf("%s: %w: %v", path, ErrBadFile, err)
	}
	pf, err := parquet.OpenFile(fh, fi.Size())
	if err != nil {
		return fmt.Errorf("%s: %w: %v", path, ErrBadFile, err)
	}
	return read(pf)
}

// readFile reads the kept rows of one file into l.rows.
func (l *loader) readFile(path string) error {
	clear(l.rows) // let the last file's strings go
	l.rows = l.rows[:0]
	clear(l.ids)
	return withParquetFile(path, func(pf *parquet.File) error { return l.readRows(path, pf) })
}

func (l *loader) readRows(path string, pf *parquet.File) error {
	if err := CheckSchema(path, pf); err != nil {
		return err
	}
	r := parquet.NewGenericReader[measure.PulseRow](pf)
	defer r.Close()
	steeredApp := make(map[string]string) // report id → steered appliance, when the site is not given
	buf := make([]measure.PulseRow, 1024)
	for {
		n, rerr := r.Read(buf)
		for i := range buf[:n] {
			p := &buf[i]
			l.read++
			c, err := l.context(path, p.Context)
			if err != nil {
				return err
			}
			row := Row{
				ReportID: l.id(p.ReportID), Time: time.UnixMicro(p.ReceivedTime).UTC(),
				Prefix: l.str(p.ClientPrefix), PrefixGroup: l.str(p.PrefixGroup), ASN: p.ASN,
				Site: l.str(p.Site), Appliance: l.str(p.Appliance), Type: l.str(p.Type), Status: l.str(p.Status),
				Bytes: p.Bytes, SteeredSite: c.steeredSite, Arm: c.arm, AssignedArm: c.assignedArm, Exp: c.exp,
				Issued: c.issued,
			}
			row.ClientAddr, _ = netip.ParseAddr(p.ClientAddr) // invalid stays the zero Addr; clients then key by prefix
			if !l.filter.keep(&row) {
				continue
			}
			ok := p.Status == measure.StatusOK
			row.Values[Connect] = val(p.ConnectMs, ok)
			row.Values[TTFB] = val(p.TTFBMs, ok)
			row.Values[Throughput] = val(p.Throughput, ok)
			row.ISP, row.Family, row.DNSMs = l.str(p.ISP), l.str(p.Family), val(p.DNSMs, ok)
			row.Resolver, row.ResolverASN, row.ECS, row.Distance = l.str(p.Resolver), p.ResolverASN, l.str(p.ECS), l.str(p.ResolverDistance)
			if row.SteeredSite == "" && c.steeredAppliance != "" {
				steeredApp[row.ReportID] = c.steeredAppliance
			}
			l.rows = append(l.rows, row)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("%s: %w: %v", path, ErrBadFile, rerr)
		}
	}
	if len(steeredApp) > 0 {
		// A report is written to one file, so its rows are all here.
		site := make(map[string]string)
		for i := range l.rows {
			r := &l.rows[i]
			if a, ok := steeredApp[r.ReportID]; ok && a == r.Appliance && r.Site != "" {
				site[r.ReportID] = r.Site
			}
		}
		for i := range l.rows {
			if s, ok := site[l.rows[i].ReportID]; ok && l.rows[i].SteeredSite == "" {
				l.rows[i].SteeredSite = s
			}
		}
	}
	return nil
}

func val(p *float64, ok bool) float64 {
	if p == nil || !ok || math.IsInf(*p, 0) || *p < 0 {
		return math.NaN()
	}
	return *p
}
