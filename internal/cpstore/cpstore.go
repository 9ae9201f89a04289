// Package cpstore provides the control plane's persistent state: each
// appliance's latest heartbeat, content, drain and routes, a log of
// operator actions, and which replica's measurement store holds each probe
// report (claims.go). It is kept in SQLite (one file, no cgo) for a single
// control plane, or in PostgreSQL so that several control-plane replicas
// behind a load balancer share it.
//
// Every write stamps its row with a new value of one global version
// counter, so a replica catches up by reading the rows whose version is
// above the last one it saw (Changes): that is how replicas sync.
package cpstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // PostgreSQL driver "pgx"
	_ "modernc.org/sqlite"             // SQLite driver "sqlite"
)

// Drain is a persisted operator drain.
type Drain struct {
	At     time.Time `json:"at,omitzero"`
	Until  time.Time `json:"until,omitzero"`
	Reason string    `json:"reason,omitempty"`
}

// Appliance is one appliance's persisted state.
type Appliance struct {
	ID       string
	Version  int64
	LastBeat time.Time
	// Heartbeat is the latest heartbeat as JSON (without the file list).
	Heartbeat  json.RawMessage
	ContentGen uint64
	Held       []string // nil: never reported
	Drain      *Drain
	// Routes is the appliance's route set as JSON ([]rib.Route), with the
	// epoch and sequence of the last report applied.
	Routes     json.RawMessage
	RouteEpoch string
	RouteSeq   uint64
	// TurnedUp is when the appliance first passed its turn-up checks
	// (zero: not yet): every replica, and a restarted one, steers to it
	// without checking again.
	TurnedUp time.Time
}

// Store is a control-plane database.
type Store struct {
	db       *sql.DB
	postgres bool
}

// Open opens dsn: "postgres://…" or "postgresql://…" for PostgreSQL,
// anything else is a SQLite file path (":memory:" for a private in-memory
// database). The schema is created if missing.
func Open(ctx context.Context, dsn string) (*Store, error) {
	s := &Store{}
	var err error
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		s.postgres = true
		s.db, err = sql.Open("pgx", dsn)
	} else {
		s.db, err = sql.Open("sqlite", "file:"+dsn+"?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=busy_timeout(5000)")
		// One writer: SQLite serializes writes anyway, and one connection
		// keeps ":memory:" one database.
		s.db.SetMaxOpenConns(1)
	}
	if err != nil {
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("cpstore %s: %w", redact(dsn), err)
	}
	return s, nil
}

// redact hides a password in a DSN, so that it never reaches a log.
func redact(dsn string) string {
	if i := strings.Index(dsn, "://"); i >= 0 {
		rest := dsn[i+3:]
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			if c := strings.Index(rest[:at], ":"); c >= 0 {
				return dsn[:i+3] + rest[:c] + ":***" + rest[at:]
			}
		}
	}
	return dsn
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

