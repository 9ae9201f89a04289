package config

import (
	"os"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"
	"path/filepath"
	"strings"
	"testing"
)

const goodControl = `listen: [127.0.0.1:8080, "[::1]:8080"]
catalog: catalog.json
origin_url: http://127.0.0.1:8081
key_file: keys.json
appliance_secret_file: appliance.secret
admin_token_file: admin.token
viewer_token_file: viewer.token
operator_token_file: operator.token
measure: {dir: m, recipe: {targets: 3, pulses: 2, pulse_size: 256KiB, interval: 10m}}
steering:
  measured: true
  eligibility: embedded_ixp
  allow_ixp: [isp]
  metric: throughput_bps
  min_samples: 30
  refresh: 2s
  window: 1m
  max_step: 0.25
  qoe_watch: {min_sessions: 5, startup_margin: 0.5, rebuffer_margin: 0.02, throughput_margin: 0.2, hold: 10m}
  experiment: {name: exp1, start: 2026-12-01T00:00:00Z, shares: {bgp: 0.5, measured: 0.5}, metrics: [throughput_bps, startup_ms]}
placement: {replan_interval: 1h, hysteresis: 0.1, check_interval: 1m, ranking_change: 0.05, max_churn: 0.1, half_life: 72h}
fill: {window_start: "02:00", window_length: 12h}
isps: [{name: isp, asn: 64500, prefixes: [198.51.100.0/24]}]
sites: [{id: s, kind: embedded, isp: isp, time_zone: Europe/Amsterdam}]
appliances:
  - {id: a1, site: s, address: 10.0.0.1:80, address6: "[2001:db8::1]:80", capacity: 1GiB}
  - {id: A_2, site: s, address: 10.0.0.2:80, capacity: 1GiB}
  - {id: a3, site: s, address: "[2001:db8::3]:80", capacity: 1GiB}
dns:
  domain: CDN.example.net.
  listen: [127.0.0.1:53, "[::1]:53"]
  ttl: 20s
  nameservers: [{name: ns1.cdn.example.net, addresses: [192.0.2.53, "2001:db8::53"]}, {name: ns.other.example}]
`

const goodAppliance = `id: a1
listen: [10.0.0.1:80, "[2001:db8::1]:80"]
control_urls: [http://10.0.0.10:8080, http://10.0.0.11:8080]
token_file: a1.token
key_file: keys.json
store: store
capacity: 2TiB
fill: {concurrency: 4, rate: 150MB, stall_timeout: 30s, urgent_rate: 40MB, retire_grace: 1m}
tls: {cert_file: a1.pem, key_file: a1.key}
bgp:
  local_asn: 2906
  local_address: 10.0.0.1
  neighbors:
    - {address: 10.0.0.254, peer_asn: 64500, hold_time: 9s, max_prefixes: 1000, md5_password_file: md5}
    - {address: "2001:db8::fe", peer_asn: 64500}
`

