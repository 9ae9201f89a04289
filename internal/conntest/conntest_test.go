package conntest

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// TestServe: each connection reaches the handler; when the test ends the
// listener is closed.
func TestServe(t *testing.T) {
	ln := listen(t)
	t.Run("inner", func(t *testing.T) {
		got := make(chan net.Conn, 1)
		Serve(t, ln, func(c net.Conn) { got <- c })
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		sc := <-got
		defer sc.Close()
		if sc.RemoteAddr().String() != c.LocalAddr().String() {
			t.Errorf("handler got %s, want the connection from %s", sc.RemoteAddr(), c.LocalAddr())
		}
	})
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after the test = %v, want the listener closed", err)
	}
}

// TestAcceptClosesWhatIsLeft: a connection accepted but never taken from
// the channel is closed when the test ends.
func TestAcceptClosesWhatIsLeft(t *testing.T) {
	ln := listen(t)
	var c net.Conn
	t.Run("inner", func(t *testing.T) {
		acc := Accept(t, ln)
		var err error
		if c, err = net.Dial("tcp", ln.Addr().String()); err != nil {
			t.Fatal(err)
		}
		// Wait (on a condition) until the loop has queued it.
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for deadline := time.Now().Add(10 * time.Second); len(acc) == 0; <-tick.C {
			if time.Now().After(deadline) {
				t.Fatal("the accepted connection never reached the channel")
			}
		}
	})
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read on a connection left in the channel = %v, want it closed by the server", err)
	}
}
