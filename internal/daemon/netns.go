package daemon

import (
	"context"
	"fmt"
	"net"

	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/netem"
)

// listenNetns listens inside every namespace of listen_netns, on its
// addresses or else on def: the socket belongs to the namespace for its
// life, the rest of the daemon stays in its own. On error nothing stays
// open.
func listenNetns(list []config.NetnsListen, def config.AddrList) ([]net.Listener, error) {
	var lns []net.Listener
	for _, ns := range list {
		for _, a := range ns.Addrs(def) {
			ln, err := netem.ListenIn(context.Background(), ns.Name, "tcp", a.AddrPort.String())
			if err != nil {
				closeAll(lns)
				return nil, fmt.Errorf("listen_netns %s: listen %s: %w", ns.Name, a.AddrPort, err)
			}
			lns = append(lns, ln)
		}
	}
	return lns, nil
}
