package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// verdictMissing is the verdict on an object whose file is gone.
const verdictMissing = "file missing"

// verdict is what one check of one object found.
type verdict struct {
	// bad says why the object is corrupt ("" when it is not known to be).
	bad string
	// unread says why the object could not be checked (permissions, for
	// one): not evidence of corruption, so nothing is quarantined for it.
	unread string
	// file identifies the file that was read, so that acting on the
	// verdict touches only that file and never a good copy published over
	// it meanwhile; nil when no file was opened.
	file os.FileInfo
}

// checkObject hashes the file name against e: its size, then its SHA-256.
// It is the one check behind every verdict the store gives (Open, Run,
// the scrubber and Verify, hence `ocdn store verify`), so they all agree.
// p paces the reads (nil: as fast as the disk allows); count, if set, is
// told of every byte read. The error is non-nil only when ctx ended.
func checkObject(ctx context.Context, name string, e Entry, p *pacer, count func(int)) (verdict, error) {
	f, err := os.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return verdict{bad: verdictMissing}, nil
	}
	if err != nil {
		return verdict{unread: err.Error()}, nil
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return verdict{unread: err.Error()}, nil
	}
	// A size that differs needs no hashing to condemn the object.
	if fi.Size() != e.Size {
		return verdict{bad: sizeVerdict(fi.Size(), e.Size), file: fi}, nil
	}
	chunk := int64(1 << 20)
	if p != nil {
		chunk = int64(p.chunk)
	}
	h := sha256.New()
	// No bigger than the object (and one byte to see it end): most
	// objects are far smaller than a chunk, and zeroing a chunk per
	// object was most of the cost of re-hashing many small ones.
	buf := make([]byte, min(chunk, e.Size+1))
	var n int64
	for {
		if p != nil {
			if err := p.wait(ctx, len(buf)); err != nil {
				return verdict{}, err
			}
		} else if err := ctx.Err(); err != nil {
			return verdict{}, err
		}
		m, rerr := f.Read(buf)
		h.Write(buf[:m])
		n += int64(m)
		if count != nil {
			count(m)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return verdict{bad: "read error: " + rerr.Error(), file: fi}, nil
		}
	}
	switch sum := hex.EncodeToString(h.Sum(nil)); {
	case n != e.Size: // changed size while being read
		return verdict{bad: sizeVerdict(n, e.Size), file: fi}, nil
	case sum != e.SHA256:
		return verdict{bad: fmt.Sprintf("sha256 %s, want %s", sum, e.SHA256), file: fi}, nil
	}
	return verdict{file: fi}, nil
}

// VerifyPending re-hashes, as fast as the disk allows, every object that
// waits for verification, taking first those clients asked for. Objects
// that pass are served from then on; those that fail are quarantined and
// returned. An object that cannot be read stays pending, for a later call
// to retry. It returns ctx's error if ctx ends first.
func (s *Store) VerifyPending(ctx context.Context) ([]Problem, error) {
	if s.readOnly {
		return nil, ErrReadOnly
	}
	todo := s.pendingList()
	tried := make(map[string]bool, len(todo))
	var bad []Problem
	for {
		e, ok := s.nextPending(&todo, tried)
		if !ok {
			return bad, nil
		}
		tried[e.Path] = true
		p, err := s.verifyOne(ctx, e)
		if err != nil {
			return bad, err
		}
		if p != nil {
			bad = append(bad, *p)
		}
	}
}

// nextPending picks what to verify next: a pending object a client asked
// for, else the next of todo still pending.
func (s *Store) nextPending(todo *[]Entry, tried map[string]bool) (Entry, bool) {
	for {
		select {
		case path := <-s.urgent:
			s.mu.RLock()
			e, ok := s.pending[path]
			s.mu.RUnlock()
			if ok && !tried[path] {
				return e, true
			}
			continue
		default:
		}
		break
	}
	for len(*todo) > 0 {
		e := (*todo)[0]
		*todo = (*todo)[1:]
		if tried[e.Path] {
			continue
		}
		s.mu.RLock()
		cur, ok := s.pending[e.Path]
		s.mu.RUnlock()
		if ok && cur == e {
			return e, true
		}
	}
	return Entry{}, false
}

// verifyOne checks a pending object and promotes or quarantines it. It
// returns the problem if the object was quarantined.
func (s *Store) verifyOne(ctx context.Context, e Entry) (*Problem, error) {
	v, err := checkObject(ctx, s.objectFile(e), e, nil, nil)
	if err != nil {
		return nil, err
	}
	switch {
	case v.bad != "":
		if s.quarantine(e, v.file, v.bad) {
			return &Problem{Path: e.Path, Reason: v.bad}, nil
		}
	case v.unread != "":
		s.log.Error("cannot verify object; it stays unserved", "path", e.Path, "err", v.unread)
	default:
		s.promote(e, v.file)
	}
	return nil, nil
}

// promote makes a pending object that passed verification servable,
// unless it changed meanwhile.
func (s *Store) promote(e Entry, checked os.FileInfo) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.pending[e.Path]; !ok || cur != e {
		return
	}
	if now, err := os.Stat(s.objectFile(e)); err != nil || !os.SameFile(now, checked) {
		return // replaced behind the store's back: still pending
	}
	delete(s.pending, e.Path)
	s.index[e.Path] = e
	s.gen++
}
