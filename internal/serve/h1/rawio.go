package h1

// The plain-HTTP server reads and writes its sockets with raw system
// calls. Go enters every read, write and sendfile as a call that may
// block: it marks the P as in a system call, and its monitor thread,
// woken by that, polls every 20 us and hands a P whose call is still
// running to another thread, which the caller must then win back. On a
// non-blocking socket these calls never wait (they return EAGAIN, and
// the goroutine then parks in the poller as before), so they are made
// raw and keep their P. Under make bench-edge's 2 MiB load that took the
// monitor from 7.6% of the appliance's CPU (perf: mostly usleep) to
// 0.3%, and a 64 KiB request from 24-29 to 23-27 us of CPU.

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// rawRead reads the socket fd; errWouldBlock when it has nothing.
func rawRead(fd int, p []byte) (int, error) {
	for {
		n, err := rawSys(syscall.SYS_READ, fd, p)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return 0, errWouldBlock
		case err != nil:
			return 0, &net.OpError{Op: "read", Net: "tcp", Err: err}
		case n == 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

// rawSys makes read(2) or write(2) on a non-blocking socket as a raw
// system call (see the top of this file).
func rawSys(trap uintptr, fd int, p []byte) (int, error) {
	var ptr unsafe.Pointer
	if len(p) > 0 {
		ptr = unsafe.Pointer(&p[0])
	}
	r, _, e := syscall.RawSyscall(trap, uintptr(fd), uintptr(ptr), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// rawWriter writes to the connection's socket with rawSys.
type rawWriter struct{ c *conn }

func (w rawWriter) Write(p []byte) (int, error) {
	c := w.c
	c.wr = writeState{p: p}
	err := c.raw.Write(c.sockCalls().write)
	n, serr := c.wr.n, c.wr.err
	c.wr = writeState{}
	if serr == nil {
		serr = err
	}
	if serr != nil {
		serr = &net.OpError{Op: "write", Net: "tcp", Source: c.rwc.LocalAddr(), Addr: c.rwc.RemoteAddr(), Err: serr}
	}
	return n, serr
}

// writeState is a rawWriter.Write in progress.
type writeState struct {
	p   []byte
	n   int
	err error
}

// rawWrite runs inside the socket's RawConn.Write: it writes c.wr.p, or
// returns false to wait for the socket to take more.
func (c *conn) rawWrite(fd uintptr) bool {
	st := &c.wr
	for st.n < len(st.p) {
		m, e := rawSys(syscall.SYS_WRITE, int(fd), st.p[st.n:])
		switch {
		case m > 0:
			st.n += m
		case e == syscall.EINTR:
		case e == syscall.EAGAIN:
			return false
		default:
			st.err = os.NewSyscallError("write", e)
			return true
		}
	}
	return true
}

// sockCalls are a connection's RawConn callbacks (sendFile, rawWriter,
// await), bound to it once: their state is in the conn (sf, wr, awaitErr),
// so a call allocates nothing, where a closure per call (and the
// variables it shares with its caller) cost about ten heap allocations
// per response.
type sockCalls struct {
	sendControl func(uintptr)
	sendWrite   func(uintptr) bool
	write       func(uintptr) bool
	await       func(uintptr) bool
}

func (c *conn) sockCalls() *sockCalls {
	if c.calls == nil {
		c.calls = &sockCalls{sendControl: c.sendControl, sendWrite: c.sendWrite, write: c.rawWrite, await: c.awaitRead}
	}
	return c.calls
}
