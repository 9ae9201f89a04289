package media

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// requireFFmpeg returns the path of an ffmpeg tool; a missing one skips,
// or fails with OCDN_REQUIRE_EXTERNAL=1.
func requireFFmpeg(t *testing.T, program string) string {
	t.Helper()
	p, err := exec.LookPath(program)
	if err == nil {
		return p
	}
	msg := fmt.Sprintf("%s not found in PATH: install the Debian package ffmpeg", program)
	if os.Getenv("OCDN_REQUIRE_EXTERNAL") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func writeTitle(t *testing.T, name string) (string, []File) {
	t.Helper()
	dir := t.TempDir()
	files := Title(name)
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.Name), f.Data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir, files
}

// TestFFmpegDecodesEveryRendition is the oracle: ffmpeg, an independent
// decoder and HLS demuxer, reads each media playlist through its byte
// ranges and decodes every frame without one error, at the rung's size.
func TestFFmpegDecodesEveryRendition(t *testing.T) {
	ffmpeg := requireFFmpeg(t, "ffmpeg")
	ffprobe := requireFFmpeg(t, "ffprobe")
	dir, _ := writeTitle(t, "hls0000")
	wantFrames := int(Duration/time.Second) * FPS
	for _, r := range Ladder {
		pl := filepath.Join(dir, r.Name+".m3u8")
		cmd := exec.Command(ffmpeg, "-nostdin", "-v", "error", "-allowed_extensions", "ALL", "-i", pl, "-f", "null", "-")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil || stderr.Len() != 0 {
			t.Fatalf("ffmpeg decoding %s: %v\n%s", r.Name, err, stderr.String())
		}
		out, err := exec.Command(ffprobe, "-v", "error", "-count_frames", "-select_streams", "v:0",
			"-show_entries", "stream=codec_name,profile,width,height,nb_read_frames", "-of", "csv=p=0",
			filepath.Join(dir, r.Name+".mp4")).CombinedOutput()
		if err != nil {
			t.Fatalf("ffprobe %s: %v\n%s", r.Name, err, out)
		}
		want := fmt.Sprintf("h264,Constrained Baseline,%d,%d,%d", r.Width, r.Height, wantFrames)
		if got := strings.TrimSpace(string(out)); got != want {
			t.Errorf("ffprobe %s = %q, want %q", r.Name, got, want)
		}
	}
	// The master playlist leads to the same frames.
	out, err := exec.Command(ffprobe, "-v", "error", "-allowed_extensions", "ALL", "-show_entries", "stream=width", "-of", "csv=p=0",
		filepath.Join(dir, MasterPlaylist)).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe %s: %v\n%s", MasterPlaylist, err, out)
	}
	// ffprobe lists the streams once per program and once more.
	widths := map[string]bool{}
	for _, f := range strings.Fields(string(out)) {
		widths[f] = true
	}
	for _, r := range Ladder {
		if !widths[strconv.Itoa(r.Width)] || len(widths) != len(Ladder) {
			t.Errorf("ffprobe of the master playlist found widths %q, want one stream per rung", out)
			break
		}
	}
}

func TestTitleIsDeterministicAndDiffersByName(t *testing.T) {
	a, b, c := Title("hls0000"), Title("hls0000"), Title("hls0001")
	for i := range a {
		if !bytes.Equal(a[i].Data, b[i].Data) {
			t.Errorf("Title(hls0000) %s differs between two calls", a[i].Name)
		}
	}
	if bytes.Equal(a[2].Data, c[2].Data) {
		t.Errorf("Title(hls0000) and Title(hls0001) have the same %s", a[2].Name)
	}
}

// TestPlaylistsAddressTheFile checks every byte range of every media
// playlist against the MP4: the init segment starts with ftyp, each
// segment with moof, and the ranges tile the file.
func TestPlaylistsAddressTheFile(t *testing.T) {
	files := Title("hls0007")
	byName := map[string]File{}
	for _, f := range files {
		byName[f.Name] = f
	}
	for _, r := range Ladder {
		mp4 := byName[r.Name+".mp4"]
		pl := string(byName[r.Name+".m3u8"].Data)
		next, segs := 0, 0
		for _, line := range strings.Split(pl, "\n") {
			var spec string
			if v, ok := strings.CutPrefix(line, "#EXT-X-BYTERANGE:"); ok {
				spec = v
			} else if _, v, ok := strings.Cut(line, `BYTERANGE="`); ok {
				spec = strings.TrimSuffix(v, `"`)
			} else {
				continue
			}
			n, off, _ := strings.Cut(spec, "@")
			size, err1 := strconv.Atoi(n)
			at, err2 := strconv.Atoi(off)
			if err1 != nil || err2 != nil || at != next || at+size > len(mp4.Data) {
				t.Fatalf("%s: range %q: want one starting at %d within %d bytes", r.Name, spec, next, len(mp4.Data))
			}
			typ := string(mp4.Data[at+4 : at+8])
			if want := map[bool]string{true: "ftyp", false: "moof"}[next == 0]; typ != want {
				t.Errorf("%s: range %q starts with box %q, want %q", r.Name, spec, typ, want)
			}
			next = at + size
			segs++
		}
		if next != len(mp4.Data) || segs != 1+int(Duration/SegmentDuration) {
			t.Errorf("%s: ranges cover %d of %d bytes in %d pieces, want all in %d", r.Name, next, len(mp4.Data), segs, 1+int(Duration/SegmentDuration))
		}
		if want := float64(len(mp4.Data)) * 8 / Duration.Seconds() / 1000; float64(mp4.BitrateKbps) < want-1 || float64(mp4.BitrateKbps) > want+1 {
			t.Errorf("%s: bitrate_kbps %d, want %.0f", r.Name, mp4.BitrateKbps, want)
		}
	}
	if !strings.Contains(string(byName[MasterPlaylist].Data), `CODECS="`+Codecs+`"`) {
		t.Errorf("master playlist lacks the codecs:\n%s", byName[MasterPlaylist].Data)
	}
}
