package content

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"time"
)

// SynthReader returns the deterministic bytes of a synthetic file: the AES-CTR
// keystream keyed by SHA-256 of the path. CTR mode is seekable, so any range
// is produced directly, at AES-NI speed, without storing anything. The
// files of media titles (IsMediaTitle) are real video instead, generated
// by internal/media from the title name.
func SynthReader(path string, size int64) *SynthFile {
	if data := mediaFile(path); data != nil && int64(len(data)) == size {
		return &SynthFile{media: data, size: size}
	}
	key := sha256.Sum256([]byte("ocdn-synth/" + path))
	block, err := aes.NewCipher(key[:])
	if err != nil {
		panic(err) // a 32-byte key is always valid
	}
	return &SynthFile{block: block, size: size}
}

// SynthFile is an io.ReaderAt and io.ReadSeeker over synthetic content.
type SynthFile struct {
	block cipher.Block
	media []byte // a media title's file, instead of the keystream
	size  int64
	off   int64
}

// Size is the file length.
func (s *SynthFile) Size() int64 { return s.size }

// ReadAt fills p with the keystream at off.
func (s *SynthFile) ReadAt(p []byte, off int64) (int, error) {
	if off >= s.size {
		return 0, io.EOF
	}
	n := len(p)
	var err error
	if rem := s.size - off; int64(n) > rem {
		n, err = int(rem), io.EOF
	}
	if s.media != nil {
		copy(p, s.media[off:off+int64(n)])
		return n, err
	}
	p = p[:n]
	clear(p)
	var iv [16]byte
	binary.BigEndian.PutUint64(iv[8:], uint64(off/16))
	stream := cipher.NewCTR(s.block, iv[:])
	if skip := int(off % 16); skip > 0 {
		var junk [16]byte
		stream.XORKeyStream(junk[:skip], junk[:skip])
	}
	stream.XORKeyStream(p, p)
	return n, err
}

// Read implements io.Reader.
func (s *SynthFile) Read(p []byte) (int, error) {
	n, err := s.ReadAt(p, s.off)
	s.off += int64(n)
	return n, err
}

// Seek implements io.Seeker.
func (s *SynthFile) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += s.off
	case io.SeekEnd:
		offset += s.size
	default:
		return 0, fmt.Errorf("seek: bad whence %d", whence)
	}
	if offset < 0 {
		return 0, fmt.Errorf("seek: negative position %d", offset)
	}
	s.off = offset
	return offset, nil
}

// SynthSpec describes a synthetic catalog: Titles titles, each with one
// file per rung of the bitrate ladder, Duration long.
type SynthSpec struct {
	Titles     int           `yaml:"titles" json:"titles"`
	LadderKbps []int         `yaml:"ladder_kbps" json:"ladder_kbps"`
	Duration   time.Duration `yaml:"duration" json:"duration"`
	AudioKbps  int           `yaml:"audio_kbps" json:"audio_kbps"`
	// MediaTitles adds titles of real, playable HLS video (named
	// hls0000, hls0001, …; see MediaTitle), which browsers and ffmpeg
	// decode: their shape is internal/media's, not the ladder's.
	MediaTitles int `yaml:"media_titles,omitempty" json:"media_titles,omitempty"`
}

// DefaultSynthSpec is a small ladder suitable for a laptop lab.
func DefaultSynthSpec() SynthSpec {
	return SynthSpec{Titles: 20, LadderKbps: []int{500, 1500, 3000}, Duration: 30 * time.Second, AudioKbps: 128}
}

// Validate checks the spec.
func (s SynthSpec) Validate() error {
	switch {
	case s.Titles < 1 || s.Titles > 1_000_000:
		return fmt.Errorf("titles: %d is not between 1 and 1000000", s.Titles)
	case len(s.LadderKbps) == 0:
		return fmt.Errorf("ladder_kbps: at least one bitrate is needed")
	case s.Duration <= 0 || s.Duration > 24*time.Hour:
		return fmt.Errorf("duration: %s is not between 0 and 24h", s.Duration)
	case s.AudioKbps < 0:
		return fmt.Errorf("audio_kbps: %d is negative", s.AudioKbps)
	case s.MediaTitles < 0 || s.MediaTitles > maxMediaTitles:
		return fmt.Errorf("media_titles: %d is not between 0 and %d", s.MediaTitles, maxMediaTitles)
	}
	for i, b := range s.LadderKbps {
		if b <= 0 || b > 1_000_000 {
			return fmt.Errorf("ladder_kbps[%d]: %d is not between 1 and 1000000", i, b)
		}
	}
	return nil
}

// Synth builds a synthetic catalog. Hashing every byte is the honest way to
// get each file's SHA-256; it runs at several hundred MB/s.
func Synth(spec SynthSpec) (*Catalog, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	c := &Catalog{Version: FormatVersion, Synthetic: true}
	secs := spec.Duration.Seconds()
	add := func(path string, kind Kind, kbps int) {
		size := int64(float64(kbps) * 1000 / 8 * secs)
		c.Files = append(c.Files, File{Path: path, Size: size, SHA256: SynthHash(path, size), Kind: kind, BitrateKbps: kbps})
	}
	for t := 0; t < spec.Titles; t++ {
		title := fmt.Sprintf("t%04d", t)
		for _, kbps := range spec.LadderKbps {
			add(fmt.Sprintf("%s/video_%dk.mp4", title, kbps), KindVideo, kbps)
		}
		if spec.AudioKbps > 0 {
			add(fmt.Sprintf("%s/audio_%dk.mp4", title, spec.AudioKbps), KindAudio, spec.AudioKbps)
		}
	}
	for t := 0; t < spec.MediaTitles; t++ {
		title := MediaTitle(t)
		for _, f := range mediaTitle(title) {
			sum := sha256.Sum256(f.Data)
			kind := KindVideo
			if f.Playlist {
				kind = KindPlaylist
			}
			c.Files = append(c.Files, File{Path: title + "/" + f.Name, Size: int64(len(f.Data)), SHA256: hex.EncodeToString(sum[:]),
				Kind: kind, BitrateKbps: f.BitrateKbps})
		}
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// SynthHash is the SHA-256 of a synthetic file, in hex.
func SynthHash(path string, size int64) string {
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(SynthReader(path, size), 0, size)); err != nil {
		panic(err) // reading synthetic content cannot fail
	}
	return hex.EncodeToString(h.Sum(nil))
}
