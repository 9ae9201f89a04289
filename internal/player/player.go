// Package player provides a playback client that behaves like a video
// player: it asks steering for a title's files, fetches segments as byte
// ranges against a playback clock with a bounded buffer, fails over down
// the ranked URL list on error or timeout, re-steers when the list is
// exhausted, and records what the viewer experienced.
package player

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"sort"
	"time"

	"github.com/ocdn/ocdn/internal/api"
	"github.com/ocdn/ocdn/internal/content"
)

// Config wires a player.
type Config struct {
	ControlURL string
	// Source is the client address to bind; zero lets the kernel choose.
	Source netip.Addr
	// SegmentDuration is the playback time one range request carries.
	SegmentDuration time.Duration
	// MaxBuffer is how far ahead of playback the player downloads.
	MaxBuffer time.Duration
	// RequestTimeout bounds one segment fetch; past it the player fails
	// over.
	RequestTimeout time.Duration
	// MaxBitrateKbps picks the highest video rung at or below it (0 = top).
	MaxBitrateKbps int
	// URLs is how many URLs to ask steering for.
	URLs int
	// Resteers bounds how often a session may ask steering again after
	// every URL failed.
	Resteers int
}

// Player plays sessions one after another; it is not safe for concurrent
// Play calls.
type Player struct {
	cfg    Config
	client *http.Client
}

// New returns a player with its own connection pool bound to Source.
func New(cfg Config) *Player {
	if cfg.SegmentDuration <= 0 {
		cfg.SegmentDuration = 2 * time.Second
	}
	if cfg.MaxBuffer <= 0 {
		cfg.MaxBuffer = 4 * cfg.SegmentDuration
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 3 * time.Second
	}
	if cfg.URLs <= 0 {
		cfg.URLs = 5
	}
	if cfg.Resteers <= 0 {
		cfg.Resteers = 2
	}
	d := &net.Dialer{Timeout: cfg.RequestTimeout}
	if cfg.Source.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: cfg.Source.AsSlice()}
	}
	tr := &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 4, IdleConnTimeout: 30 * time.Second}
	return &Player{cfg: cfg, client: &http.Client{Transport: tr}}
}

// Close releases idle connections.
func (p *Player) Close() { p.client.CloseIdleConnections() }

// Session is the QoE record of one playback.
type Session struct {
	Title       string           `json:"title"`
	File        string           `json:"file"`
	BitrateKbps int              `json:"bitrate_kbps"`
	Started     time.Time        `json:"started"`
	StartupMs   float64          `json:"startup_ms"`
	Rebuffers   int              `json:"rebuffers"`
	RebufferMs  float64          `json:"rebuffer_ms"`
	Failovers   int              `json:"failovers"`
	Resteers    int              `json:"resteers"`
	Bytes       int64            `json:"bytes"`
	ServedBy    map[string]int64 `json:"served_by"` // appliance → bytes
	Completed   bool             `json:"completed"`
	Error       string           `json:"error,omitempty"`
}

// ErrNoURLs means steering had nowhere to send the client.
var ErrNoURLs = errors.New("steering returned no URLs")

// Play streams one title to the end of its playback, or until ctx ends.
func (p *Player) Play(ctx context.Context, title string) (Session, error) {
	s := Session{Title: title, Started: time.Now(), ServedBy: map[string]int64{}}
	err := p.play(ctx, &s)
	if err != nil {
		s.Error = err.Error()
	}
	s.Completed = err == nil
	return s, err
}

