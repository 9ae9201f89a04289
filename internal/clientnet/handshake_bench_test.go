package clientnet

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"testing"

	"github.com/ocdn/ocdn/internal/conntest"
)

// BenchmarkHandshake measures a full TLS handshake (client and server in
// this process, over loopback) with an ocdn pki certificate: what every
// new client connection to an appliance costs, by key exchange, and a
// resumed one. Compare:
//
//	go test -run - -bench Handshake ./internal/clientnet/
func BenchmarkHandshake(b *testing.B) {
	ca, pair, name := applianceCert(b)
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	for _, tc := range []struct {
		name    string
		curves  []tls.CurveID
		resumed bool
	}{{"default", nil, false}, {"x25519", []tls.CurveID{tls.X25519}, false}, {"default-resumed", nil, true}} {
		b.Run(tc.name, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			srv := &tls.Config{Certificates: []tls.Certificate{pair}}
			conntest.Serve(b, ln, func(c net.Conn) {
				tc := tls.Server(c, srv)
				tc.Handshake()
				tc.Close()
			})
			cli := &tls.Config{RootCAs: roots, ServerName: name, CurvePreferences: tc.curves}
			if tc.resumed {
				// As clientnet's clients do: later connections resume.
				cli.ClientSessionCache = tls.NewLRUClientSessionCache(1)
			}
			for b.Loop() {
				c, err := tls.Dial("tcp", ln.Addr().String(), cli)
				if err != nil {
					b.Fatal(err)
				}
				// TLS 1.3 tickets arrive after the handshake: read
				// until the server closes, so the next dial can resume.
				c.Read(make([]byte, 1))
				c.Close()
			}
		})
	}
}
