package socks5

import (
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/proxy"
)

// start runs a server whose dials go through dial (nil: a plain dialer)
// and returns its address; the server stops with the test.
func start(t *testing.T, dial DialFunc) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	s := New(ln, dial, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	})
	if !strings.HasPrefix(s.URL(), "socks5://127.0.0.1:") {
		t.Errorf("URL = %q", s.URL())
	}
	return ln.Addr().String()
}

func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); defer c.Close(); io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String()
}

// TestRelaysThroughTheDialFunction: a SOCKS5 client (x/net/proxy, an
// independent implementation) reaches an echo server through the
// caller's dial function, which sees the target, and bytes come back
// unchanged in both directions, half-close included.
func TestRelaysThroughTheDialFunction(t *testing.T) {
	echo := echoServer(t)
	var mu sync.Mutex
	var dialed []string
	addr := start(t, func(ctx context.Context, network, a string) (net.Conn, error) {
		mu.Lock()
		dialed = append(dialed, a)
		mu.Unlock()
		return (&net.Dialer{}).DialContext(ctx, network, a)
	})
	d, err := proxy.SOCKS5("tcp", addr, nil, &net.Dialer{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := d.Dial("tcp", echo)
	if err != nil {
		t.Fatalf("dial through the proxy: %v", err)
	}
	msg := bytes.Repeat([]byte("ocdn "), 100_000)
	go func() {
		c.Write(msg)
		c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(c)
	c.Close()
	if err != nil || !bytes.Equal(got, msg) {
		t.Errorf("echo through the proxy: %d of %d bytes, %v", len(got), len(msg), err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(dialed) != 1 || dialed[0] != echo {
		t.Errorf("dial function saw %v, want [%s]", dialed, echo)
	}
}

// TestRefusedTargetIsReported: a target that refuses (a killed
// appliance) is answered with "connection refused", so the browser
// fails the request at once.
func TestRefusedTargetIsReported(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	addr := start(t, nil)
	d, _ := proxy.SOCKS5("tcp", addr, nil, &net.Dialer{})
	_, err = d.Dial("tcp", closed)
	if err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("dial of a closed port through the proxy = %v, want connection refused", err)
	}
}

func TestRefusesWhatItDoesNotSpeak(t *testing.T) {
	addr := start(t, nil)
	for _, tc := range []struct {
		name  string
		send  []byte
		reply []byte
	}{
		{"socks4", []byte{4, 1, 0, 80, 127, 0, 0, 1, 0}, nil},
		{"authentication only", []byte{5, 1, 2}, []byte{5, 0xFF}},
		{"bind", []byte{5, 1, 0, 5, 2, 0, 1, 127, 0, 0, 1, 0, 80}, []byte{5, 0, 5, 7}},
		{"address type", []byte{5, 1, 0, 5, 1, 0, 9}, []byte{5, 0, 5, 8}},
	} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Write(tc.send)
		got, _ := io.ReadAll(c)
		c.Close()
		if len(got) < len(tc.reply) || !bytes.Equal(got[:len(tc.reply)], tc.reply) {
			t.Errorf("%s: reply %v, want it to start %v and the connection closed", tc.name, got, tc.reply)
		}
	}
}

// FuzzReadRequest: any bytes give a host:port or an error, never a
// panic, and a parsed request names a port.
func FuzzReadRequest(f *testing.F) {
	f.Add([]byte{5, 1, 0, 1, 127, 1, 0, 1, 0x46, 0xA0})
	f.Add([]byte{5, 1, 0, 3, 9, 'l', 'o', 'c', 'a', 'l', 'h', 'o', 's', 't', 0, 80})
	f.Add([]byte{5, 1, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 187})
	f.Add([]byte{5, 2, 0, 3, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		addr, err := readRequest(bytes.NewReader(b))
		if err != nil {
			if addr != "" {
				t.Fatalf("readRequest = %q with error %v", addr, err)
			}
			return
		}
		if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
			t.Fatalf("readRequest = %q, not host:port (%v)", addr, err)
		}
	})
}
