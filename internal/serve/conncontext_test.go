package serve

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"testing"
)

// markedConn is a listener's own connection type, as the transport
// recorder's is.
type markedConn struct{ net.Conn }

type markedListener struct{ net.Listener }

func (l markedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &markedConn{c}, nil
}

type markKey struct{}

// TestConnContextGetsTheAcceptedConn: every engine, HTTP/2 included,
// hands Options.ConnContext the connection the listener returned, not
// the TLS connection over it.
func TestConnContextGetsTheAcceptedConn(t *testing.T) {
	cert, err := SelfSigned("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ := r.Context().Value(markKey{}).(string)
		io.WriteString(w, got)
	})
	connContext := func(ctx context.Context, c net.Conn) context.Context {
		mark := "not the accepted connection"
		if _, ok := c.(*markedConn); ok {
			mark = "accepted"
		}
		return context.WithValue(ctx, markKey{}, mark)
	}
	tlsConf := &tls.Config{Certificates: []tls.Certificate{cert}}
	for _, tc := range []struct {
		name      string
		tls       *tls.Config
		netHTTP   bool
		h2        bool
		wantMajor int
	}{
		{"h1", nil, false, false, 1},
		{"net/http", nil, true, false, 1},
		{"tls", tlsConf, false, false, 1},
		{"tls h2", tlsConf, false, true, 2},
		{"tls net/http", tlsConf, true, false, 1},
		{"tls net/http h2", tlsConf, true, true, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			s := New(markedListener{ln}, h, Options{TLS: tc.tls, NetHTTP: tc.netHTTP, ConnContext: connContext})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- s.Run(ctx) }()
			defer func() { cancel(); s.Kill(); <-done }()
			tr := &http.Transport{TLSClientConfig: trusting(cert), ForceAttemptHTTP2: tc.h2}
			if !tc.h2 {
				tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
			}
			defer tr.CloseIdleConnections()
			resp, err := (&http.Client{Transport: tr}).Get(s.URL() + "/")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.ProtoMajor != tc.wantMajor || string(b) != "accepted" {
				t.Errorf("HTTP/%d, ConnContext got %q; want HTTP/%d and the accepted connection", resp.ProtoMajor, b, tc.wantMajor)
			}
		})
	}
}
