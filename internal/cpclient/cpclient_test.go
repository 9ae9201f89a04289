package cpclient

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// replica is a test control plane that counts requests and answers with
// status (200 echoes the request body as JSON).
type replica struct {
	srv    *httptest.Server
	status atomic.Int32
	hits   atomic.Int32
	auth   atomic.Value // last Authorization header
}

func newReplica(t *testing.T) *replica {
	r := &replica{}
	r.status.Store(200)
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.hits.Add(1)
		r.auth.Store(req.Header.Get("Authorization"))
		body, _ := io.ReadAll(req.Body)
		code := int(r.status.Load())
		if code != 200 {
			http.Error(w, "nope", code)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if len(body) == 0 {
			body = []byte(`{"ok":1}`)
		}
		w.Write(body)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func TestFailsOverAndSticks(t *testing.T) {
	a, b := newReplica(t), newReplica(t)
	c := Must([]string{a.srv.URL, b.srv.URL + "/"}, nil, "tok")
	ctx := context.Background()
	var out map[string]int
	if err := c.PostJSON(ctx, "/v1/x", map[string]int{"n": 1}, &out); err != nil || out["n"] != 1 {
		t.Fatalf("PostJSON = %v, %v; want n=1", out, err)
	}
	if a.hits.Load() != 1 || b.hits.Load() != 0 {
		t.Fatalf("hits a=%d b=%d, want 1 0", a.hits.Load(), b.hits.Load())
	}
	// a fails with 503: the same body goes to b, and b keeps the traffic.
	a.status.Store(503)
	if err := c.PostJSON(ctx, "/v1/x", map[string]int{"n": 2}, &out); err != nil || out["n"] != 2 {
		t.Fatalf("PostJSON after a's 503 = %v, %v; want n=2 from b", out, err)
	}
	if c.Current() != b.srv.URL {
		t.Fatalf("Current() = %s, want %s", c.Current(), b.srv.URL)
	}
	a.status.Store(200)
	if err := c.GetJSON(ctx, "/v1/y", &out); err != nil {
		t.Fatal(err)
	}
	if a.hits.Load() != 2 || b.hits.Load() != 2 {
		t.Fatalf("hits a=%d b=%d, want 2 2 (sticky to b)", a.hits.Load(), b.hits.Load())
	}
	if got := b.auth.Load(); got != "Bearer tok" {
		t.Fatalf("Authorization = %v, want Bearer tok", got)
	}
	// A closed replica (connection refused) is skipped as well.
	b.srv.Close()
	if err := c.GetJSON(ctx, "/v1/y", &out); err != nil {
		t.Fatalf("GetJSON with b closed: %v", err)
	}
	if c.Current() != a.srv.URL {
		t.Fatalf("Current() = %s, want %s", c.Current(), a.srv.URL)
	}
}

func TestClientErrorIsAnAnswer(t *testing.T) {
	a, b := newReplica(t), newReplica(t)
	a.status.Store(404)
	c := Must([]string{a.srv.URL, b.srv.URL}, nil, "")
	err := c.GetJSON(context.Background(), "/v1/missing", nil)
	var se *StatusError
	if !errors.As(err, &se) || se.Code != 404 || IsUnavailable(err) {
		t.Fatalf("GetJSON = %v, want a 404 StatusError that is not unavailability", err)
	}
	if b.hits.Load() != 0 {
		t.Fatalf("a 404 was retried on another replica (%d hits)", b.hits.Load())
	}
}

func TestAllDown(t *testing.T) {
	a, b := newReplica(t), newReplica(t)
	a.status.Store(500)
	b.srv.Close()
	c := Must([]string{a.srv.URL, b.srv.URL}, nil, "")
	err := c.GetJSON(context.Background(), "/v1/y", nil)
	var ue *UnavailableError
	if !errors.As(err, &ue) || len(ue.Errs) != 2 {
		t.Fatalf("GetJSON = %v, want UnavailableError with 2 replica errors", err)
	}
	var se *StatusError
	if !errors.As(err, &se) || se.Code != 500 {
		t.Fatalf("errors.As(StatusError) on %v failed; want a's 500", err)
	}
}

func TestNewRejectsBadURLs(t *testing.T) {
	for _, urls := range [][]string{nil, {"ftp://x"}, {"http://"}, {"http://h:1/v1"}, {"10.0.0.1:80"}} {
		if _, err := New(urls, nil, ""); err == nil {
			t.Errorf("New(%q) = nil error, want one", urls)
		}
	}
}