func (s *Store) q(query string) string {
	if !s.postgres {
		return query
	}
	var b strings.Builder
	n := 0
	for _, c := range query {
		if c == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

func (s *Store) migrate(ctx context.Context) error {
	stmts := []string{
		`CREATE TABLE IF NOT EXISTS appliances (
			id TEXT PRIMARY KEY,
			version BIGINT NOT NULL,
			last_beat_ns BIGINT NOT NULL DEFAULT 0,
			heartbeat TEXT NOT NULL DEFAULT '',
			content_gen BIGINT NOT NULL DEFAULT 0,
			held TEXT NOT NULL DEFAULT '',
			drain TEXT NOT NULL DEFAULT '',
			routes TEXT NOT NULL DEFAULT '',
			route_epoch TEXT NOT NULL DEFAULT '',
			route_seq BIGINT NOT NULL DEFAULT 0)`,
		`CREATE INDEX IF NOT EXISTS appliances_version ON appliances (version)`,
		`CREATE TABLE IF NOT EXISTS admin_log (at_ns BIGINT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, detail TEXT NOT NULL)`,
		// claims.go: which measurement store holds each report id.
		`CREATE TABLE IF NOT EXISTS report_claims (report_id TEXT PRIMARY KEY, holder TEXT NOT NULL, claimed_ns BIGINT NOT NULL)`,
		`CREATE INDEX IF NOT EXISTS report_claims_age ON report_claims (claimed_ns)`,
	}
	if s.postgres {
		stmts = append(stmts, `CREATE SEQUENCE IF NOT EXISTS ocdn_version`,
			`ALTER TABLE appliances ADD COLUMN IF NOT EXISTS turned_up_ns BIGINT NOT NULL DEFAULT 0`)
	} else {
		stmts = append(stmts, `CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v BIGINT NOT NULL)`,
			`INSERT INTO meta (k, v) VALUES ('version', 0) ON CONFLICT (k) DO NOTHING`)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if s.postgres {
		// Replicas starting together would race CREATE … IF NOT EXISTS,
		// which PostgreSQL does not make atomic (one fails on a unique
		// index of its catalog): take turns. The lock ends with the
		// transaction.
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(7206551300)`); err != nil {
			return err
		}
	}
	for _, st := range stmts {
		if _, err := tx.ExecContext(ctx, st); err != nil {
			return err
		}
	}
	if !s.postgres {
		// Columns added since the table was first made (SQLite has no
		// ADD COLUMN IF NOT EXISTS).
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM pragma_table_info('appliances') WHERE name = 'turned_up_ns'`).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			if _, err := tx.ExecContext(ctx, `ALTER TABLE appliances ADD COLUMN turned_up_ns BIGINT NOT NULL DEFAULT 0`); err != nil {
				return err
			}
		}
	}
	return tx.Commit()
}

func (s *Store) nextVersion(ctx context.Context, tx *sql.Tx) (int64, error) {
	var v int64
	var err error
	if s.postgres {
		err = tx.QueryRowContext(ctx, `SELECT nextval('ocdn_version')`).Scan(&v)
	} else {
		err = tx.QueryRowContext(ctx, `UPDATE meta SET v = v + 1 WHERE k = 'version' RETURNING v`).Scan(&v)
	}
	return v, err
}

// Change is one update of an appliance's row; nil fields stay as they are.
type Change struct {
	ID string
	// Beat, when set, updates the heartbeat columns.
	Beat *Beat
	// Drain, when set, replaces the drain (a Drain with SetDrain false is
	// ignored).
	SetDrain bool
	Drain    *Drain
	// Routes, when set, replaces the route set.
	Routes *Routes
	// TurnedUp, when not zero, records that the appliance passed turn-up
	// then (the first time recorded is kept).
	TurnedUp time.Time
}

// Beat is the heartbeat part of a change.
type Beat struct {
	At         time.Time
	Heartbeat  json.RawMessage
	ContentGen uint64
	Held       []string // nil: unchanged
}

// Routes is the route part of a change.
type Routes struct {
	Routes json.RawMessage
	Epoch  string
	Seq    uint64
}

// Apply writes changes in one transaction.
func (s *Store) Apply(ctx context.Context, changes []Change) error {
	if len(changes) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, c := range changes {
		v, err := s.nextVersion(ctx, tx)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO appliances (id, version) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET version = excluded.version`), c.ID, v); err != nil {
			return err
		}
		if b := c.Beat; b != nil {
			if _, err := tx.ExecContext(ctx, s.q(`UPDATE appliances SET last_beat_ns = ?, heartbeat = ?, content_gen = ? WHERE id = ?`),
				b.At.UnixNano(), string(b.Heartbeat), int64(b.ContentGen), c.ID); err != nil {
				return err
			}
			if b.Held != nil {
				held, _ := json.Marshal(b.Held)
				if _, err := tx.ExecContext(ctx, s.q(`UPDATE appliances SET held = ? WHERE id = ?`), string(held), c.ID); err != nil {
					return err
				}
			}
		}
		if c.SetDrain {
			d := ""
			if c.Drain != nil {
				b, _ := json.Marshal(c.Drain)
				d = string(b)
			}
			if _, err := tx.ExecContext(ctx, s.q(`UPDATE appliances SET drain = ? WHERE id = ?`), d, c.ID); err != nil {
				return err
			}
		}
		if r := c.Routes; r != nil {
			if _, err := tx.ExecContext(ctx, s.q(`UPDATE appliances SET routes = ?, route_epoch = ?, route_seq = ? WHERE id = ?`),
				string(r.Routes), r.Epoch, int64(r.Seq), c.ID); err != nil {
				return err
			}
		}
		if !c.TurnedUp.IsZero() {
			if _, err := tx.ExecContext(ctx, s.q(`UPDATE appliances SET turned_up_ns = ? WHERE id = ? AND turned_up_ns = 0`),
				c.TurnedUp.UnixNano(), c.ID); err != nil {
				return err
			}
		}
	}
	return tx.Commit()
}

// Changes returns the appliances whose rows changed after version since,
// and the highest version seen.
func (s *Store) Changes(ctx context.Context, since int64) ([]Appliance, int64, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT id, version, last_beat_ns, heartbeat, content_gen, held, drain, routes, route_epoch, route_seq, turned_up_ns
		FROM appliances WHERE version > ? ORDER BY version`), since)
	if err != nil {
		return nil, since, err
	}
	defer rows.Close()
	var out []Appliance
	top := since
	for rows.Next() {
		var a Appliance
		var beat, gen, seq, turnedUp int64
		var hb, held, drain, routes string
		if err := rows.Scan(&a.ID, &a.Version, &beat, &hb, &gen, &held, &drain, &routes, &a.RouteEpoch, &seq, &turnedUp); err != nil {
			return nil, since, err
		}
		if beat != 0 {
			a.LastBeat = time.Unix(0, beat)
		}
		if turnedUp != 0 {
			a.TurnedUp = time.Unix(0, turnedUp)
		}
		a.ContentGen, a.RouteSeq = uint64(gen), uint64(seq)
		if hb != "" {
			a.Heartbeat = json.RawMessage(hb)
		}
		if held != "" {
			if err := json.Unmarshal([]byte(held), &a.Held); err != nil {
				return nil, since, fmt.Errorf("appliance %s: held: %w", a.ID, err)
			}
		}
		if drain != "" {
			a.Drain = &Drain{}
			if err := json.Unmarshal([]byte(drain), a.Drain); err != nil {
				return nil, since, fmt.Errorf("appliance %s: drain: %w", a.ID, err)
			}
		}
		if routes != "" {
			a.Routes = json.RawMessage(routes)
		}
		out = append(out, a)
		top = max(top, a.Version)
	}
	return out, top, rows.Err()
}

// LogAdmin records an operator action.
func (s *Store) LogAdmin(ctx context.Context, at time.Time, actor, action, detail string) error {
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO admin_log (at_ns, actor, action, detail) VALUES (?, ?, ?, ?)`), at.UnixNano(), actor, action, detail)
	return err
}

// AdminAction is one logged operator action.
type AdminAction struct {
	At                    time.Time
	Actor, Action, Detail string
}

// AdminLog returns the logged actions, oldest first.
func (s *Store) AdminLog(ctx context.Context) ([]AdminAction, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT at_ns, actor, action, detail FROM admin_log ORDER BY at_ns`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []AdminAction
	for rows.Next() {
		var a AdminAction
		var ns int64
		if err := rows.Scan(&ns, &a.Actor, &a.Action, &a.Detail); err != nil {
			return nil, err
		}
		a.At = time.Unix(0, ns)
		out = append(out, a)
	}
	return out, rows.Err()
}

// ErrClosed is returned after Close.
var ErrClosed = errors.New("cpstore: closed")
