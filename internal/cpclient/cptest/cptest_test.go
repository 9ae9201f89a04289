package cptest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/ocdn/ocdn/internal/api"
	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/measure"
	"github.com/ocdn/ocdn/internal/steer"
)

func TestKillAfterAnswersThenRefuses(t *testing.T) {
	cat, err := content.Synth(content.SynthSpec{Titles: 1, LadderKbps: []int{400}, Duration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	title := cat.Titles()[0]
	p := New(t, Config{Replicas: 1, Catalog: cat, Steer: func(call int, file string) []steer.Choice {
		return []steer.Choice{{URL: "http://127.1.0.1/c/x/" + file, Appliance: "a1"}, {URL: "http://127.1.0.2/c/x/" + file, Appliance: "a2"}}
	}})
	r := p.Replica(0)
	r.KillAfter(2)
	get := func(path string) (*http.Response, error) { return http.Get(r.URL + path) }

	resp, err := get("/v1/titles/" + title)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("title = %v, %v; want 200", resp, err)
	}
	resp.Body.Close()
	resp, err = get("/v1/steer?files=" + title + "/video_400k.mp4&n=1")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("steer (the last answer before dying) = %v, %v; want 200", resp, err)
	}
	resp.Body.Close()
	// A fresh connection is refused now.
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	if _, err := c.Get(r.URL + "/v1/titles/" + title); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("request to the dead replica = %v, want connection refused", err)
	}
	// The kept-alive connection is cut.
	if resp, err := get("/v1/titles/" + title); err == nil {
		resp.Body.Close()
		t.Errorf("request on a connection to the dead replica answered %s", resp.Status)
	}
	if r.Hits("/v1/titles/"+title) != 1 || p.SteerCalls() != 1 {
		t.Errorf("hits: title %d, steering %d; want 1 and 1 (a dead replica sees nothing)", r.Hits("/v1/titles/"+title), p.SteerCalls())
	}
}

func TestSteerCutToN(t *testing.T) {
	p := New(t, Config{Replicas: 1, Steer: func(call int, file string) []steer.Choice {
		return []steer.Choice{{Appliance: "a1"}, {Appliance: "a2"}, {Appliance: "a3"}}
	}})
	resp, err := http.Get(p.Replica(0).URL + "/v1/steer?files=t/a,t/b&n=2")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sr api.SteerResponse
	if err := decode(resp, &sr); err != nil {
		t.Fatal(err)
	}
	if len(sr.Files) != 2 || len(sr.Files[0].URLs) != 2 || sr.Files[1].Path != "t/b" || sr.Client != "127.0.0.1" {
		t.Errorf("steer answer = %+v, want two files with two choices each, for client 127.0.0.1", sr)
	}
}

func TestDropStoresWithoutAnswering(t *testing.T) {
	p := New(t, Config{})
	a, b := p.Replica(0), p.Replica(1)
	a.Fail(1, Drop)
	b.Fail(1, http.StatusServiceUnavailable)
	rep := &measure.Report{ID: "0123456789abcdef0123456789abcdef", Recipe: "r", ClientTime: time.Now(),
		Pulses: []measure.Pulse{{Target: "t", Type: measure.TypeTCPConnect, Start: time.Now(), Status: measure.StatusOK, ConnectMs: 1}}}
	post := func(r *Replica) (*http.Response, error) {
		body, _ := jsonBody(rep)
		return http.Post(r.URL+"/v1/reports", "application/json", body)
	}
	if resp, err := post(a); err == nil {
		resp.Body.Close()
		t.Fatalf("dropped upload answered %s", resp.Status)
	}
	// The report was stored before the connection was cut.
	select {
	case id := <-p.Stored:
		if id != rep.ID {
			t.Errorf("stored %s, want %s", id, rep.ID)
		}
	default:
		t.Error("the dropped upload was not stored")
	}
	resp, err := post(b)
	if err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("upload to a replica failing with 503 = %v, %v", resp, err)
	}
	resp.Body.Close()
	resp, err = post(b)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("upload after the injected failures = %v, %v; want 200", resp, err)
	}
	var ack measure.AcceptResponse
	if err := decode(resp, &ack); err != nil || !ack.Duplicate {
		t.Errorf("re-upload answer = %+v (%v), want a duplicate", ack, err)
	}
	uploads, stored := p.Reports()
	if uploads[rep.ID] != 2 || stored[rep.ID] != 1 {
		t.Errorf("uploads %d stored %d, want 2 (the 503 never reached the ingester) and 1", uploads[rep.ID], stored[rep.ID])
	}
}

func jsonBody(v any) (io.Reader, error) {
	b, err := json.Marshal(v)
	return bytes.NewReader(b), err
}

func decode(resp *http.Response, out any) error {
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(out)
}
