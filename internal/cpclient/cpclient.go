// Package cpclient provides the client side of the control plane's HTTP
// API as appliances, players and probes use it: a list of control-plane
// replicas (they share state through PostgreSQL, so any of them answers
// alike), requests sent to the replica that answered last, and failover to
// the next one when a replica cannot be reached or answers 5xx. A 4xx is
// the answer, not an outage: it is returned at once.
//
// Request bodies are bytes, so a request can be sent again to another
// replica; callers that need exactly-once effects (heartbeat sequence
// numbers, report ids) already make their requests idempotent.
package cpclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
)

// Client sends requests to one of several control-plane replicas.
type Client struct {
	urls  []string
	http  *http.Client
	token string
	// cur is the index of the replica that answered last; requests start
	// there, so a healthy replica keeps the traffic and a failed one is
	// tried again only after the others.
	cur atomic.Uint32
}

// New returns a client of the replicas at urls (http(s)://host:port, with
// or without a trailing slash). hc is used for every request (nil means
// http.DefaultClient); token, when set, is sent as a bearer credential to
// the replicas and nowhere else.
func New(urls []string, hc *http.Client, token string) (*Client, error) {
	if len(urls) == 0 {
		return nil, errors.New("cpclient: no control-plane URL")
	}
	c := &Client{http: hc, token: token}
	if c.http == nil {
		c.http = http.DefaultClient
	}
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return nil, fmt.Errorf("cpclient: %q is not a control-plane URL such as http://10.0.0.1:8080", raw)
		}
		c.urls = append(c.urls, strings.TrimSuffix(raw, "/"))
	}
	return c, nil
}

// Must is New for URLs known to be valid (tests and the lab).
func Must(urls []string, hc *http.Client, token string) *Client {
	c, err := New(urls, hc, token)
	if err != nil {
		panic(err)
	}
	return c
}

// URLs are the replicas' base URLs, in configured order.
func (c *Client) URLs() []string { return c.urls }

// Current is the base URL of the replica requests go to first.
func (c *Client) Current() string { return c.urls[int(c.cur.Load())%len(c.urls)] }

// StatusError is a replica's answer other than 2xx.
type StatusError struct {
	Method, Path string
	Code         int
	Msg          string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s %s: %d %s: %s", e.Method, e.Path, e.Code, http.StatusText(e.Code), e.Msg)
}

// UnavailableError says no replica answered: each was unreachable or
// answered 5xx. Errs holds one error per replica tried.
type UnavailableError struct{ Errs []error }

func (e *UnavailableError) Error() string {
	parts := make([]string, len(e.Errs))
	for i, err := range e.Errs {
		parts[i] = err.Error()
	}
	return "control plane unavailable: " + strings.Join(parts, "; ")
}

// Unwrap lets errors.Is and errors.As look at each replica's error.
func (e *UnavailableError) Unwrap() []error { return e.Errs }

// IsUnavailable reports whether err means no replica could answer, as
// opposed to one answering that the request is wrong.
func IsUnavailable(err error) bool {
	var ue *UnavailableError
	return errors.As(err, &ue)
}

// Do sends method path (with its query) to the replicas in turn, starting
// with the one that answered last, and returns the first response that is
// not a 5xx. On 2xx–4xx the caller owns the body. When every replica fails
// the error is an *UnavailableError; a context error ends the attempts.
func (c *Client) Do(ctx context.Context, method, path string, body []byte, header http.Header) (*http.Response, error) {
	start := int(c.cur.Load())
	var errs []error
	for i := range c.urls {
		k := (start + i) % len(c.urls)
		resp, err := c.once(ctx, c.urls[k], method, path, body, header)
		if err == nil && resp.StatusCode < 500 {
			c.cur.Store(uint32(k))
			return resp, nil
		}
		if err == nil {
			msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			resp.Body.Close()
			err = &StatusError{Method: method, Path: path, Code: resp.StatusCode, Msg: string(bytes.TrimSpace(msg))}
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		errs = append(errs, fmt.Errorf("%s: %w", c.urls[k], err))
	}
	return nil, &UnavailableError{Errs: errs}
}

func (c *Client) once(ctx context.Context, base, method, path string, body []byte, header http.Header) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return nil, err
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return c.http.Do(req)
}

// GetJSON decodes the JSON answer to GET path into out.
func (c *Client) GetJSON(ctx context.Context, path string, out any) error {
	return c.roundTrip(ctx, http.MethodGet, path, nil, out)
}

// PostJSON sends in as JSON to path and decodes the answer into out (nil
// discards it).
func (c *Client) PostJSON(ctx context.Context, path string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return c.roundTrip(ctx, http.MethodPost, path, body, out)
}

var jsonHeader = http.Header{"Content-Type": {"application/json"}}

func (c *Client) roundTrip(ctx context.Context, method, path string, body []byte, out any) error {
	var h http.Header
	if body != nil {
		h = jsonHeader
	}
	resp, err := c.Do(ctx, method, path, body, h)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return &StatusError{Method: method, Path: path, Code: resp.StatusCode, Msg: string(bytes.TrimSpace(msg))}
	}
	if out == nil {
		_, err := io.Copy(io.Discard, resp.Body)
		return err
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decoding the answer: %w", method, path, err)
	}
	return nil
}
