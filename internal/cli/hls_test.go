package cli

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestHLSPlaysThroughAppliance is the acceptance test with a real media
// client: ffmpeg packages a clip as single-file HLS with byte ranges, the
// operator commands build its catalog, import it into a store and sign a
// title-scoped URL, a standalone appliance serves it, and ffmpeg plays the
// signed playlist URL to the end, fetching segments as byte ranges through
// relative URLs under the same token.
func TestHLSPlaysThroughAppliance(t *testing.T) {
	ffmpeg := requireExternal(t, "ffmpeg", "ffmpeg")
	if testing.Short() {
		t.Skip("packages and plays a 12 s clip with ffmpeg")
	}
	dir := t.TempDir()
	media := filepath.Join(dir, "media")
	if err := os.MkdirAll(filepath.Join(media, "clip"), 0o755); err != nil {
		t.Fatal(err)
	}
	pkg := exec.Command(ffmpeg, "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc=duration=12:size=320x240:rate=25",
		"-c:v", "libx264", "-g", "50", "-f", "hls", "-hls_time", "2", "-hls_playlist_type", "vod",
		"-hls_flags", "single_file", filepath.Join(media, "clip", "index.m3u8"))
	if out, err := pkg.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg packaging: %v\n%s", err, out)
	}
	playlist, err := os.ReadFile(filepath.Join(media, "clip", "index.m3u8"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(playlist, []byte("#EXT-X-BYTERANGE")) {
		t.Fatalf("ffmpeg wrote a playlist without byte ranges:\n%s", playlist)
	}

	catalog := filepath.Join(dir, "catalog.json")
	storeDir := filepath.Join(dir, "store")
	keyFile := filepath.Join(dir, "keys.json")
	mustOCDN(t, "catalog", "build", media, "-o", catalog)
	if out := mustOCDN(t, "store", "import", "--store", storeDir, "--catalog", catalog, media); !strings.HasPrefix(out, "imported 2 files") {
		t.Fatalf("store import printed %q, want 2 files imported (playlist and media)", out)
	}
	mustOCDN(t, "urlsign", "keygen", "--out", keyFile)

	addr, opsAddr := freeAddr(t, "127.1.201.1"), freeAddr(t, "127.1.201.1")
	base, ops := "http://"+addr, "http://"+opsAddr
	app := startOCDN(t, dir, "appliance", "appliance", "--standalone", "--store", storeDir, "--listen", addr, "--ops-listen", opsAddr, "--key-file", keyFile)
	waitFor(t, "the appliance to serve", 20*time.Second, func() bool { return healthy(base) }, app)

	u := strings.TrimSpace(mustOCDN(t, "urlsign", "--key-file", keyFile, "--scope", "clip/", "--base", base, "clip/index.m3u8"))
	play := exec.Command(ffmpeg, "-nostdin", "-v", "error", "-i", u, "-f", "null", "-")
	var stderr bytes.Buffer
	play.Stderr = &stderr
	if err := play.Run(); err != nil || stderr.Len() != 0 {
		t.Fatalf("ffmpeg -i %s: %v\nstderr:\n%s\nappliance log:\n%s", u, err, stderr.String(), app.logText())
	}

	// The segments were fetched as byte ranges: the metrics count 206s
	// and the access log shows them.
	partial := metricValue(t, ops+"/metrics", `ocdn_edge_requests_total{code="206"}`)
	if partial < 6 {
		t.Errorf(`ocdn_edge_requests_total{code="206"} = %v, want at least one per 2 s segment (6)`, partial)
	}
	// ffmpeg asks for the playlist with an open range too, so every
	// request of a good playback is a 206 and none failed.
	for _, code := range []string{"403", "404", "416", "500"} {
		if n := metricValue(t, ops+"/metrics", `ocdn_edge_requests_total{code="`+code+`"}`); n != 0 {
			t.Errorf(`ocdn_edge_requests_total{code="%s"} = %v, want 0`, code, n)
		}
	}
	if !regexp.MustCompile(`status=206`).MatchString(app.logText()) {
		t.Errorf("appliance access log shows no 206 response:\n%s", app.logText())
	}
}

// metricValue reads one sample from a Prometheus text endpoint; a missing
// sample is 0.
func metricValue(t *testing.T, url, sample string) float64 {
	t.Helper()
	resp, err := httpClient.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			return f
		}
	}
	return 0
}
