package h1

import (
	"hash/maphash"
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// maxSendfile bounds one sendfile(2) call, as Go's own sendfile does.
const maxSendfile = 4 << 20

// sendFileFrom sends src (as sendfileSource accepts it) with sendfile(2)
// and reports whether it could. A SectionReader's file is read at an
// offset with no lseek(2) at all; a LimitedReader's from the file's
// offset, which it moves past what it sent, as io.Copy would.
func (c *conn) sendFileFrom(src io.Reader) (n int64, handled bool, err error) {
	switch r := src.(type) {
	case *io.SectionReader:
		ra, base, size := r.Outer()
		f, ok := ra.(*os.File)
		if !ok {
			return 0, false, nil
		}
		pos, _ := r.Seek(0, io.SeekCurrent)
		n, handled, err = c.sendFile(f, base+pos, size-pos)
		r.Seek(n, io.SeekCurrent)
	case *io.LimitedReader:
		f, ok := r.R.(*os.File)
		if !ok {
			return 0, false, nil
		}
		off, serr := f.Seek(0, io.SeekCurrent)
		if serr != nil {
			return 0, false, nil
		}
		n, handled, err = c.sendFile(f, off, r.N)
		r.N -= n
		if _, serr := f.Seek(off+n, io.SeekStart); serr != nil && err == nil {
			err = serr
		}
	}
	return n, handled, err
}

// sendFile sends n bytes of f from off to the connection with
// sendfile(2). handled is false when nothing was sent because sendfile
// cannot take f: the caller then copies.
//
// On a non-blocking socket sendfile waits only to read the disk: it
// copies what the socket buffer takes and returns. So a range that is
// all in the page cache (cacheVerdicts) goes by a raw system call that
// keeps its P (rawio.go), and any other the blocking way, since a disk
// read may take milliseconds.
//
// The state of the call lives in c.sf and the callbacks are bound to c
// once (sockCalls), so a call allocates nothing but f's RawConn: as
// closures, the callbacks and the variables they shared cost seven heap
// allocations per response.
func (c *conn) sendFile(f *os.File, off, n int64) (written int64, handled bool, err error) {
	if c.raw == nil || n <= 0 {
		return 0, false, nil
	}
	src, err := f.SyscallConn()
	if err != nil {
		return 0, false, nil
	}
	calls := c.sockCalls()
	c.sf = sendState{f: f, off: off, n: n}
	cerr := src.Control(calls.sendControl)
	st := c.sf
	c.sf = sendState{}
	if st.unsupported {
		return 0, false, nil
	}
	serr := st.err
	for _, e := range []error{st.werr, cerr} {
		if serr == nil {
			serr = e
		}
	}
	if serr != nil {
		serr = &net.OpError{Op: "sendfile", Net: "tcp", Source: c.rwc.LocalAddr(), Addr: c.rwc.RemoteAddr(), Err: serr}
	}
	return st.written, true, serr
}

// sendState is a sendFile call in progress.
type sendState struct {
	f           *os.File
	in          int // f's descriptor, inside Control
	off, n      int64
	written     int64
	err, werr   error
	unsupported bool
}

// sendControl runs inside f's RawConn.Control: it sends on the socket.
func (c *conn) sendControl(in uintptr) {
	c.sf.in = int(in)
	c.sf.werr = c.raw.Write(c.calls.sendWrite)
}

// sendWrite runs inside the socket's RawConn.Write: it sends until done,
// or returns false to wait for the socket to take more.
func (c *conn) sendWrite(out uintptr) bool {
	st := &c.sf
	for st.n > 0 {
		chunk := min(st.n, maxSendfile)
		m, errno := sendfile(int(out), st.in, &st.off, int(chunk), c.s.inCache.cached(st.f, st.in, st.off, chunk))
		switch {
		case m > 0:
			st.written += int64(m)
			st.n -= int64(m)
			c.res.sent(int64(m))
		case errno == 0:
			return true // the file ends before n: the caller sees the short count
		case errno == syscall.EINTR:
		case errno == syscall.EAGAIN:
			return false // wait until the socket takes more
		case st.written == 0 && (errno == syscall.EINVAL || errno == syscall.ENOSYS || errno == syscall.EOPNOTSUPP):
			st.unsupported = true
			return true
		default:
			st.err = os.NewSyscallError("sendfile", errno)
			return true
		}
	}
	return true
}

// sendfile is sendfile(2) from in at *off to out, raw when it cannot
// block (see sendFile).
func sendfile(out, in int, off *int64, n int, raw bool) (int, syscall.Errno) {
	call := syscall.Syscall6
	if raw {
		call = syscall.RawSyscall6
	}
	r, _, errno := call(syscall.SYS_SENDFILE, uintptr(out), uintptr(in), uintptr(unsafe.Pointer(off)), uintptr(n), 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(r), 0
}

// cacheVerdicts remembers which 2 MiB blocks of which files cachestat(2)
// found wholly in the page cache, for the next verdictUses sends that
// touch them: asking the kernel before every sendfile was a system call
// per request (5% of the appliance's CPU on 64 KiB ranges), and hot
// content stays cached. A verdict can go stale (the pages evicted since);
// a sendfile then reads the disk holding its P, as the first send after
// eviction would have without it, and the verdict is renewed within
// verdictUses sends. A block that is not wholly cached (the end of its
// file, or a part nobody read yet) is remembered as such for as long, and
// its ranges are asked about one by one, as before. Files are known
// by name, not descriptor: a server keeps several descriptors of a hot
// file open (internal/edge's descriptor cache), and they share its pages.
type cacheVerdicts struct {
	// Each slot holds a 48-bit hash of (file name, block), a bit set
	// when the block is not wholly cached, and 15 bits of use count; a
	// collision of two hashes only costs a wrong guess.
	slots [1024]atomic.Uint64
}

const verdictPartial = 1 << 15

var verdictSeed = maphash.MakeSeed()

const (
	verdictBlockShift = 21
	verdictUses       = 64
)

// cached reports whether n bytes of f (descriptor fd) at off are in the
// page cache, as far as the verdicts or the kernel know.
func (v *cacheVerdicts) cached(f *os.File, fd int, off, n int64) bool {
	if n <= 0 {
		return true
	}
	first, last := off>>verdictBlockShift, (off+n-1)>>verdictBlockShift
	if last-first > 1 {
		return pageCached(fd, off, n)
	}
	for b := first; b <= last; b++ {
		if !v.block(f, fd, b) {
			return pageCached(fd, off, n)
		}
	}
	return true
}

// block reports whether block b of f is known to be wholly cached.
func (v *cacheVerdicts) block(f *os.File, fd int, b int64) bool {
	key := maphash.Comparable(verdictSeed, verdictID{f.Name(), b}) >> 16
	slot := &v.slots[key%uint64(len(v.slots))]
	if x := slot.Load(); x>>16 == key && x&(verdictPartial-1) < verdictUses {
		slot.Add(1)
		return x&verdictPartial == 0
	}
	if !pageCached(fd, b<<verdictBlockShift, 1<<verdictBlockShift) {
		slot.Store(key<<16 | verdictPartial)
		return false
	}
	slot.Store(key << 16)
	return true
}

// verdictID names a block of a file.
type verdictID struct {
	name  string
	block int64
}

// pageCached reports whether every page of n bytes of fd at off is in
// the page cache; false when the kernel cannot tell (cachestat(2) is
// Linux 6.5 and later).
func pageCached(fd int, off, n int64) bool {
	var st unix.Cachestat_t
	r := unix.CachestatRange{Off: uint64(off), Len: uint64(n)}
	if _, _, e := syscall.RawSyscall6(unix.SYS_CACHESTAT, uintptr(fd), uintptr(unsafe.Pointer(&r)), uintptr(unsafe.Pointer(&st)), 0, 0, 0); e != 0 {
		return false
	}
	page := int64(os.Getpagesize())
	return st.Cache >= uint64((off+n-1)/page-off/page+1)
}
