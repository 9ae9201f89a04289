package control

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

func steerAppliances(t *testing.T, s *Server, file string) []string {
	t.Helper()
	w := do(t, s.Handler(), "GET", "/v1/steer?files="+file+"&n=5", "", "10.64.3.4:5555", "")
	var resp struct {
		Files []struct {
			URLs []struct{ Appliance string } `json:"urls"`
		} `json:"files"`
	}
	json.Unmarshal(w.Body.Bytes(), &resp)
	var out []string
	for _, u := range resp.Files[0].URLs {
		out = append(out, u.Appliance)
	}
	return out
}

func statusOf(s *Server, id string) ApplianceStatus {
	for _, st := range s.Appliances() {
		if st.ID == id {
			return st
		}
	}
	return ApplianceStatus{}
}

func TestDrainStopsNewClientsUntilTransfersFinish(t *testing.T) {
	s, c, cat := newTestServer(t)
	h := s.Handler()
	file := cat.Files[0].Path
	hb := func(id string, conns int) {
		body := fmt.Sprintf(`{"appliance":%q,"content_gen":1,"held":[%q],"load":{"connections":%d}}`, id, file, conns)
		if w := do(t, h, "POST", "/v1/heartbeat", body, "127.1.0.1:5000", ""); w.Code != 200 {
			t.Fatalf("heartbeat: %d %s", w.Code, w.Body)
		}
	}
	hb("x1", 2)
	hb("e1", 0)
	if got := steerAppliances(t, s, file); !strings.Contains(strings.Join(got, ","), "x1") {
		t.Fatalf("before drain: steering = %v, want x1 among them", got)
	}
	if w := do(t, h, "POST", "/v1/admin/drain", `{"appliance":"x1"}`, "127.0.0.1:1", ""); w.Code != 401 {
		t.Errorf("drain without a token = %d, want 401", w.Code)
	}
	if w := do(t, h, "POST", "/v1/admin/drain", `{"appliance":"x1","reason":"disk swap"}`, "127.0.0.1:1", "sekret"); w.Code != 200 {
		t.Fatalf("drain = %d %s", w.Code, w.Body)
	}
	if got := steerAppliances(t, s, file); strings.Contains(strings.Join(got, ","), "x1") {
		t.Errorf("after drain: steering = %v, want no x1", got)
	}
	if st := statusOf(s, "x1"); st.State != "draining" || st.Serving {
		t.Errorf("e1 with 2 transfers = %+v, want draining", st)
	}
	hb("x1", 0)
	if st := statusOf(s, "x1"); st.State != "drained" {
		t.Errorf("e1 with no transfers = %+v, want drained", st)
	}
	if w := do(t, h, "POST", "/v1/admin/enable", `{"appliance":"x1"}`, "127.0.0.1:1", "sekret"); w.Code != 200 {
		t.Fatalf("enable = %d %s", w.Code, w.Body)
	}
	if st := statusOf(s, "x1"); st.State != "up" || !st.Serving {
		t.Errorf("after enable: %+v, want up", st)
	}

	// A scheduled window for a whole site.
	at := c.t.Add(time.Minute)
	body := fmt.Sprintf(`{"site":"ix","at":%q,"until":%q}`, at.Format(time.RFC3339), at.Add(time.Hour).Format(time.RFC3339))
	if w := do(t, h, "POST", "/v1/admin/drain", body, "127.0.0.1:1", "sekret"); w.Code != 200 {
		t.Fatalf("scheduled drain = %d %s", w.Code, w.Body)
	}
	if st := statusOf(s, "x1"); st.State != "up" {
		t.Errorf("before the window: %+v, want up", st)
	}
	c.t = at.Add(time.Second)
	hb("x1", 1)
	hb("e1", 0)
	if st := statusOf(s, "x1"); st.State != "draining" {
		t.Errorf("inside the window: %+v, want draining", st)
	}
	for _, bad := range []string{`{}`, `{"appliance":"zz"}`, `{"site":"nowhere"}`, `{"appliance":"x1","site":"emb"}`} {
		if w := do(t, h, "POST", "/v1/admin/drain", bad, "127.0.0.1:1", "sekret"); w.Code != 400 {
			t.Errorf("drain %s = %d, want 400", bad, w.Code)
		}
	}
}

func TestEnableRefusedWhenTurnUpFails(t *testing.T) {
	s, _, cat := newTestServer(t)
	s.cfg.TurnUp = &TurnUp{FillShare: 1, SkipDownload: true}
	h := s.Handler()
	body := fmt.Sprintf(`{"appliance":"e1","content_gen":1,"held":[%q]}`, cat.Files[0].Path)
	do(t, h, "POST", "/v1/heartbeat", body, "127.1.0.1:5000", "")
	st := s.Appliances()[0]
	if st.Serving || !strings.Contains(st.Reason, "turn-up") {
		t.Errorf("new appliance before turn-up = %+v, want not serving, reason turn-up", st)
	}
	do(t, h, "POST", "/v1/admin/drain", `{"appliance":"e1"}`, "127.0.0.1:1", "sekret")
	w := do(t, h, "POST", "/v1/admin/enable", `{"appliance":"e1"}`, "127.0.0.1:1", "sekret")
	if w.Code != 409 || !strings.Contains(w.Body.String(), "manifest 1 of") {
		t.Errorf("enable of a half-filled appliance = %d %q, want 409 naming the fill share", w.Code, w.Body)
	}
	var all []string
	for _, f := range cat.Files {
		all = append(all, f.Path)
	}
	b, _ := json.Marshal(all)
	do(t, h, "POST", "/v1/heartbeat", `{"appliance":"e1","content_gen":2,"held":`+string(b)+`}`, "127.1.0.1:5000", "")
	if w := do(t, h, "POST", "/v1/admin/enable", `{"appliance":"e1"}`, "127.0.0.1:1", "sekret"); w.Code != 200 {
		t.Errorf("enable of a filled appliance = %d %s, want 200", w.Code, w.Body)
	}
}
