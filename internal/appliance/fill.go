package appliance

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ocdn/ocdn/internal/api"
	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/store"
)

// fillLoop keeps the store equal to the manifest: it downloads what is
// missing, then removes what is no longer listed, so serving never has a
// gap.
func (a *Appliance) fillLoop(ctx context.Context) {
	for {
		if err := a.fillOnce(ctx); err != nil && ctx.Err() == nil {
			a.log.Warn("fill pass incomplete", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * a.cfg.HeartbeatInterval):
		}
	}
}

func (a *Appliance) fillOnce(ctx context.Context) error {
	var m api.Manifest
	if err := a.get(ctx, a.cfg.ControlURL+"/v1/manifest?appliance="+url.QueryEscape(a.cfg.ID), &m); err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	want := map[string]bool{}
	var todo []content.File
	for _, f := range m.Files {
		want[f.Path] = true
		if e, ok := a.store.Lookup(f.Path); !ok || e.SHA256 != f.SHA256 {
			todo = append(todo, f)
		}
	}
	sem := make(chan struct{}, a.cfg.FillConcurrency)
	var wg sync.WaitGroup
	var failed atomic.Int32
	for _, f := range todo {
		select {
		case <-ctx.Done():
		case sem <- struct{}{}:
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				if err := a.fetch(ctx, m.Origin, f); err != nil {
					failed.Add(1)
					if ctx.Err() == nil {
						a.log.Warn("fill file failed", "path", f.Path, "err", err)
					}
				}
			}()
		}
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		return fmt.Errorf("%d of %d files failed", n, len(todo))
	}
	for _, e := range a.store.List() {
		if !want[e.Path] {
			a.store.Remove(e.Path)
		}
	}
	return ctx.Err()
}

func (a *Appliance) fetch(ctx context.Context, origin string, f content.File) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, origin+"/o/"+f.Path, nil)
	if err != nil {
		return err
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("origin answered %s", resp.Status)
	}
	err = a.store.Put(ctx, f, resp.Body)
	a.fillMu.Lock()
	defer a.fillMu.Unlock()
	switch {
	case err == nil:
		a.filesVerified++
		a.filledBytes += f.Size
	case errors.Is(err, store.ErrHashMismatch), errors.Is(err, store.ErrSizeMismatch):
		a.filesRejected++
	}
	return err
}

// FillStats is what fill has done so far.
type FillStats struct {
	Bytes         int64 `json:"bytes"`
	FilesVerified int   `json:"files_verified"`
	FilesRejected int   `json:"files_rejected"`
}

// Fill reports fill counters.
func (a *Appliance) Fill() FillStats {
	a.fillMu.Lock()
	defer a.fillMu.Unlock()
	return FillStats{Bytes: a.filledBytes, FilesVerified: a.filesVerified, FilesRejected: a.filesRejected}
}
