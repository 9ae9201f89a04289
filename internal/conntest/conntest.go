// Package conntest provides accept loops for tests: every connection a
// listener accepts until the test ends goes to a handler or a channel,
// and at the end the listener is closed and the loop's goroutine waited
// for, so no test leaves one behind.
package conntest

import (
	"net"
	"testing"
)

// Serve calls handle with each connection ln accepts, one after another
// in the accept loop (a handler that takes long starts a goroutine of its
// own), until the test ends; then it closes ln and waits for the loop.
func Serve(t testing.TB, ln net.Listener, handle func(net.Conn)) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			handle(c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
}

// Accept hands the connections ln accepts until the test ends to the
// returned channel (up to 16 not yet taken); at the end it closes ln,
// waits for the loop and closes the connections nobody took.
func Accept(t testing.TB, ln net.Listener) <-chan net.Conn {
	accepted := make(chan net.Conn, 16)
	// Registered first, so it runs after Serve's clean-up has stopped
	// the loop that sends.
	t.Cleanup(func() {
		close(accepted)
		for c := range accepted {
			c.Close()
		}
	})
	Serve(t, ln, func(c net.Conn) { accepted <- c })
	return accepted
}
