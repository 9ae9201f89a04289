package tcpinfo

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrUnavailable is returned for a congestion control the kernel lacks.
var ErrUnavailable = errors.New("congestion control not available")

// availablePath is where the kernel lists the algorithms a socket may
// choose without privilege beyond loading.
const availablePath = "/proc/sys/net/ipv4/tcp_available_congestion_control"

// Available returns the congestion controls this kernel offers.
func Available() ([]string, error) {
	b, err := os.ReadFile(availablePath)
	if err != nil {
		return nil, fmt.Errorf("tcpinfo: reading the available congestion controls: %w", err)
	}
	return parseAvailable(string(b)), nil
}

// parseAvailable splits the kernel's space-separated list.
func parseAvailable(s string) []string {
	names := strings.Fields(s)
	slices.Sort(names)
	return slices.Compact(names)
}

// CheckCongestion returns nil when the kernel offers name, and otherwise
// an error wrapping ErrUnavailable that names the ones it does offer: a
// daemon calls it on its configuration at start.
func CheckCongestion(name string) error {
	avail, err := Available()
	if err != nil {
		return err
	}
	return checkIn(name, avail)
}

func checkIn(name string, avail []string) error {
	if slices.Contains(avail, name) {
		return nil
	}
	return fmt.Errorf("tcpinfo: %w: %q (this kernel offers %s)", ErrUnavailable, name, strings.Join(avail, ", "))
}

// SetCongestion sets c's congestion control. Set it before the
// connection sends much: an algorithm starts from the connection's
// current state. A name the kernel lacks is refused with ErrUnavailable
// naming the available ones.
func SetCongestion(c syscall.Conn, name string) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("tcpinfo: %w", err)
	}
	var serr error
	if err := raw.Control(func(fd uintptr) { serr = setCongestionFD(int(fd), name) }); err != nil {
		return fmt.Errorf("tcpinfo: %w", err)
	}
	return serr
}

// Congestion returns c's congestion control.
func Congestion(c syscall.Conn) (string, error) {
	s, err := NewSampler(c)
	if err != nil {
		return "", err
	}
	var r Record
	if err := s.Sample(&r); err != nil {
		return "", err
	}
	return r.CongestionControl, nil
}

// ControlCongestion returns a net.Dialer / net.ListenConfig Control
// function that sets name on every socket they make; accepted
// connections inherit a listener's setting.
func ControlCongestion(name string) func(network, address string, c syscall.RawConn) error {
	return func(network, address string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) { serr = setCongestionFD(int(fd), name) }); err != nil {
			return err
		}
		return serr
	}
}

func setCongestionFD(fd int, name string) error {
	err := unix.SetsockoptString(fd, unix.IPPROTO_TCP, unix.TCP_CONGESTION, name)
	if err == nil {
		return nil
	}
	// ENOENT: no such algorithm; EPERM: known but not in the allowed
	// list for unprivileged sockets. Both mean "not available here".
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EPERM) {
		avail, aerr := Available()
		if aerr == nil {
			if cerr := checkIn(name, avail); cerr != nil {
				return cerr
			}
		}
		// Available, yet refused: not in
		// net.ipv4.tcp_allowed_congestion_control for this process.
	}
	return fmt.Errorf("tcpinfo: setting congestion control %q: %w", name, err)
}
