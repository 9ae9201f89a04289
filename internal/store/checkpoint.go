package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/ocdn/ocdn/internal/atomicfile"
	"github.com/ocdn/ocdn/internal/clock"
)

// CheckpointInterval is how often a running store records a checkpoint.
// After a crash, what was written since the last one is re-hashed before
// it is served: at most this long of fill (a minute at 1.2 Gb/s is 9 GB,
// re-read in well under a minute), for the cost of one small file write.
const CheckpointInterval = time.Minute

// checkpointVersion is the checkpoint.json format this code writes and reads.
const checkpointVersion = 1

// maxCheckpointBytes bounds what Open reads of checkpoint.json; a real one
// is about 80 bytes.
const maxCheckpointBytes = 4 << 10

// checkpointState is checkpoint.json.
type checkpointState struct {
	Version int `json:"version"`
	// Clean says the last run ended with Close (or Run returning): for
	// the log only, since Checkpoint alone decides what is re-hashed.
	Clean bool `json:"clean"`
	// Checkpoint is a reading of the file system's clock such that every
	// object file changed before it had been verified when it was taken.
	// Zero means no such time is known: every object is re-hashed.
	Checkpoint time.Time `json:"checkpoint"`
}

func (c checkpointState) marshal() []byte {
	b, _ := json.Marshal(c) // cannot fail: plain fields
	return append(b, '\n')
}

// parseCheckpoint reads checkpoint.json strictly: anything it does not
// understand makes Open re-hash every object rather than guess.
func parseCheckpoint(b []byte) (checkpointState, error) {
	if len(b) > maxCheckpointBytes {
		return checkpointState{}, fmt.Errorf("checkpoint.json: %d bytes, more than %d", len(b), maxCheckpointBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var c checkpointState
	if err := dec.Decode(&c); err != nil {
		return checkpointState{}, fmt.Errorf("checkpoint.json: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return checkpointState{}, errors.New("checkpoint.json: data after the object")
	}
	if c.Version != checkpointVersion {
		return checkpointState{}, fmt.Errorf("checkpoint.json: version %d: this ocdn reads version %d", c.Version, checkpointVersion)
	}
	return c, nil
}

// readCheckpoint returns the recorded checkpoint, or why there is none to
// trust (the file is missing, unreadable or not understood).
func (s *Store) readCheckpoint() (checkpointState, error) {
	f, err := os.Open(s.checkpointFile())
	if err != nil {
		return checkpointState{}, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxCheckpointBytes+1))
	if err != nil {
		return checkpointState{}, err
	}
	return parseCheckpoint(b)
}

// fsNow reads the file system's clock: the change time a change made now
// gets. It is read from the file system, not time.Now, because object
// change times come from there, at its granularity (often a 4 ms kernel
// tick, a whole second on some file systems).
func (s *Store) fsNow() (time.Time, error) {
	name := filepath.Join(s.tmpDir(), "clock")
	if err := os.Chmod(name, 0o600); errors.Is(err, fs.ErrNotExist) {
		f, cerr := os.OpenFile(name, os.O_CREATE|os.O_WRONLY, 0o600)
		if cerr != nil {
			return time.Time{}, cerr
		}
		f.Close()
	} else if err != nil {
		return time.Time{}, err
	}
	fi, err := os.Stat(name)
	if err != nil {
		return time.Time{}, err
	}
	return changeTime(fi), nil
}

// fsTick returns the first reading of the file system's clock later than
// its reading at the call. Every object changed before the call then has
// a change time before the result, and every change after the return one
// at or after it: no object is left on the boundary, so a checkpoint
// taken right after a write does not re-hash that write. It gives up
// after about two seconds (a clock that does not move) and returns the
// first reading, which is still a correct checkpoint, only a less sharp one.
func (s *Store) fsTick() (time.Time, error) {
	first, err := s.fsNow()
	if err != nil {
		return time.Time{}, err
	}
	for range 2000 {
		// A file system clock ticks in milliseconds at most; there is
		// nothing to wait on but the clock itself.
		time.Sleep(time.Millisecond)
		t, err := s.fsNow()
		if err != nil {
			return time.Time{}, err
		}
		if t.After(first) {
			return t, nil
		}
	}
	return first, nil
}

// checkpoint records that every object file changed before now has been
// verified, if that is so (nothing is pending); otherwise it keeps the
// previous checkpoint, so that what is pending is still re-hashed after a
// crash. clean marks a shutdown.
func (s *Store) checkpoint(clean bool) error {
	if s.readOnly {
		return nil
	}
	s.ckMu.Lock()
	defer s.ckMu.Unlock()
	at, err := s.fsTick()
	if err != nil {
		return fmt.Errorf("read the file system clock: %w", err)
	}
	s.mu.RLock()
	pending := len(s.pending)
	s.mu.RUnlock()
	next := checkpointState{Version: checkpointVersion, Clean: clean, Checkpoint: s.ck.Checkpoint}
	if pending == 0 {
		next.Checkpoint = at
	}
	f, err := atomicfile.CreateTemp(s.tmpDir(), "checkpoint-*")
	if err != nil {
		return err
	}
	defer f.Abort()
	if _, err := f.Write(next.marshal()); err != nil {
		return err
	}
	// An unsynced directory may bring back the previous, older
	// checkpoint after a crash: more re-hashing, never less.
	if err := f.Commit(s.checkpointFile()); err != nil && !errors.Is(err, atomicfile.ErrDirSync) {
		return err
	}
	s.ck = next
	s.checkpointAt.Store(unixNano(next.Checkpoint))
	return nil
}

// Close records a clean shutdown: a final checkpoint. Call it when done
// with a store that was written to (Run does it when it returns). The
// store stays usable; anything written after Close is simply re-hashed at
// the next Open.
func (s *Store) Close() error {
	return s.checkpoint(true)
}

// Run keeps the store trustworthy until ctx ends: it verifies the objects
// Open left pending, as fast as the disk allows; records a checkpoint
// every CheckpointInterval; scrubs at scrubRate bytes per second (0 means
// DefaultScrubRate, ScrubOff or any negative rate turns the scrubber off),
// yielding while busy says so (see Scrub); and on return records a clean
// shutdown. It returns nil when ctx ends.
func (s *Store) Run(ctx context.Context, scrubRate int64, busy func() bool) error {
	if s.readOnly {
		return ErrReadOnly
	}
	if scrubRate == 0 {
		scrubRate = DefaultScrubRate
	}
	var wg sync.WaitGroup
	if scrubRate > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.Scrub(ctx, scrubRate, busy) // returns when ctx ends
		}()
	}
	// Verification and checkpoints share this goroutine, so a checkpoint
	// is taken as soon as what was pending is done.
	for ctx.Err() == nil {
		if s.Pending() > 0 {
			if _, err := s.VerifyPending(ctx); err != nil {
				break
			}
		}
		if err := s.checkpoint(false); err != nil {
			s.log.Error("store checkpoint failed; a crash now re-hashes more", "err", err)
		}
		if clock.Sleep(ctx, CheckpointInterval) != nil {
			break
		}
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		s.log.Error("recording clean shutdown failed; the next start re-hashes what changed since the last checkpoint", "err", err)
	}
	return nil
}