func write(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestGoodConfigsLoadWithPathsBesideThem(t *testing.T) {
	p := write(t, "control.yaml", goodControl)
	var c Control
	if err := Load(p, &c); err != nil {
		t.Fatalf("Load(control) = %v", err)
	}
	dir := filepath.Dir(p)
	if c.Catalog != filepath.Join(dir, "catalog.json") || c.Measure.Dir != filepath.Join(dir, "m") || c.Store != filepath.Join(dir, "control.db") {
		t.Errorf("paths not resolved beside the config: catalog %q, measure.dir %q, store %q", c.Catalog, c.Measure.Dir, c.Store)
	}
	if c.ViewerTokenFile != filepath.Join(dir, "viewer.token") || c.OperatorTokenFile != filepath.Join(dir, "operator.token") {
		t.Errorf("console token files not resolved beside the config: viewer %q, operator %q", c.ViewerTokenFile, c.OperatorTokenFile)
	}
	if len(c.Listen) != 2 || !c.Listen[1].Addr().Is6() {
		t.Errorf("listen = %v, want an IPv4 and an IPv6 address", c.Listen)
	}
	if s, e := c.Fill.Hours(); s != 2 || e != 14 {
		t.Errorf("fill hours = %d-%d, want 2-14", s, e)
	}
	names, err := c.DNS.Names(c.Inventory)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, n := range names {
		got = append(got, n.Name+" "+n.Addr.String())
	}
	want := []string{"ipv4-a1-s.cdn.example.net 10.0.0.1", "ipv6-a1-s.cdn.example.net 2001:db8::1",
		"ipv4-a-2-s.cdn.example.net 10.0.0.2", "ipv6-a3-s.cdn.example.net 2001:db8::3"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("DNS names (-want +got):\n%s", diff)
	}
	p = write(t, "appliance.yaml", goodAppliance)
	var a ApplianceDaemon
	if err := Load(p, &a); err != nil {
		t.Fatalf("Load(appliance) = %v", err)
	}
	if a.BGP.Neighbors[1].NeighborFamily() != "ipv6" || a.BGP.Neighbors[0].NeighborFamily() != "ipv4" {
		t.Errorf("neighbor families = %s, %s; want ipv4, ipv6 from the addresses", a.BGP.Neighbors[0].NeighborFamily(), a.BGP.Neighbors[1].NeighborFamily())
	}
	if a.Fill.Rate != 150e6 || a.Capacity != 2<<40 {
		t.Errorf("fill.rate = %d, capacity = %d", a.Fill.Rate, a.Capacity)
	}
	// A single listen address is a list of one.
	p = write(t, "origin.yaml", "listen: 127.0.0.1:8081\ncatalog: c.json\n")
	var o Origin
	if err := Load(p, &o); err != nil || len(o.Listen) != 1 {
		t.Fatalf("Load(origin) = %v, listen %v", err, o.Listen)
	}
}

// TestBadConfigsNameFileAndField: every refusal names the file and the
// field, and says what is wrong.
func TestBadConfigsNameFileAndField(t *testing.T) {
	for _, tc := range []struct {
		name, base, from, to string
		want                 []string // substrings of the error
	}{
		{"unknown field", goodControl, "replicas_typo", "", nil},
		{"mistyped field", goodAppliance, "capacity: 2TiB", "capacty: 2TiB", []string{"capacty", "not found"}},
		{"neighbor not an address", goodAppliance, "address: 10.0.0.254", "address: router.isp", []string{"bgp.neighbors[0].address", "router.isp"}},
		{"neighbor without peer asn", goodAppliance, "peer_asn: 64500, hold_time", "hold_time", []string{"bgp.neighbors[0].peer_asn", "must be set"}},
		{"hold time", goodAppliance, "hold_time: 9s", "hold_time: 2s", []string{"bgp.neighbors[0].hold_time"}},
		{"window without time zone", goodControl, ", time_zone: Europe/Amsterdam", "", []string{"sites[0].time_zone", "02:00 to 14:00"}},
		{"window not on the hour", goodControl, `"02:00"`, `"02:30"`, []string{"fill.window_start"}},
		{"negative interval", goodControl, "refresh: 2s", "refresh: -2s", []string{"steering.refresh", "negative"}},
		{"heartbeat too short", goodAppliance, "capacity: 2TiB", "capacity: 2TiB\nheartbeat_interval: 1ns", []string{"heartbeat_interval", "minimum"}},
		{"stale limit negative", goodAppliance, "capacity: 2TiB", "capacity: 2TiB\nstale_limit: -1h", []string{"stale_limit", "negative"}},
		{"no control urls", goodAppliance, "control_urls: [http://10.0.0.10:8080, http://10.0.0.11:8080]", "", []string{"control_urls"}},
		{"bad control url", goodAppliance, "http://10.0.0.11:8080", "10.0.0.11:8080", []string{"control_urls[1]"}},
		{"listen_netns not a name", goodAppliance, "capacity: 2TiB", "capacity: 2TiB\nlisten_netns: [ok, a/b]", []string{"listen_netns[1]", "a/b"}},
		{"listen twice", goodAppliance, `"[2001:db8::1]:80"`, "10.0.0.1:80", []string{"listen[1]", "twice"}},
		{"tls without key", goodAppliance, ", key_file: a1.key", "", []string{"tls.key_file"}},
		{"steering without measure", goodControl, "measure: {dir: m, recipe: {targets: 3, pulses: 2, pulse_size: 256KiB, interval: 10m}}\n", "", []string{"steering", "measure.dir"}},
		{"no appliance credentials", goodControl, "appliance_secret_file: appliance.secret\n", "", []string{"appliance_secret_file", "insecure_unauthenticated_appliances"}},
		{"console roles share a file", goodControl, "operator_token_file: operator.token", "operator_token_file: viewer.token", []string{"operator_token_file", "viewer_token_file", "different tokens"}},
		{"viewer holds the admin token", goodControl, "viewer_token_file: viewer.token", "viewer_token_file: admin.token", []string{"viewer_token_file", "admin credential"}},
		{"recipe type", goodControl, "pulses: 2,", "pulses: 2, types: [ping],", []string{"measure.recipe.types[0]", "ping"}},
		{"recipe families", goodControl, "pulses: 2,", "pulses: 2, families: all,", []string{"measure.recipe.families", "client or both"}},
		{"dns probes without names", goodControl[:strings.Index(goodControl, "dns:\n")], "pulses: 2,", "pulses: 2, types: [dns],",
			[]string{"measure.recipe.types[0]", "dns section"}},
		// Issue 14's bad input: an experiment is refused at start when its
		// shares are not a distribution or it names an unknown metric.
		{"shares not summing to 1", goodControl, "measured: 0.5}", "measured: 0.6}", []string{"steering.experiment.shares", "sum to 1.1", "want 1"}},
		{"unknown metric", goodControl, "metrics: [throughput_bps, startup_ms]", "metrics: [throughput_bps, joy]", []string{"steering.experiment.metrics[1]", "joy"}},
		{"zero share", goodControl, "bgp: 0.5,", "bgp: 0, other: 0.5,", []string{"steering.experiment.shares.bgp"}},
		{"unknown control arm", goodControl, "name: exp1,", "name: exp1, control: ctl,", []string{"steering.experiment.control", "ctl"}},
		{"experiment without name", goodControl, "name: exp1,", "", []string{"steering.experiment.name"}},
		{"unknown eligibility", goodControl, "eligibility: embedded_ixp", "eligibility: anything", []string{"steering.eligibility", "anything"}},
		{"allow_ixp without the policy", goodControl, "eligibility: embedded_ixp", "eligibility: local_pref", []string{"steering.allow_ixp"}},
		{"allow_ixp unknown isp", goodControl, "allow_ixp: [isp]", "allow_ixp: [nobody]", []string{"steering.allow_ixp[0]", "nobody"}},
		{"step above 1", goodControl, "max_step: 0.25", "max_step: 1.5", []string{"steering.max_step"}},
		{"steering metric", goodControl, "metric: throughput_bps", "metric: startup_ms", []string{"steering.metric", "startup_ms"}},
		{"rebuffer margin", goodControl, "rebuffer_margin: 0.02", "rebuffer_margin: 2", []string{"steering.qoe_watch.rebuffer_margin"}},
		{"churn bound above capacity", goodControl, "max_churn: 0.1", "max_churn: 1.5", []string{"placement.max_churn", "1.5"}},
		{"ranking change negative", goodControl, "ranking_change: 0.05", "ranking_change: -0.1", []string{"placement.ranking_change"}},
		{"check slower than replan", goodControl, "check_interval: 1m", "check_interval: 2h", []string{"placement.check_interval", "replan_interval"}},
		{"urgent rate above rate", goodAppliance, "urgent_rate: 40MB", "urgent_rate: 200MB", []string{"fill.urgent_rate"}},
		{"transport sample rate", goodAppliance, "retire_grace: 1m}", "retire_grace: 1m}\ntransport: {sample_rate: 1.5}", []string{"transport.sample_rate", "1.5"}},
		{"transport cc spelling", goodAppliance, "retire_grace: 1m}", "retire_grace: 1m}\ntransport: {congestion_control: BBR v2}", []string{"transport.congestion_control", "BBR v2"}},
		{"transport interval", goodAppliance, "retire_grace: 1m}", "retire_grace: 1m}\ntransport: {interval: 1ms}", []string{"transport.interval"}},
		{"arm cc of no arm", goodControl, "measured: 0.5},", "measured: 0.5}, congestion_control: {bbrarm: bbr},", []string{"steering.experiment.congestion_control", "bbrarm"}},
		{"arm cc spelling", goodControl, "measured: 0.5},", "measured: 0.5}, congestion_control: {measured: \"b b\"},", []string{"steering.experiment.congestion_control.measured"}},
		{"retire grace negative", goodAppliance, "retire_grace: 1m", "retire_grace: -1s", []string{"fill.retire_grace", "negative"}},
		{"address6 not IPv6", goodControl, `address6: "[2001:db8::1]:80"`, "address6: 10.0.0.9:80", []string{"appliances[0].address6", "10.0.0.9:80"}},
		{"address6 without port", goodControl, `address6: "[2001:db8::1]:80"`, `address6: "2001:db8::1"`, []string{"appliances[0].address6"}},
		{"address6 beside IPv6", goodControl, `address: 10.0.0.1:80, address6`, `address: "[2001:db8::9]:80", address6`, []string{"appliances[0].address", "not IPv4"}},
		{"address6 used twice", goodControl, `address: "[2001:db8::3]:80"`, `address: "[2001:db8::1]:80"`, []string{"appliances[2].address", "a1"}},
		{"names collide", goodControl, `id: a3, site: s, address: "[2001:db8::3]:80"`, "id: a.2, site: s, address: 10.0.0.3:80", []string{"appliances[2].id", "ipv4-a-2-s.cdn.example.net", "A_2"}},
		{"id without label", goodControl, "id: a3", "id: __", []string{"appliances[2].id", "no letter or digit"}},
		{"label too long", goodControl, "id: a3", "id: " + strings.Repeat("x", 60), []string{"appliances[2].id", "limit of 63"}},
		{"bad domain", goodControl, "domain: CDN.example.net.", "domain: cdn_example.net", []string{"dns.domain", "cdn_example"}},
		{"wildcard dns listen", goodControl, `listen: [127.0.0.1:53, "[::1]:53"]`, `listen: 0.0.0.0:53`, []string{"dns.listen", "wildcard"}},
		{"no dns listen", goodControl, `  listen: [127.0.0.1:53, "[::1]:53"]` + "\n", "", []string{"dns.listen", "at least one"}},
		{"fractional ttl", goodControl, "ttl: 20s", "ttl: 1500ms", []string{"dns.ttl", "whole number of seconds"}},
		{"glue missing", goodControl, `, addresses: [192.0.2.53, "2001:db8::53"]`, "", []string{"dns.nameservers[0].addresses", "glue"}},
		{"glue outside", goodControl, "{name: ns.other.example}", "{name: ns.other.example, addresses: [192.0.2.1]}", []string{"dns.nameservers[1].addresses", "outside"}},
		{"nameserver is an appliance", goodControl, "name: ns1.cdn.example.net", "name: ipv4-a1-s.cdn.example.net", []string{"dns.nameservers[0].name", `appliance "a1"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := tc.base
			if tc.from == "replicas_typo" {
				text += "replicas_typo: 3\n"
				tc.want = []string{"replicas_typo", "not found"}
			} else {
				if !strings.Contains(text, tc.from) {
					t.Fatalf("test case: %q not in the base config", tc.from)
				}
				text = strings.Replace(text, tc.from, tc.to, 1)
			}
			p := write(t, "bad.yaml", text)
			var err error
			if strings.HasPrefix(tc.base, "id:") {
				err = Load(p, &ApplianceDaemon{})
			} else {
				err = Load(p, &Control{})
			}
			if err == nil {
				t.Fatalf("Load = nil, want an error naming %v", tc.want)
			}
			for _, w := range append([]string{p}, tc.want...) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Load = %q, want it to mention %q", err, w)
				}
			}
		})
	}
}

// TestInventoryRoundTrip: a config built in code and written with
// yaml.Marshal (as the lab and the bench scripts write theirs) keeps
// every appliance address.
func TestInventoryRoundTrip(t *testing.T) {
	var c Control
	if err := Load(write(t, "control.yaml", goodControl), &c); err != nil {
		t.Fatal(err)
	}
	for i := range c.Appliances {
		c.Appliances[i].Address.Raw, c.Appliances[i].Address6.Raw = "", "" // as built in code
	}
	for i := range c.DNS.Nameservers {
		for j := range c.DNS.Nameservers[i].Addresses {
			c.DNS.Nameservers[i].Addresses[j].Raw = ""
		}
	}
	b, err := yaml.Marshal(&c)
	if err != nil {
		t.Fatal(err)
	}
	var back Control
	if err := Decode("round trip", b, &back); err != nil {
		t.Fatalf("Decode(Marshal(config)) = %v\n%s", err, b)
	}
	if diff := cmp.Diff(c.Appliances, back.Appliances, cmp.Comparer(func(a, b AddrPort) bool { return a.AddrPort == b.AddrPort })); diff != "" {
		t.Errorf("appliances after a YAML round trip (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(c.DNS, back.DNS, cmp.Comparer(func(a, b Addr) bool { return a.Addr == b.Addr }), cmp.Comparer(func(a, b AddrPort) bool { return a.AddrPort == b.AddrPort })); diff != "" {
		t.Errorf("dns section after a YAML round trip (-want +got):\n%s", diff)
	}
}

func TestByteSizeRoundTrip(t *testing.T) {
	for _, in := range []string{"256KiB", "2GiB", "100MB", "1234"} {
		b, err := ParseByteSize(in)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := b.MarshalText()
		if string(out) != in {
			t.Errorf("MarshalText(ParseByteSize(%q)) = %q", in, out)
		}
	}
}

func FuzzControlConfig(f *testing.F) {
	f.Add([]byte(goodControl))
	f.Add([]byte(goodAppliance))
	f.Add([]byte("listen: [\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		// Any input is refused or accepted without a panic; an accepted
		// config passes its own validation again.
		var c Control
		if Decode("fuzz", data, &c) == nil {
			if err := c.Validate(); err != nil {
				t.Fatalf("accepted config fails Validate: %v", err)
			}
		}
		var a ApplianceDaemon
		if Decode("fuzz", data, &a) == nil {
			if err := a.Validate(); err != nil {
				t.Fatalf("accepted config fails Validate: %v", err)
			}
		}
	})
}
