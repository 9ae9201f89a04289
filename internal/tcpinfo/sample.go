package tcpinfo

import (
	"errors"
	"fmt"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ErrNotTCP is returned for a connection that has no TCP socket under it.
var ErrNotTCP = errors.New("tcpinfo: connection has no TCP socket")

// Sampler reads one connection's TCP_INFO. Make one per connection and
// keep it: Sample then costs a few getsockopt calls and no allocation. A
// Sampler is not safe for concurrent use (Monitor serializes its own).
type Sampler struct {
	raw syscall.RawConn
	fn  func(fd uintptr) // s.read, bound once so Control does not allocate per sample

	// The kernel writes into these; they live in the Sampler so that no
	// sample allocates.
	info    unix.TCPInfo
	infoLen uint32
	cc      [unix.SizeofTCPCCInfo / 4]uint32 // uint32s for alignment
	ccLen   uint32
	name    [16]byte // TCP_CA_NAME_MAX
	nameLen uint32
	errno   syscall.Errno

	lastName string // the name last seen, so an unchanged one is not re-allocated
}

// NewSampler returns a Sampler for c, which must be a TCP connection (or
// wrap one and implement syscall.Conn, as *net.TCPConn does).
func NewSampler(c any) (*Sampler, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("%w (%T)", ErrNotTCP, c)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("tcpinfo: %w", err)
	}
	s := &Sampler{raw: raw}
	s.fn = s.read
	return s, nil
}

// getsockopt fills p (n bytes long) and reports the kernel's length.
func getsockopt(fd uintptr, opt int, p unsafe.Pointer, n *uint32) syscall.Errno {
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.IPPROTO_TCP, uintptr(opt), uintptr(p), uintptr(unsafe.Pointer(n)), 0)
	return e
}

func (s *Sampler) read(fd uintptr) {
	s.infoLen = uint32(unsafe.Sizeof(s.info))
	if s.errno = getsockopt(fd, unix.TCP_INFO, unsafe.Pointer(&s.info), &s.infoLen); s.errno != 0 {
		return
	}
	s.nameLen = uint32(len(s.name))
	if s.errno = getsockopt(fd, unix.TCP_CONGESTION, unsafe.Pointer(&s.name[0]), &s.nameLen); s.errno != 0 {
		return
	}
	s.ccLen = 0
	if s.nameString() == "bbr" {
		s.ccLen = uint32(unsafe.Sizeof(s.cc))
		if s.errno = getsockopt(fd, unix.TCP_CC_INFO, unsafe.Pointer(&s.cc[0]), &s.ccLen); s.errno != 0 {
			return
		}
	}
}

// nameString returns the congestion control name read last, reusing the
// previous string when it has not changed.
func (s *Sampler) nameString() string {
	b := s.name[:s.nameLen]
	if i := indexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	if string(b) != s.lastName { // the comparison does not allocate
		s.lastName = string(b)
	}
	return s.lastName
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// Sample fills r with the connection's current state. It fails once the
// connection is closed: take the final sample before closing.
func (s *Sampler) Sample(r *Record) error {
	if err := s.raw.Control(s.fn); err != nil {
		return fmt.Errorf("tcpinfo: %w", err)
	}
	if s.errno != 0 {
		return fmt.Errorf("tcpinfo: getsockopt: %w", s.errno)
	}
	fill(r, &s.info, int(s.infoLen))
	r.CongestionControl = s.lastName
	r.BBR = BBRInfo{}
	if s.ccLen >= uint32(unsafe.Sizeof(unix.TCPBBRInfo{})) {
		b := (*unix.TCPBBRInfo)(unsafe.Pointer(&s.cc[0]))
		r.BBR = BBRInfo{
			Bandwidth:  uint64(b.Bw_hi)<<32 | uint64(b.Bw_lo),
			MinRTT:     usec(b.Min_rtt),
			PacingGain: float64(b.Pacing_gain) / 256, // BBR_UNIT is 1<<8
			CwndGain:   float64(b.Cwnd_gain) / 256,
		}
	}
	return nil
}

func usec[T uint32 | uint64](v T) time.Duration { return time.Duration(v) * time.Microsecond }

// fill converts the kernel's struct; n is how much of it the kernel
// wrote, the rest being zero.
func fill(r *Record, i *unix.TCPInfo, n int) {
	// The byte after tcpi_options holds bitfields x/sys does not name:
	// tcpi_delivery_rate_app_limited is its lowest bit.
	flags := (*[8]byte)(unsafe.Pointer(i))[7]
	*r = Record{
		State:               i.State,
		CAState:             i.Ca_state,
		MSS:                 i.Snd_mss,
		MinRTT:              usec(i.Min_rtt),
		SmoothedRTT:         usec(i.Rtt),
		RTTVar:              usec(i.Rttvar),
		Cwnd:                i.Snd_cwnd,
		Ssthresh:            i.Snd_ssthresh,
		Unacked:             i.Unacked,
		Lost:                i.Lost,
		Retransmits:         i.Total_retrans,
		DataSegsOut:         i.Data_segs_out,
		SpuriousRetransmits: i.Dsack_dups,
		RTOs:                i.Total_rto,
		BytesSent:           i.Bytes_sent,
		BytesRetrans:        i.Bytes_retrans,
		BytesAcked:          i.Bytes_acked,
		BytesReceived:       i.Bytes_received,
		DeliveryRate:        i.Delivery_rate,
		PacingRate:          i.Pacing_rate,
		AppLimited:          flags&1 != 0,
		BusyTime:            usec(i.Busy_time),
		RwndLimited:         usec(i.Rwnd_limited),
		SndbufLimited:       usec(i.Sndbuf_limited),
		InfoLen:             n,
	}
	// The kernel reports "no limit" as ^0 for pacing.
	if r.PacingRate == ^uint64(0) {
		r.PacingRate = 0
	}
}
