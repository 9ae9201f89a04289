package daemon

import (
	"context"
	"fmt"
	"net"

	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/netem"
)

// listenNetns listens on every address inside every named namespace
// (listen_netns): the socket belongs to the namespace for its life, the
// rest of the daemon stays in its own. On error nothing stays open.
func listenNetns(names []string, addrs config.AddrList) ([]net.Listener, error) {
	var lns []net.Listener
	for _, ns := range names {
		for _, a := range addrs {
			ln, err := netem.ListenIn(context.Background(), ns, "tcp", a.AddrPort.String())
			if err != nil {
				closeAll(lns)
				return nil, fmt.Errorf("listen_netns %s: listen %s: %w", ns, a.AddrPort, err)
			}
			lns = append(lns, ln)
		}
	}
	return lns, nil
}
