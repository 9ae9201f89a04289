// Package socks5 provides a SOCKS5 server (RFC 1928: CONNECT, no
// authentication) whose outbound connections are made by a dial function
// the caller gives. The lab puts a browser behind one
// (chromium --proxy-server=socks5://…): the dial function binds a source
// address in an ISP's prefix and wraps every connection to an appliance
// in the emulated link of its site, so the browser is steered as that
// ISP's client and its traffic crosses the links the lab's Go clients
// use. SOCKS keeps connections one to one (an HTTP proxy would pool
// them), so the page's Resource Timing sees each connection's set-up:
// the server answers a CONNECT only once the outbound connection is up.
package socks5

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// DialFunc opens an outbound connection (net.Dialer.DialContext's shape).
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// Server relays the connections of SOCKS5 clients.
type Server struct {
	ln   net.Listener
	dial DialFunc
	log  *slog.Logger

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// HandshakeTimeout bounds a client's greeting and request.
const HandshakeTimeout = 10 * time.Second

// New returns a server accepting on ln; Run serves.
func New(ln net.Listener, dial DialFunc, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{ln: ln, dial: dial, log: log.With("component", "socks5"), conns: map[net.Conn]struct{}{}}
}

// URL is the proxy's address as browsers take it: socks5://host:port.
func (s *Server) URL() string { return "socks5://" + s.ln.Addr().String() }

// Run accepts until ctx ends, then closes the listener and every
// connection and returns once each connection's goroutines have ended.
func (s *Server) Run(ctx context.Context) error {
	stop := context.AfterFunc(ctx, s.close)
	defer stop()
	defer s.wg.Wait()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.close()
			return err
		}
		if !s.track(c) {
			c.Close()
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.untrack(c)
			s.serve(ctx, c)
		}()
	}
}

func (s *Server) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	s.ln.Close()
	for c := range s.conns {
		c.Close()
	}
}

func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	c.Close()
}

// Reply codes (RFC 1928 §6).
const (
	replyOK              = 0
	replyFailure         = 1
	replyNetUnreachable  = 3
	replyHostUnreachable = 4
	replyRefused         = 5
	replyCmdUnsupported  = 7
	replyAddrUnsupported = 8
)

// Errors of a client's handshake.
var (
	ErrVersion     = errors.New("socks5: not SOCKS version 5")
	ErrNoMethod    = errors.New("socks5: the client offers no method without authentication")
	ErrCommand     = errors.New("socks5: only CONNECT is supported")
	ErrAddressType = errors.New("socks5: unknown address type")
)

func (s *Server) serve(ctx context.Context, c net.Conn) {
	c.SetDeadline(time.Now().Add(HandshakeTimeout))
	if err := greet(c); err != nil {
		s.log.Debug("handshake", "client", c.RemoteAddr(), "err", err)
		return
	}
	addr, err := readRequest(c)
	if err != nil {
		code := byte(replyFailure)
		switch {
		case errors.Is(err, ErrCommand):
			code = replyCmdUnsupported
		case errors.Is(err, ErrAddressType):
			code = replyAddrUnsupported
		}
		writeReply(c, code, nil)
		s.log.Debug("request", "client", c.RemoteAddr(), "err", err)
		return
	}
	up, err := s.dial(ctx, "tcp", addr)
	if err != nil {
		writeReply(c, dialReply(err), nil)
		s.log.Debug("dial", "target", addr, "err", err)
		return
	}
	if !s.track(up) {
		up.Close()
		return
	}
	defer s.untrack(up)
	if err := writeReply(c, replyOK, up.LocalAddr()); err != nil {
		return
	}
	c.SetDeadline(time.Time{})
	relay(c, up)
}

// greet reads the method selection and chooses "no authentication".
func greet(rw io.ReadWriter) error {
	var hdr [2]byte
	if _, err := io.ReadFull(rw, hdr[:]); err != nil {
		return err
	}
	if hdr[0] != 5 {
		return ErrVersion
	}
	methods := make([]byte, hdr[1])
	if _, err := io.ReadFull(rw, methods); err != nil {
		return err
	}
	for _, m := range methods {
		if m == 0 {
			_, err := rw.Write([]byte{5, 0})
			return err
		}
	}
	rw.Write([]byte{5, 0xFF})
	return ErrNoMethod
}

// readRequest reads a request and returns its target as host:port.
func readRequest(r io.Reader) (string, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return "", err
	}
	if hdr[0] != 5 {
		return "", ErrVersion
	}
	var host string
	switch hdr[3] {
	case 1, 4:
		b := make([]byte, map[byte]int{1: 4, 4: 16}[hdr[3]])
		if _, err := io.ReadFull(r, b); err != nil {
			return "", err
		}
		a, _ := netip.AddrFromSlice(b)
		host = a.Unmap().String()
	case 3:
		var n [1]byte
		if _, err := io.ReadFull(r, n[:]); err != nil {
			return "", err
		}
		b := make([]byte, n[0])
		if _, err := io.ReadFull(r, b); err != nil {
			return "", err
		}
		if !hostName(b) {
			return "", fmt.Errorf("socks5: %q is not a host name", b)
		}
		host = string(b)
	default:
		return "", ErrAddressType
	}
	var port [2]byte
	if _, err := io.ReadFull(r, port[:]); err != nil {
		return "", err
	}
	if hdr[1] != 1 {
		return "", ErrCommand
	}
	return net.JoinHostPort(host, strconv.Itoa(int(binary.BigEndian.Uint16(port[:])))), nil
}

// hostName reports whether b is a DNS name (letters, digits, '-', '_'
// and dots), the only names passed on to the dial function.
func hostName(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// writeReply answers a request; bound is the outbound connection's local
// address (nil: none).
func writeReply(w io.Writer, code byte, bound net.Addr) error {
	b := []byte{5, code, 0}
	ap := netip.AddrPortFrom(netip.IPv4Unspecified(), 0)
	if ta, ok := bound.(*net.TCPAddr); ok {
		ap = ta.AddrPort()
	}
	if a := ap.Addr().Unmap(); a.Is4() {
		b = append(b, 1)
		b = append(b, a.AsSlice()...)
	} else {
		b = append(b, 4)
		b = append(b, a.AsSlice()...)
	}
	b = binary.BigEndian.AppendUint16(b, ap.Port())
	_, err := w.Write(b)
	return err
}

// dialReply maps a dial error to a reply code, so the browser reports
// what happened (a killed appliance refuses).
func dialReply(err error) byte {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return replyRefused
	case errors.Is(err, syscall.EHOSTUNREACH):
		return replyHostUnreachable
	case errors.Is(err, syscall.ENETUNREACH):
		return replyNetUnreachable
	}
	return replyFailure
}

// relay copies both ways until both directions end. A side that finishes
// sending half-closes the other; an error (a reset) closes both, so the
// client sees a dead server as one.
func relay(client, up net.Conn) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		pipe(client, up)
	}()
	pipe(up, client)
	<-done
}

// pipe copies src to dst; at src's end it half-closes dst, on an error
// it closes both.
func pipe(dst, src net.Conn) {
	_, err := io.Copy(dst, src)
	if err == nil {
		if cw, ok := dst.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
			return
		}
	}
	dst.Close()
	src.Close()
}
