package media

import "encoding/binary"

// Fragmented MP4 (ISO/IEC 14496-12 and -15), as much as one H.264 video
// track needs: an init segment (ftyp, moov with an avc1 sample entry and
// mvex) and one movie fragment (moof + mdat) per media segment.

// box is one box: its size, type and payload.
func box(typ string, parts ...[]byte) []byte {
	n := 8
	for _, p := range parts {
		n += len(p)
	}
	b := make([]byte, 0, n)
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	b = append(b, typ...)
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// fullBox is a box with a version and flags.
func fullBox(typ string, version byte, flags uint32, parts ...[]byte) []byte {
	vf := []byte{version, byte(flags >> 16), byte(flags >> 8), byte(flags)}
	return box(typ, append([][]byte{vf}, parts...)...)
}

// be is a big-endian writer for box payloads.
type be []byte

func (b be) u8(v byte) be    { return append(b, v) }
func (b be) u16(v uint16) be { return binary.BigEndian.AppendUint16(b, v) }
func (b be) u32(v uint32) be { return binary.BigEndian.AppendUint32(b, v) }
func (b be) u64(v uint64) be { return binary.BigEndian.AppendUint64(b, v) }
func (b be) raw(v []byte) be { return append(b, v...) }
func (b be) zeros(n int) be  { return append(b, make([]byte, n)...) }
func (b be) str(s string) be { return append(b, s...) }
func (b be) matrix() be {
	for _, v := range []uint32{0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000} {
		b = b.u32(v)
	}
	return b
}

const (
	timescale = 90000 // the media timescale, in ticks per second
	trackID   = 1
)

// initSegment is ftyp + moov for one avc1 track of w×h samples.
func initSegment(w, h int, spsNAL, ppsNAL []byte) []byte {
	ftyp := box("ftyp", be{}.str("isom").u32(512).str("isom").str("iso5").str("iso6").str("avc1").str("mp41"))
	mvhd := fullBox("mvhd", 0, 0, be{}.u32(0).u32(0).u32(1000).u32(0).u32(0x00010000).u16(0x0100).zeros(10).
		matrix().zeros(24).u32(trackID+1))
	tkhd := fullBox("tkhd", 0, 3, be{}.u32(0).u32(0).u32(trackID).u32(0).u32(0).zeros(8).u16(0).u16(0).u16(0).u16(0).
		matrix().u32(uint32(w)<<16).u32(uint32(h)<<16))
	// Language "und" packed as three 5-bit letters.
	mdhd := fullBox("mdhd", 0, 0, be{}.u32(0).u32(0).u32(timescale).u32(0).u16(0x55C4).u16(0))
	hdlr := fullBox("hdlr", 0, 0, be{}.u32(0).str("vide").zeros(12).str("VideoHandler\x00"))
	vmhd := fullBox("vmhd", 0, 1, be{}.zeros(8))
	dinf := box("dinf", fullBox("dref", 0, 0, be{}.u32(1), fullBox("url ", 0, 1)))
	avcC := box("avcC", be{}.u8(1).u8(spsNAL[1]).u8(spsNAL[2]).u8(spsNAL[3]).u8(0xFC|3).u8(0xE0|1).
		u16(uint16(len(spsNAL))).raw(spsNAL).u8(1).u16(uint16(len(ppsNAL))).raw(ppsNAL))
	avc1 := box("avc1", be{}.zeros(6).u16(1).u16(0).u16(0).zeros(12).u16(uint16(w)).u16(uint16(h)).
		u32(0x00480000).u32(0x00480000).u32(0).u16(1).zeros(32).u16(0x0018).u16(0xFFFF), avcC)
	stbl := box("stbl",
		fullBox("stsd", 0, 0, be{}.u32(1), avc1),
		fullBox("stts", 0, 0, be{}.u32(0)),
		fullBox("stsc", 0, 0, be{}.u32(0)),
		fullBox("stsz", 0, 0, be{}.u32(0).u32(0)),
		fullBox("stco", 0, 0, be{}.u32(0)))
	trak := box("trak", tkhd, box("mdia", mdhd, hdlr, box("minf", vmhd, dinf, stbl)))
	mvex := box("mvex", fullBox("trex", 0, 0, be{}.u32(trackID).u32(1).u32(0).u32(0).u32(0)))
	return append(ftyp, box("moov", mvhd, trak, mvex)...)
}

// sample is one access unit: its NAL units, and whether it is a key frame.
type sample struct {
	nals [][]byte
	sync bool
}

// Sample flags: a key frame depends on nothing; any other picture
// depends on others and is not a sync sample.
const (
	flagsSync    = 0x02000000
	flagsNonSync = 0x01010000
)

// fragment is moof + mdat for samples starting at decode time base, each
// lasting dur ticks; seq numbers the fragment (from 1).
func fragment(seq uint32, base uint64, dur uint32, samples []sample) []byte {
	var mdat []byte
	sizes := make([]uint32, len(samples))
	for i, s := range samples {
		start := len(mdat)
		for _, n := range s.nals {
			mdat = binary.BigEndian.AppendUint32(mdat, uint32(len(n)))
			mdat = append(mdat, n...)
		}
		sizes[i] = uint32(len(mdat) - start)
	}
	moof := func(dataOffset uint32) []byte {
		tr := be{}.u32(uint32(len(samples))).u32(dataOffset)
		for i, s := range samples {
			flags := uint32(flagsNonSync)
			if s.sync {
				flags = flagsSync
			}
			tr = tr.u32(dur).u32(sizes[i]).u32(flags)
		}
		// tfhd: default-base-is-moof; trun: data offset, and per sample
		// duration, size and flags.
		traf := box("traf",
			fullBox("tfhd", 0, 0x020000, be{}.u32(trackID)),
			fullBox("tfdt", 1, 0, be{}.u64(base)),
			fullBox("trun", 0, 0x000701, tr))
		return box("moof", fullBox("mfhd", 0, 0, be{}.u32(seq)), traf)
	}
	m := moof(0)
	m = moof(uint32(len(m)) + 8) // the data begin after moof and mdat's header
	return append(m, box("mdat", mdat)...)
}
