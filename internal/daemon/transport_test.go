package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/ocdn/ocdn/internal/api"
	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/measure"
	"github.com/ocdn/ocdn/internal/store"
	"github.com/ocdn/ocdn/internal/urlsign"
)

// TestTransportRecordsReachTheStore runs a real control plane and a real
// appliance daemon on loopback with transport sampling at 1 and an
// experiment whose arms run BBR and Reno: a client of each arm fetches a
// file with the token the steering answer gave it, and the control
// plane's transport table ends up with the connection's final record,
// naming the arm and the congestion control the socket really ran, the
// client's /24 and the file. A batch with impossible values is refused
// naming the field.
func TestTransportRecordsReachTheStore(t *testing.T) {
	appLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { appLn.Close() }) // after the appliance that serves it has stopped
	dir, y := deployment(t, "127.0.0.1:0", `measure: {dir: measure}
steering: {experiment: {name: cc1, shares: {bbr: 0.5, reno: 0.5}, control: reno, congestion_control: {bbr: bbr, reno: reno}}}
`)
	y = strings.Replace(y, "address: 127.0.0.1:1", "address: "+appLn.Addr().String(), 1)
	// A file big enough for TCP to show its congestion control.
	cat, err := content.Synth(content.SynthSpec{Titles: 1, LadderKbps: []int{2000}, Duration: 4 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := cat.Marshal()
	if err := os.WriteFile(filepath.Join(dir, "catalog.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	file := cat.Files[0]
	for _, f := range cat.Files {
		if f.Size > file.Size {
			file = f
		}
	}
	// The appliance holds the file from the start: no origin, no fill.
	st, err := store.Open(filepath.Join(dir, "store"), 1<<30, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Put(context.Background(), file, content.SynthReader(file.Path, file.Size)); err != nil {
		t.Fatal(err)
	}
	st.Close()

	logger := slog.New(slog.DiscardHandler)
	c := runControl(t, dir, y, Hooks{Logger: logger})
	ctl := c.URLs()[0]

	acfg := loadAppliance(t, dir, fmt.Sprintf(`id: x1
listen: 127.0.0.1:1
control_urls: [%s]
store: store
key_file: keys.json
access_log: "off"
heartbeat_interval: 100ms
drain_grace: 1ms
drain_timeout: 1s
transport: {sample_rate: 1, interval: 100ms, dir: spool}
`, ctl))
	runAppliance(t, acfg, Hooks{Logger: logger, Listeners: []net.Listener{appLn}})

	keys, err := urlsign.LoadKeySet(filepath.Join(dir, "keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	// A client of each arm: steering answers for clients in 127.64.k.0/24
	// until both arms have been seen.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(60 * time.Second)
	clients := map[string]netip.Addr{} // arm → client
	tokens := map[string]string{}
	for k := 1; len(clients) < 2; k++ {
		client := netip.AddrFrom4([4]byte{127, 64, byte(k % 250), 9})
		var fs api.SteerResponse
		for {
			fs = steerAs(t, ctl, client, file.Path)
			if len(fs.Files) == 1 && len(fs.Files[0].URLs) > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no steering answer for %s: %+v", file.Path, fs)
			}
			<-tick.C // the appliance's first heartbeat is on its way
		}
		u, _ := url.Parse(fs.Files[0].URLs[0].URL)
		tok := strings.Split(u.Path, "/")[2]
		g, err := keys.Parse(tok)
		if err != nil {
			t.Fatalf("steering token %q: %v", tok, err)
		}
		if g.Experiment != "cc1" || g.Arm != g.CongestionControl {
			t.Fatalf("steering token grant %+v, want experiment cc1 and the arm's congestion control", g)
		}
		if _, seen := clients[g.Arm]; !seen {
			clients[g.Arm], tokens[g.Arm] = client, tok
		}
	}
	for arm, client := range clients {
		hc := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{
			LocalAddr: &net.TCPAddr{IP: client.AsSlice()}}).DialContext}}
		req, _ := http.NewRequest(http.MethodGet, "http://"+appLn.Addr().String()+"/c/"+tokens[arm]+"/"+file.Path, nil)
		req.Close = true
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || n != file.Size {
			t.Fatalf("arm %s: GET %s = %d with %d bytes, want 200 with %d", arm, file.Path, resp.StatusCode, n, file.Size)
		}
	}
	// The records arrive within a batch interval or two; Flush makes
	// what the ingester acknowledged visible in Parquet.
	in := c.Server().Measure()
	ctx := context.Background()
	finals := map[string]measure.TransportRow{}
	for len(finals) < 2 {
		if err := in.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		files, err := measure.TableFiles(filepath.Join(dir, "measure"), "transport")
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			rows, err := parquet.ReadFile[measure.TransportRow](f)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rows {
				if r.Reason == measure.ReasonFinal && r.File == file.Path {
					finals[r.Arm] = r
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("final transport rows for arms %v, want bbr and reno", finals)
		}
		<-tick.C
	}
	for arm, r := range finals {
		pfx, _ := clients[arm].Prefix(24)
		if r.CongestionControl != arm || r.Experiment != "cc1" || r.Appliance != "x1" || r.Site != "ix" ||
			r.ClientPrefix != pfx.String() || r.BytesAcked == 0 || r.MinRTTUs <= 0 || r.ConnAgeUs <= 0 {
			t.Errorf("arm %s: row %+v, want congestion control %s, experiment cc1, appliance x1 at ix, prefix %s, bytes and RTT", arm, r, arm, pfx)
		}
		if arm == "bbr" && r.BBRBwBps == 0 {
			t.Errorf("bbr row without BBR's bandwidth estimate: %+v", r)
		}
	}

	// Impossible values are refused naming the field.
	bad := measure.TransportBatch{ID: "bad-batch-0000000001", Appliance: "x1", SentTime: time.Now(),
		Records: []measure.TransportRecord{{SampleTime: time.Now(), ClientPrefix: "127.64.1.0/24", CongestionControl: "bbr",
			Reason: "final", MinRTTUs: -3}}}
	body, _ := json.Marshal(bad)
	resp, err := http.Post(ctl+"/v1/transport", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(msg), "records[0].min_rtt_us") {
		t.Errorf("POST /v1/transport with a negative RTT = %d %q, want 400 naming records[0].min_rtt_us", resp.StatusCode, msg)
	}
}

// steerAs asks the control plane, as an admin, for client's answer.
func steerAs(t *testing.T, base string, client netip.Addr, path string) api.SteerResponse {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/v1/steer?files="+path+"&client="+client.String(), nil)
	req.Header.Set("Authorization", "Bearer op")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out api.SteerResponse
	if resp.StatusCode == http.StatusOK {
		json.NewDecoder(resp.Body).Decode(&out)
	}
	return out
}

// TestUnknownCongestionControlRefusedAtStart: an appliance whose
// transport.congestion_control the kernel lacks does not start, and says
// which ones it offers.
func TestUnknownCongestionControlRefusedAtStart(t *testing.T) {
	dir := t.TempDir()
	writeKeys(t, dir)
	cfg := loadAppliance(t, dir, "standalone: true\nlisten: 127.0.0.1:1\nstore: store\nkey_file: keys.json\ntransport: {congestion_control: vegas2}\n")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = NewAppliance(cfg, Hooks{Listeners: []net.Listener{ln}}, false)
	if err == nil {
		t.Fatal("NewAppliance with congestion_control vegas2 = nil error")
	}
	for _, want := range []string{"transport.congestion_control", "vegas2", "cubic"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("NewAppliance = %q, want it to mention %q", err, want)
		}
	}
}
