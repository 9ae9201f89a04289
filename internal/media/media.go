// Package media provides real, playable video made in pure Go, so that
// a lab or a test can serve a title that browsers and ffmpeg actually
// decode without shipping media files or running an encoder: an HLS title
// of fragmented MP4 renditions at three resolutions, each a standard H.264
// Constrained Baseline stream (see h264.go for how it is coded).
//
// A title is 24 seconds at 10 frames per second, cut into 2-second
// segments that each start with a key frame. Each rendition is one MP4
// file (the init segment, then one movie fragment per segment) that its
// media playlist addresses with byte ranges, as Open Connect serves one
// file per rendition; the master playlist index.m3u8 lists the
// renditions. Every second shows a new picture: a bar that moves across
// and a progress bar along the bottom, in colours derived from the title
// name, so a person can see playback advance. The bytes depend only on
// the title name.
package media

import (
	"fmt"
	"hash/fnv"
	"math"
	"strings"
	"time"
)

// Shape of every generated title.
const (
	FPS             = 10
	SegmentDuration = 2 * time.Second
	Duration        = 24 * time.Second
	// MasterPlaylist is the file a player opens.
	MasterPlaylist = "index.m3u8"
	// Codecs is the RFC 6381 codecs string of every rendition.
	Codecs = "avc1.42c01e"
)

// Rung is one rendition of the ladder.
type Rung struct {
	Name          string // file names are Name.mp4 and Name.m3u8
	Width, Height int    // multiples of 16
}

// Ladder is the renditions of every title, smallest first. An I_PCM key
// frame costs 384 bytes per macroblock, so the average bitrates are about
// 190, 740 and 2950 kbit/s.
var Ladder = []Rung{
	{Name: "video_96p", Width: 160, Height: 96},
	{Name: "video_192p", Width: 320, Height: 192},
	{Name: "video_384p", Width: 640, Height: 384},
}

// File is one file of a title.
type File struct {
	Name     string // within the title, e.g. "video_96p.mp4"
	Playlist bool   // an .m3u8 playlist; otherwise an MP4 rendition
	// BitrateKbps is a rendition's average bitrate (0 for playlists).
	BitrateKbps int
	Data        []byte
}

// Title generates the files of a title: the master playlist, then per
// rung its media playlist and its MP4.
func Title(name string) []File {
	hue := titleHue(name)
	secs := int(Duration / time.Second)
	var files []File
	var master strings.Builder
	master.WriteString("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n")
	for _, r := range Ladder {
		mp4, segs := rendition(r, hue, secs)
		avg := int(math.Round(float64(len(mp4)) * 8 / Duration.Seconds() / 1000))
		peak := 0
		for _, s := range segs {
			peak = max(peak, int(math.Ceil(float64(s.size)*8/SegmentDuration.Seconds())))
		}
		fmt.Fprintf(&master, "#EXT-X-STREAM-INF:BANDWIDTH=%d,AVERAGE-BANDWIDTH=%d,CODECS=%q,RESOLUTION=%dx%d,FRAME-RATE=%d.000\n%s.m3u8\n",
			peak, avg*1000, Codecs, r.Width, r.Height, FPS, r.Name)
		files = append(files,
			File{Name: r.Name + ".m3u8", Playlist: true, Data: mediaPlaylist(r.Name+".mp4", segs)},
			File{Name: r.Name + ".mp4", BitrateKbps: avg, Data: mp4})
	}
	return append([]File{{Name: MasterPlaylist, Playlist: true, Data: []byte(master.String())}}, files...)
}

// span is a byte range of a rendition file.
type span struct{ off, size int }

// rendition returns the MP4 of one rung and the spans of its init segment
// (first) and media segments.
func rendition(r Rung, hue float64, secs int) ([]byte, []span) {
	wMB, hMB := r.Width/16, r.Height/16
	spsNAL, ppsNAL := sps(wMB, hMB), pps()
	out := initSegment(r.Width, r.Height, spsNAL, ppsNAL)
	spans := []span{{0, len(out)}}
	perSeg := int(SegmentDuration / time.Second)
	dur := uint32(timescale / FPS)
	for seg := 0; seg*perSeg < secs; seg++ {
		var samples []sample
		for s := seg * perSeg; s < (seg+1)*perSeg && s < secs; s++ {
			pic := drawSecond(r.Width, r.Height, hue, s, secs)
			samples = append(samples, sample{nals: [][]byte{idrSlice(pic, uint32(s%2))}, sync: true})
			for f := 1; f < FPS; f++ {
				samples = append(samples, sample{nals: [][]byte{skipSlice(wMB, hMB, uint32(f))}})
			}
		}
		base := uint64(seg*perSeg) * timescale
		frag := fragment(uint32(seg+1), base, dur, samples)
		spans = append(spans, span{len(out), len(frag)})
		out = append(out, frag...)
	}
	return out, spans
}

// mediaPlaylist addresses the init segment and every media segment of
// file by byte range.
func mediaPlaylist(file string, spans []span) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:%d\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-INDEPENDENT-SEGMENTS\n",
		int(SegmentDuration/time.Second))
	fmt.Fprintf(&b, "#EXT-X-MAP:URI=%q,BYTERANGE=\"%d@%d\"\n", file, spans[0].size, spans[0].off)
	for _, s := range spans[1:] {
		fmt.Fprintf(&b, "#EXTINF:%.3f,\n#EXT-X-BYTERANGE:%d@%d\n%s\n", SegmentDuration.Seconds(), s.size, s.off, file)
	}
	b.WriteString("#EXT-X-ENDLIST\n")
	return []byte(b.String())
}

// titleHue is an angle derived from the title name.
func titleHue(name string) float64 {
	h := fnv.New32a()
	h.Write([]byte(name))
	return float64(h.Sum32()%360) * math.Pi / 180
}

// drawSecond is the picture shown during second s of secs: a luma ramp in
// the title's colour, a bright bar at s's position and a progress bar.
func drawSecond(w, h int, hue float64, s, secs int) *picture {
	p := newPicture(w, h)
	barLo, barHi := s*w/secs, (s+1)*w/secs
	progress := (s + 1) * w / secs
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			v := 50 + 90*x/w
			switch {
			case y >= h*7/8 && x < progress:
				v = 200
			case y >= h*7/8:
				v = 30
			case x >= barLo && x < barHi:
				v = 225
			}
			p.y[y*w+x] = clampSample(v)
		}
	}
	cb := clampSample(128 + int(60*math.Cos(hue)))
	cr := clampSample(128 + int(60*math.Sin(hue)))
	for i := range p.cb {
		p.cb[i], p.cr[i] = cb, cr
	}
	return p
}

// clampSample keeps a sample in video range (16–235), which also keeps
// PCM data clear of the zero bytes emulation prevention would escape.
func clampSample(v int) byte {
	return byte(min(235, max(16, v)))
}
