package measure

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// The write-ahead log is a directory of segments, DIR/wal/seg-<seq>.wal.
// Each segment is a sequence of records
//
//	uint32 little-endian payload length | uint32 little-endian CRC-32C of payload | payload
//
// where the payload is a JSON walRecord. All records of one segment were
// received in the same UTC hour, so a segment compacts into exactly one
// hour partition. A torn or corrupt record ends the segment: everything
// before it was fsynced before any later record was acknowledged, and
// nothing after it was acknowledged.

const (
	walHeaderLen  = 8
	maxWALPayload = 8 << 20 // a 1 MiB JSON body re-encoded, with room to spare
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// walRecord is one accepted report with everything the server knew when it
// accepted it, so that compaction is a pure function of the segment.
type walRecord struct {
	Received     int64    `json:"rx"` // Unix nanoseconds, server clock
	Client       string   `json:"client"`
	ClientPrefix string   `json:"prefix"`
	PrefixGroup  string   `json:"group"`
	ASN          uint32   `json:"asn,omitempty"`
	ISP          string   `json:"isp,omitempty"`
	Sites        []string `json:"sites,omitempty"`    // resolved site per pulse
	QoESite      string   `json:"qoe_site,omitempty"` // site of the first appliance that served the session
	AssignedArm  string   `json:"arm,omitempty"`      // Annotation.Arm
	// Resolvers are the joins of the report's dns pulses, by nonce.
	Resolvers map[string]ResolverJoin `json:"resolvers,omitempty"`
	Report    *Report                 `json:"report"`
}

func appendFrame(dst, payload []byte) []byte {
	var h [walHeaderLen]byte
	binary.LittleEndian.PutUint32(h[0:4], uint32(len(payload)))
	binary.LittleEndian.PutUint32(h[4:8], crc32.Checksum(payload, crcTable))
	dst = append(dst, h[:]...)
	return append(dst, payload...)
}

// readFrames calls fn for every intact record of the segment at path and
// returns the length of the intact prefix of the file. It stops quietly at
// the first torn or corrupt record.
func readFrames(path string, fn func(payload []byte) error) (good int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<20)
	var h [walHeaderLen]byte
	var buf []byte
	for {
		if _, err := io.ReadFull(br, h[:]); err != nil {
			return good, nil // clean end, or a torn header
		}
		n := binary.LittleEndian.Uint32(h[0:4])
		if n == 0 || n > maxWALPayload {
			return good, nil
		}
		if cap(buf) < int(n) {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(br, buf); err != nil {
			return good, nil
		}
		if crc32.Checksum(buf, crcTable) != binary.LittleEndian.Uint32(h[4:8]) {
			return good, nil
		}
		if err := fn(buf); err != nil {
			return good, err
		}
		good += walHeaderLen + int64(n)
	}
}

func segmentName(seq uint64) string { return fmt.Sprintf("seg-%012d.wal", seq) }

// listSegments returns the sequence numbers of the WAL segments in dir,
// ascending.
func listSegments(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var seqs []uint64
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, "seg-") || !strings.HasSuffix(name, ".wal") {
			continue
		}
		seq, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(name, "seg-"), ".wal"), 10, 64)
		if err != nil {
			continue
		}
		seqs = append(seqs, seq)
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	return seqs, nil
}

// syncDir fsyncs a directory, making creations, renames and removals in
// it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// mkdirAllSync creates dir and its missing parents, fsyncing each parent
// so that the new entries survive a crash.
func mkdirAllSync(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirAllSync(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	return syncDir(parent)
}
