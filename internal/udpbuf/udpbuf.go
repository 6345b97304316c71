// Package udpbuf gives UDP sockets large kernel buffers. A WebRTC endpoint's socket left
// at the kernel's default (net.core.rmem_default, ~208 KiB: a hundred-odd full datagrams)
// overflows whenever its process is not scheduled for a second or so, and the kernel
// drops what no link lost: the load tester's 258 endpoints on a busy 2-core box lost up
// to 70k datagrams a join storm that way, ICE checks and DTLS flights among them, each
// costing a resend (issue 11).
package udpbuf

import (
	"errors"
	"fmt"
	"net"
	"syscall"

	"github.com/pion/transport/v5"
)

// Size asks for bytes of receive and of send buffer on c and returns what the kernel
// granted (Sizes). It asks with SO_RCVBUFFORCE and SO_SNDBUFFORCE first, which a root
// process (CAP_NET_ADMIN) may use beyond net.core.rmem_max and wmem_max, then, refused,
// with SO_RCVBUF and SO_SNDBUF, which the kernel caps at those limits.
func Size(c syscall.Conn, bytes int) (recv, send int, err error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, 0, fmt.Errorf("socket: %w", err)
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		if serr = set(int(fd), syscall.SO_RCVBUFFORCE, syscall.SO_RCVBUF, bytes); serr != nil {
			serr = fmt.Errorf("receive buffer: %w", serr)
			return
		}
		if serr = set(int(fd), syscall.SO_SNDBUFFORCE, syscall.SO_SNDBUF, bytes); serr != nil {
			serr = fmt.Errorf("send buffer: %w", serr)
		}
	}); err != nil {
		return 0, 0, fmt.Errorf("socket: %w", err)
	}
	if serr != nil {
		return 0, 0, serr
	}
	return Sizes(c)
}

// Sizes returns c's receive and send buffer sizes.
func Sizes(c syscall.Conn) (recv, send int, err error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, 0, fmt.Errorf("socket: %w", err)
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		// Linux reports twice the size asked for (the doubled value holds its bookkeeping).
		if recv, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF); serr != nil {
			return
		}
		send, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF)
	}); err != nil {
		return 0, 0, fmt.Errorf("socket: %w", err)
	}
	if serr != nil {
		return 0, 0, fmt.Errorf("buffer sizes: %w", serr)
	}
	return recv / 2, send / 2, nil
}

// set sets a buffer option with force, or with plain when force is not permitted.
func set(fd, force, plain, bytes int) error {
	err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, force, bytes)
	if errors.Is(err, syscall.EPERM) {
		err = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, plain, bytes)
	}
	return err
}

// Net is a network (pion's transport.Net, as SettingEngine.SetNet takes it) whose UDP
// sockets get Bytes of buffer each way. A socket the kernel will not size is still used,
// at its default size: a smaller buffer costs drops under load, not the connection.
type Net struct {
	transport.Net
	Bytes int
}

// ListenUDP implements transport.Net.
func (n *Net) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := net.ListenUDP(network, laddr)
	if err != nil {
		return nil, err
	}
	_, _, _ = Size(c, n.Bytes)
	return c, nil
}
