package measure

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Claims is a record, shared by the ingesters of control-plane replicas,
// of which store holds each report id. internal/cpstore keeps it in the
// replicas' PostgreSQL database.
//
// # Exactly once across replicas
//
// Each replica has its own ingest directory (its own write-ahead log and
// Parquet files; the union of the directories is the measurement store).
// A client whose upload to replica A timed out re-sends the report to
// replica B, so both may receive it: A may have stored it, be storing it,
// or have crashed before or after its fsync. The protocol:
//
//  1. Ingest appends the report to the WAL and fsyncs (as without claims).
//  2. Then it claims the id for "A's store, segment s" in the shared
//     table. A claim is inserted only if the id has none, and never
//     changes afterwards. If the id was already claimed by someone else,
//     the answer is "duplicate"; the copy in A's WAL stays there and is
//     dropped at compaction.
//  3. Compaction of segment s claims every id in it (a no-op for those
//     claimed in step 2) and writes to Parquet only the records whose
//     claim names (A's store, s). A failed claim fails the compaction,
//     which is retried; the segment stays in the WAL meanwhile.
//
// No report is doubled: an id has one claim, naming one segment of one
// store, and only that segment's compaction writes it (compaction is
// idempotent, so rewriting after a crash gives the same file).
//
// No acknowledged report is lost: a report is acknowledged only after
// step 1, so it is in A's WAL. If its claim names A's segment, A's
// compaction writes it. If it names another store's segment, that store
// made the claim after fsyncing the report in that segment (claims are
// made only in steps 2 and 3, both after the fsync), so that store's
// compaction writes it. If nothing claimed it yet, A's compaction claims
// it, or finds it claimed by a store that has it durably.
//
// The crash windows: killed before the fsync, the report was not
// acknowledged and the client re-sends it; killed between fsync and claim,
// the WAL replay at restart puts the id back in the local dedupe set and
// compaction claims it (or finds the copy another replica claimed in the
// meantime and drops its own); killed after the claim, the re-send to
// another replica finds the claim and is told "duplicate", and the
// restarted replica's compaction writes the report; killed during
// compaction, the next compaction claims again (getting the same answers)
// and rewrites the same files. A database outage only delays Parquet:
// reports are acknowledged from the WAL, and compaction waits for the
// claims.
//
// Claims are forgotten after the dedupe window, like the local id set.
// The live per-prefix aggregates of a replica may count a report that
// another replica also received when the claim at ingest failed; they are
// estimates for steering, not the store.
type Claims interface {
	// ClaimReports records holder for every id that has no holder and
	// returns the holder of every id.
	ClaimReports(ctx context.Context, holder string, at time.Time, ids []string) (map[string]string, error)
	// ForgetReportClaims deletes the claims made before before.
	ForgetReportClaims(ctx context.Context, before time.Time) error
}

const (
	// defaultClaimTimeout bounds the claim made while a client waits;
	// without an answer the report is acknowledged and compaction claims
	// it.
	defaultClaimTimeout = 2 * time.Second
	// claimBackoff: after a failed claim at ingest, uploads skip the
	// claim this long rather than each wait for a database that is down.
	claimBackoff = 5 * time.Second
	// compactClaimTimeout bounds the claims of one segment's compaction.
	compactClaimTimeout = 30 * time.Second
)

// holder is the claim name of segment seq of this store.
func (in *Ingester) holder(seq uint64) string {
	return in.storeID + "/" + strconv.FormatUint(seq, 10)
}

// claimAtIngest claims id for segment seq while the client waits. It
// reports whether another store holds the id; on a database error it
// reports false (the report is durable here; compaction settles it).
func (in *Ingester) claimAtIngest(ctx context.Context, id string, seq uint64, now time.Time) (elsewhere bool) {
	if in.opts.Claims == nil || now.UnixNano() < in.claimsDownUntil.Load() {
		return false
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), in.opts.claimTimeout)
	defer cancel()
	mine := in.holder(seq)
	holders, err := in.opts.Claims.ClaimReports(ctx, mine, now, []string{id})
	if err != nil {
		in.claimsDownUntil.Store(now.Add(claimBackoff).UnixNano())
		in.m.claimErrors.Inc()
		in.log.Warn("claiming a report failed; it is stored here and claimed at compaction", "report", id, "err", err)
		return false
	}
	return holders[id] != mine
}

// claimSegment claims the ids of segment seq at compaction and returns the
// set this segment holds.
func (in *Ingester) claimSegment(seq uint64, at time.Time, ids []string) (map[string]bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), compactClaimTimeout)
	defer cancel()
	mine := in.holder(seq)
	holders, err := in.opts.Claims.ClaimReports(ctx, mine, at, ids)
	if err != nil {
		in.m.claimErrors.Inc()
		return nil, fmt.Errorf("claiming the reports of WAL segment %d: %w", seq, err)
	}
	held := make(map[string]bool, len(ids))
	for _, id := range ids {
		if h, ok := holders[id]; !ok {
			return nil, fmt.Errorf("claiming the reports of WAL segment %d: no holder returned for %s", seq, id)
		} else if h == mine {
			held[id] = true
		}
	}
	if now := in.opts.Now(); now.Sub(in.lastForget) >= time.Hour {
		if err := in.opts.Claims.ForgetReportClaims(ctx, now.Add(-in.opts.DedupeWindow)); err != nil {
			in.log.Warn("forgetting old report claims failed; retrying at the next compaction", "err", err)
		} else {
			in.lastForget = now
		}
	}
	return held, nil
}

// storeIDFile names the ingest directory's store: the holder name its
// claims carry and the tag in its Parquet file names. It is made at the
// first Open; copying a directory to start another replica from it would
// give two stores one name, so start replicas with fresh directories.
const storeIDFile = "store-id"

// loadStoreID reads DIR/store-id, creating it with a random id if missing.
func loadStoreID(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, storeIDFile))
	if err == nil {
		id := strings.TrimSpace(string(b))
		if len(id) != 16 || strings.Trim(id, "0123456789abcdef") != "" {
			return "", fmt.Errorf("%s: %q is not 16 lowercase hex digits", filepath.Join(dir, storeIDFile), id)
		}
		return id, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	var r [8]byte
	rand.Read(r[:])
	id := hex.EncodeToString(r[:])
	err = writeAtomic(dir, storeIDFile, func(f *os.File) error {
		_, err := f.WriteString(id + "\n")
		return err
	})
	return id, err
}

// lockDir takes an exclusive lock on DIR/lock for the ingester's
// lifetime: two ingesters in one directory (two replicas pointed at one
// shared measure dir) would write the same segment names.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s is in use by another ingester (each control-plane replica needs its own measure dir)", ErrDirInUse, dir)
		}
		return nil, err
	}
	return f, nil
}

// ErrDirInUse is returned by Open when another ingester holds the
// directory.
var ErrDirInUse = errors.New("measure: directory in use")
