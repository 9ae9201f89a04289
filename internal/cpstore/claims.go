package cpstore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Report claims: which measurement store holds each probe report id.
// Control-plane replicas that share a database share this table, so that a
// report one replica stored and whose answer the client lost is recognised
// by the replica the client re-sends it to (internal/measure explains the
// protocol and why it can neither lose nor double a report).
//
// A claim is written once and never changed: the first holder to insert
// an id keeps it until the claim is forgotten at the end of the dedupe
// window. That immutability is what makes the answer stable: every
// replica that asks about an id, at any time, gets the same holder.

// claimChunk bounds the ids of one statement (PostgreSQL allows 65,535
// parameters; SQLite 32,766).
const claimChunk = 500

// ClaimReports records holder as the holder of every id in ids that has
// none yet, and returns the holder of every id in ids: holder itself for
// the ids it won, the earlier holder's name for the others. at is stored
// with new claims for ForgetReportClaims. Each chunk commits on its own:
// a claim is idempotent, so a failure halfway leaves only claims that a
// retry would make anyway.
func (s *Store) ClaimReports(ctx context.Context, holder string, at time.Time, ids []string) (map[string]string, error) {
	// Sorted ids make concurrent claimers of overlapping sets take row
	// locks in one order, so that PostgreSQL never sees a deadlock.
	ids = slices.Clone(ids)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	out := make(map[string]string, len(ids))
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), claimChunk)]
		ids = ids[len(chunk):]
		var b strings.Builder
		b.WriteString(`INSERT INTO report_claims (report_id, holder, claimed_ns) VALUES `)
		args := make([]any, 0, 3*len(chunk))
		for i, id := range chunk {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString("(?, ?, ?)")
			args = append(args, id, holder, at.UnixNano())
		}
		b.WriteString(` ON CONFLICT (report_id) DO NOTHING`)
		if _, err := s.db.ExecContext(ctx, s.q(b.String()), args...); err != nil {
			return nil, fmt.Errorf("claiming reports: %w", err)
		}
		// A separate statement: under READ COMMITTED it sees the rows
		// other claimers committed while the insert waited on them.
		b.Reset()
		b.WriteString(`SELECT report_id, holder FROM report_claims WHERE report_id IN (`)
		args = args[:0]
		for i, id := range chunk {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('?')
			args = append(args, id)
		}
		b.WriteByte(')')
		rows, err := s.db.QueryContext(ctx, s.q(b.String()), args...)
		if err != nil {
			return nil, fmt.Errorf("reading report claims: %w", err)
		}
		for rows.Next() {
			var id, h string
			if err := rows.Scan(&id, &h); err != nil {
				rows.Close()
				return nil, fmt.Errorf("reading report claims: %w", err)
			}
			out[id] = h
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("reading report claims: %w", err)
		}
		for _, id := range chunk {
			if _, ok := out[id]; !ok {
				// Only a ForgetReportClaims racing this call removes a
				// claim just made; the caller retries.
				return nil, fmt.Errorf("claiming reports: the claim of %s vanished (forgotten concurrently)", id)
			}
		}
	}
	return out, nil
}

// ForgetReportClaims deletes the claims made before before: a report
// uploaded again after that is stored again, as it would be by a single
// replica after its dedupe window.
func (s *Store) ForgetReportClaims(ctx context.Context, before time.Time) error {
	_, err := s.db.ExecContext(ctx, s.q(`DELETE FROM report_claims WHERE claimed_ns < ?`), before.UnixNano())
	return err
}

// Shared reports whether several control-plane replicas may use the
// store at once (PostgreSQL; a SQLite file belongs to one process).
func (s *Store) Shared() bool { return s.postgres }