func (p *Player) play(ctx context.Context, s *Session) error {
	var files []content.File
	if err := p.getJSON(ctx, p.cfg.ControlURL+"/v1/titles/"+url.PathEscape(s.Title), &files); err != nil {
		return fmt.Errorf("title: %w", err)
	}
	f, ok := p.pickRung(files)
	if !ok {
		return fmt.Errorf("title %s has no video file", s.Title)
	}
	s.File, s.BitrateKbps = f.Path, f.BitrateKbps
	urls, err := p.steer(ctx, f.Path)
	if err != nil {
		return err
	}
	segBytes := max(int64(f.BitrateKbps)*1000/8*int64(p.cfg.SegmentDuration/time.Millisecond)/1000, 1)
	segments := int((f.Size + segBytes - 1) / segBytes)

	// Playback clock: playStart is when the first segment arrived; time
	// spent stalled pushes every later deadline back.
	var playStart time.Time
	var stalled time.Duration
	cur := 0
	for k := 0; k < segments; k++ {
		if k > 0 {
			// Wait while the buffer is full, as a player would.
			ahead := time.Duration(k)*p.cfg.SegmentDuration - (time.Since(playStart) - stalled)
			if wait := ahead - p.cfg.MaxBuffer; wait > 0 {
				if err := sleepCtx(ctx, wait); err != nil {
					return err
				}
			}
		}
		off := int64(k) * segBytes
		end := min(off+segBytes, f.Size) - 1
		for {
			n, err := p.fetchRange(ctx, urls[cur].URL, off, end)
			if err == nil {
				s.Bytes += n
				s.ServedBy[urls[cur].Appliance] += n
				break
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			cur++
			s.Failovers++
			if cur == len(urls) {
				if s.Resteers == p.cfg.Resteers {
					return fmt.Errorf("segment %d: every URL failed, last: %w", k, err)
				}
				s.Resteers++
				if urls, err = p.steer(ctx, f.Path); err != nil {
					return err
				}
				cur = 0
			}
		}
		now := time.Now()
		if k == 0 {
			playStart = now
			s.StartupMs = float64(now.Sub(s.Started).Microseconds()) / 1000
			continue
		}
		// The segment was due when playback reached its start.
		due := playStart.Add(time.Duration(k)*p.cfg.SegmentDuration + stalled)
		if late := now.Sub(due); late > 0 {
			s.Rebuffers++
			s.RebufferMs += float64(late.Microseconds()) / 1000
			stalled += late
		}
	}
	// Play out what is buffered: the session ends when the viewer
	// reaches the end.
	end := playStart.Add(time.Duration(segments)*p.cfg.SegmentDuration + stalled)
	return sleepCtx(ctx, time.Until(end))
}

func (p *Player) pickRung(files []content.File) (content.File, bool) {
	var video []content.File
	for _, f := range files {
		if f.Kind == content.KindVideo && f.BitrateKbps > 0 {
			video = append(video, f)
		}
	}
	if len(video) == 0 {
		return content.File{}, false
	}
	sort.Slice(video, func(i, j int) bool { return video[i].BitrateKbps < video[j].BitrateKbps })
	best := video[0]
	for _, f := range video {
		if p.cfg.MaxBitrateKbps == 0 || f.BitrateKbps <= p.cfg.MaxBitrateKbps {
			best = f
		}
	}
	return best, true
}

func (p *Player) steer(ctx context.Context, path string) ([]steerURL, error) {
	var resp api.SteerResponse
	u := fmt.Sprintf("%s/v1/steer?files=%s&n=%d", p.cfg.ControlURL, url.QueryEscape(path), p.cfg.URLs)
	if err := p.getJSON(ctx, u, &resp); err != nil {
		return nil, fmt.Errorf("steer: %w", err)
	}
	if len(resp.Files) != 1 || len(resp.Files[0].URLs) == 0 {
		return nil, ErrNoURLs
	}
	out := make([]steerURL, len(resp.Files[0].URLs))
	for i, c := range resp.Files[0].URLs {
		out[i] = steerURL{URL: c.URL, Appliance: c.Appliance}
	}
	return out, nil
}

type steerURL struct{ URL, Appliance string }

// fetchRange downloads bytes off..end and fails unless exactly that range
// arrives within the request timeout.
func (p *Player) fetchRange(ctx context.Context, u string, off, end int64) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, end))
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent {
		return 0, fmt.Errorf("%s: %s", u, resp.Status)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		return n, err
	}
	if want := end - off + 1; n != want {
		return n, fmt.Errorf("%s: got %d of %d bytes", u, n, want)
	}
	return n, nil
}

func (p *Player) getJSON(ctx context.Context, u string, out any) error {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s: %s", resp.Status, msg)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
