package probe

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ocdn/ocdn/internal/cpclient"
	"github.com/ocdn/ocdn/internal/measure"
)

// RejectedDir is the spool subdirectory for reports the server refused as
// invalid; they are kept for inspection and never retried.
const RejectedDir = "rejected"

// Spool writes r to dir as <id>.json, atomically (temporary file, fsync,
// rename, fsync of the directory), so that a crash leaves either the
// whole report or nothing. Spooling the same report twice leaves one file.
func Spool(dir string, r *measure.Report) (string, error) {
	if !validID(r.ID) {
		return "", fmt.Errorf("spool: report id %q is not usable as a file name", r.ID)
	}
	b, err := json.Marshal(r)
	if err != nil {
		return "", fmt.Errorf("spool: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("spool: %w", err)
	}
	path := filepath.Join(dir, r.ID+".json")
	if err := writeAtomic(path, b); err != nil {
		return "", fmt.Errorf("spool: %w", err)
	}
	return path, nil
}

func validID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func writeAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Uploader delivers spooled reports to the control plane's POST
// /v1/reports through Control, whose replicas it fails over between (a
// report that one replica could not take goes to the next at once), or to
// an explicit URL. A 2xx answer deletes the report; 400, 413 or 422 moves
// it to Dir/rejected with the reason beside it, never to be retried;
// anything else (429, 5xx from every replica, connection errors) keeps it
// for a later attempt.
//
// Report ids are the ingest's deduplication key: a report uploaded twice
// (the answer lost after the server stored it) is answered 200 with
// "duplicate": true by a server that has it, and the uploader deletes it
// as delivered. That holds within one ingest store; replicas that keep
// separate stores would each store a report whose first answer was lost.
//
// The zero value of the optional fields is usable. An Uploader is safe
// for concurrent use; Flush calls are serialised.
type Uploader struct {
	Dir string
	// Control reaches the control plane's replicas; used unless a URL is
	// set here or by UseRecipe.
	Control *cpclient.Client
	// URL, when set, is where every report goes (POST), overriding the
	// control plane and recipes: an operator's explicit collector.
	URL string
	// Client sends to URL and to a recipe's report URL (nil means
	// http.DefaultClient); requests to Control use its own client.
	Client *http.Client
	Logger *slog.Logger
	// MinBackoff and MaxBackoff bound the wait after a failed attempt; it
	// doubles per consecutive failure, with jitter (default 1 s and 5 min).
	MinBackoff, MaxBackoff time.Duration
	// Interval is how often Run looks at the spool when nothing kicks it
	// (default 30 s).
	Interval time.Duration

	flushMu   sync.Mutex
	once      sync.Once
	kick      chan struct{}
	recipeURL atomic.Pointer[string]
}

// UseRecipe makes later uploads go where rec says (its ReportURL), or to
// the control plane when it names no URL; an explicit URL still wins. The
// latest recipe decides, since the control plane may move its collector.
func (u *Uploader) UseRecipe(rec *Recipe) {
	s := rec.ReportURL
	u.recipeURL.Store(&s)
}

// destination is the URL reports go to, or "" for the control plane.
func (u *Uploader) destination() string {
	if u.URL != "" {
		return u.URL
	}
	if s := u.recipeURL.Load(); s != nil {
		return *s
	}
	return ""
}

var jsonHeader = http.Header{"Content-Type": {"application/json"}}

// post sends one report to its destination. For the control plane a 5xx
// or an unreachable replica has been retried on the others already; what
// comes back is a 2xx–4xx answer or an error.
func (u *Uploader) post(ctx context.Context, body []byte) (*http.Response, error) {
	dest := u.destination()
	if dest == "" {
		return u.Control.Do(ctx, http.MethodPost, "/v1/reports", body, jsonHeader)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, dest, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("upload to %s: %w", dest, err)
	}
	req.Header.Set("Content-Type", "application/json")
	client := u.Client
	if client == nil {
		client = http.DefaultClient
	}
	return client.Do(req)
}

// ErrRetryLater wraps the reason a Flush stopped with reports left in the
// spool.
var ErrRetryLater = errors.New("upload failed; reports kept for retry")

// retryAfterError carries a server's Retry-After.
type retryAfterError struct {
	after time.Duration
	msg   string
}

func (e *retryAfterError) Error() string { return e.msg }
func (e *retryAfterError) Unwrap() error { return ErrRetryLater }

func (u *Uploader) init() {
	u.once.Do(func() {
		u.kick = make(chan struct{}, 1)
		if u.Logger == nil {
			u.Logger = slog.New(slog.DiscardHandler)
		}
		if u.MinBackoff <= 0 {
			u.MinBackoff = time.Second
		}
		if u.MaxBackoff <= 0 {
			u.MaxBackoff = 5 * time.Minute
		}
		if u.Interval <= 0 {
			u.Interval = 30 * time.Second
		}
	})
}

// Kick makes Run flush now rather than at its next interval; it never
// blocks. Call it after spooling a report.
func (u *Uploader) Kick() {
	u.init()
	select {
	case u.kick <- struct{}{}:
	default:
	}
}

// Pending lists the ids of reports waiting in the spool, oldest name
// first.
func (u *Uploader) Pending() ([]string, error) {
	ents, err := os.ReadDir(u.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range ents {
		if id, ok := strings.CutSuffix(e.Name(), ".json"); ok && e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// Flush tries every spooled report once, in name order. It stops at the
// first retryable failure, returning an error wrapping ErrRetryLater, so
// that a down control plane costs one attempt (one request per replica),
// not one per report.
func (u *Uploader) Flush(ctx context.Context) error {
	u.init()
	u.flushMu.Lock()
	defer u.flushMu.Unlock()
	if u.Control == nil && u.destination() == "" {
		return errors.New("upload: the uploader has neither Control nor URL")
	}
	ids, err := u.Pending()
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := u.upload(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

func (u *Uploader) upload(ctx context.Context, id string) error {
	path := filepath.Join(u.Dir, id+".json")
	body, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil // delivered by a concurrent Flush
	}
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if !json.Valid(body) {
		return u.reject(id, "spool file is not valid JSON")
	}
	resp, err := u.post(ctx, body)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrRetryLater, err)
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("spool: %w", err)
		}
		u.Logger.Debug("report uploaded", "id", id)
		return nil
	case resp.StatusCode == http.StatusBadRequest, resp.StatusCode == http.StatusRequestEntityTooLarge,
		resp.StatusCode == http.StatusUnprocessableEntity:
		return u.reject(id, fmt.Sprintf("%s: %s", resp.Status, bytes.TrimSpace(msg)))
	}
	err = fmt.Errorf("%w: %s: %s", ErrRetryLater, resp.Status, bytes.TrimSpace(msg))
	if s, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil && s > 0 {
		return &retryAfterError{after: time.Duration(s) * time.Second, msg: err.Error()}
	}
	return err
}

// reject moves a report the server will never accept out of the way,
// with the reason in <id>.reason beside it.
func (u *Uploader) reject(id, reason string) error {
	rdir := filepath.Join(u.Dir, RejectedDir)
	if err := os.MkdirAll(rdir, 0o755); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if err := writeAtomic(filepath.Join(rdir, id+".reason"), []byte(reason+"\n")); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if err := os.Rename(filepath.Join(u.Dir, id+".json"), filepath.Join(rdir, id+".json")); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	u.Logger.Warn("report rejected by the server; kept in the spool's rejected directory", "id", id, "reason", reason)
	return syncDir(u.Dir)
}

// Run flushes the spool at every Interval and whenever Kick is called,
// backing off exponentially with jitter after failures (a server's
// Retry-After is honoured, within MaxBackoff). It returns when ctx ends.
func (u *Uploader) Run(ctx context.Context) error {
	u.init()
	failures := 0
	for {
		wait := u.Interval
		err := u.Flush(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			failures++
			wait = u.backoff(failures)
			var ra *retryAfterError
			if errors.As(err, &ra) {
				wait = min(max(wait, ra.after), u.MaxBackoff)
			}
			u.Logger.Info("report upload failed; will retry", "err", err, "in", wait.Round(time.Millisecond), "failures", failures)
		} else {
			failures = 0
		}
		// While backing off, a kick (a new report) does not make a down
		// server come back; it stays pending for the next attempt.
		kick := u.kick
		if failures > 0 {
			kick = nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		case <-kick:
			t.Stop()
		}
	}
}

// backoff is MinBackoff·2^(n-1) capped at MaxBackoff, with "equal
// jitter": uniformly between half of that and all of it, so that clients
// that failed together do not retry together.
func (u *Uploader) backoff(n int) time.Duration {
	d := u.MaxBackoff
	if n < 40 {
		d = min(u.MinBackoff<<(n-1), u.MaxBackoff)
	}
	if d <= 0 {
		d = u.MaxBackoff
	}
	return d/2 + rand.N(d/2+1)
}
