package netem

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"

	"golang.org/x/sys/unix"
)

// ErrNeedsRoot is returned when packet-level emulation is asked of a
// process that cannot create network namespaces and TUN devices.
var ErrNeedsRoot = errors.New("netem: packet-level emulation needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN)")

// netnsDir is where `ip netns add` binds named namespaces; other
// processes (`ip netns exec NAME …`) find them there.
const netnsDir = "/run/netns/"

// runIP is how set-up and tear-down run ip; tests replace it to fail a
// chosen step.
var runIP = ip

// ip runs iproute2's ip with args; its output is in the error.
func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("netem: ip %s: %w: %s", joinArgs(args), err, bytes.TrimSpace(out))
	}
	return nil
}

func joinArgs(a []string) string {
	var b bytes.Buffer
	for i, s := range a {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s)
	}
	return b.String()
}

// InNetns runs fn on an OS thread that has entered the named network
// namespace (one made by `ip netns add`, or a Path's). Sockets fn opens
// belong to that namespace for their whole life, whatever thread later
// uses them: this is how one process listens or dials on both sides of a
// Path while its other sockets stay where they are.
func InNetns(name string, fn func() error) error {
	errc := make(chan error, 1)
	// A fresh goroutine, so the caller's thread never changes namespace;
	// if returning to the original namespace fails, the goroutine exits
	// still locked and the runtime discards the tainted thread.
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("netem: opening this thread's namespace: %w", err)
			return
		}
		defer unix.Close(orig)
		target, err := unix.Open(netnsDir+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("netem: opening namespace %q: %w", name, err)
			return
		}
		defer unix.Close(target)
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("netem: entering namespace %q: %w", name, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("netem: leaving namespace %q: %w", name, err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// ListenIn listens on addr inside the named namespace.
func ListenIn(ctx context.Context, netns, network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := InNetns(netns, func() (err error) {
		ln, err = (&net.ListenConfig{}).Listen(ctx, network, addr)
		return err
	})
	return ln, err
}

// DialerIn returns a dial function whose sockets are made inside the
// named namespace; base sets the local address (a client's source in its
// ISP's prefix) and the rest (nil is a zero net.Dialer).
func DialerIn(netns string, base *net.Dialer) DialFunc {
	if base == nil {
		base = &net.Dialer{}
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := InNetns(netns, func() (err error) {
			c, err = base.DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
}

// writeSysctl sets a sysctl of the current thread's namespace (its
// /proc/sys/net is that namespace's).
func writeSysctl(key, value string) error {
	p := "/proc/sys/" + string(bytes.ReplaceAll([]byte(key), []byte("."), []byte("/")))
	if err := os.WriteFile(p, []byte(value), 0); err != nil {
		return fmt.Errorf("netem: sysctl %s=%s: %w", key, value, err)
	}
	return nil
}

// openTUN makes a TUN device named name in the current thread's
// namespace. Reads return one IP packet each; the file is non-blocking
// under the runtime poller, so Close unblocks a pending Read.
func openTUN(name string) (*os.File, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("netem: opening /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netem: TUN name %q: %w", name, err)
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netem: creating TUN %q: %w", name, err)
	}
	return os.NewFile(uintptr(fd), "tun:"+name), nil
}
