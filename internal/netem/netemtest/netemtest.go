// Package netemtest provides a packet path for tests: started, skipped
// with a reason when the machine cannot (not root, no iproute2) or failed
// instead under OCDN_REQUIRE_EXTERNAL=1, and always removed at the end.
package netemtest

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"testing"

	"github.com/ocdn/ocdn/internal/netem"
	"github.com/ocdn/ocdn/internal/tcpinfo"
)

// NewPath starts a netem.Path for t and closes it in t.Cleanup, checking
// that its namespaces are gone afterwards.
func NewPath(t testing.TB, cfg netem.PathConfig) *netem.Path {
	t.Helper()
	// A test binary killed by its timeout leaves its namespaces behind.
	if err := netem.RemoveStale(); err != nil {
		t.Logf("removing stale paths: %v", err)
	}
	p, err := netem.NewPath(cfg)
	if err != nil {
		if errors.Is(err, netem.ErrNeedsRoot) || errors.Is(err, netem.ErrNoIP) {
			if os.Getenv("OCDN_REQUIRE_EXTERNAL") == "1" {
				t.Fatalf("packet path: %v", err)
			}
			t.Skipf("packet path: %v; set OCDN_REQUIRE_EXTERNAL=1 to make this a failure", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("closing the packet path: %v", err)
		}
		for _, ns := range []string{p.ClientNetns(), p.ServerNetns()} {
			if _, err := os.Stat("/run/netns/" + ns); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("namespace %s still exists after Close (stat: %v)", ns, err)
			}
		}
	})
	return p
}

// Server is what Download's server does besides sending.
type Server struct {
	// Accepted runs on the server's connection before it sends.
	Accepted func(c net.Conn)
	// Wrote runs after each write of at most 16 KiB.
	Wrote func(c net.Conn)
	// Done runs once the client has read everything and half-closed
	// (so every byte was acknowledged), before the server closes.
	Done func(c net.Conn) error
}

// Download serves size bytes from addr on p's server side, its socket
// using congestion control cc, to a client on p's client side bound to
// src, and returns when the client has read them and the server is done.
func Download(t testing.TB, p *netem.Path, cc, addr string, src netip.Addr, size int64, s Server) {
	t.Helper()
	lc := net.ListenConfig{Control: tcpinfo.ControlCongestion(cc)}
	var ln net.Listener
	if err := p.InServer(func() (err error) { ln, err = lc.Listen(context.Background(), "tcp", addr); return err }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	errc := make(chan error, 1)
	go func() { errc <- serveOne(ln, size, s) }()
	c, err := p.Dialer(&net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))})(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if n, err := io.Copy(io.Discard, io.LimitReader(c, size)); err != nil || n != size {
		t.Fatalf("client read %d of %d bytes: %v", n, size, err)
	}
	c.(*net.TCPConn).CloseWrite()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func serveOne(ln net.Listener, size int64, s Server) error {
	c, err := ln.Accept()
	if err != nil {
		return err
	}
	defer c.Close()
	if s.Accepted != nil {
		s.Accepted(c)
	}
	buf := make([]byte, 16<<10)
	for sent := int64(0); sent < size; {
		n, err := c.Write(buf[:min(int64(len(buf)), size-sent)])
		if err != nil {
			return err
		}
		sent += int64(n)
		if s.Wrote != nil {
			s.Wrote(c)
		}
	}
	io.Copy(io.Discard, c) // until the client's half-close
	if s.Done != nil {
		return s.Done(c)
	}
	return nil
}
