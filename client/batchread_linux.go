//go:build linux && (amd64 || arm64)

package client

import (
	"net"
	"net/netip"
	"sync"
	"syscall"
	"unsafe"

	"github.com/pion/transport/v5"

	"github.com/cau-project/cau/internal/udpbuf"
)

// readBatch is how many datagrams one recvmmsg call may take off a socket.
const readBatch = 8

// batchNet opens the connection's UDP sockets as batchConns.
type batchNet struct{ udpbuf.Net }

// ListenUDP implements transport.Net.
func (n *batchNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := n.Net.ListenUDP(network, laddr)
	if err != nil {
		return nil, err
	}
	u, ok := c.(*net.UDPConn)
	if !ok {
		return c, nil
	}
	raw, err := u.SyscallConn()
	if err != nil {
		return c, nil //nolint:nilerr // unbatched, as before
	}
	return &batchConn{UDPConn: u, raw: raw}, nil
}

// mmsghdr is struct mmsghdr of <sys/socket.h> on 64-bit Linux.
type mmsghdr struct {
	hdr syscall.Msghdr
	n   uint32
	_   [4]byte
}

// batchConn is a UDP socket whose reads take up to readBatch queued datagrams with one
// recvmmsg system call and hand them out one by one. pion's ICE reads each datagram with
// a recvmsg of its own: 20–25% of the load tester's CPU at 1 × 150 and in a join storm,
// most of it the system call's fixed cost on this kind of machine (issue 11). It is still
// the endpoint's one socket; only the reading is batched. pion's ICE reads through
// ReadFromAddrPort (ice.AddrPortReaderWriter), which a wrapper other than *net.UDPConn
// opts into, from one goroutine per socket; mu keeps other readers in order.
type batchConn struct {
	*net.UDPConn
	raw syscall.RawConn

	mu    sync.Mutex // guards everything below
	init  bool
	hdrs  [readBatch]mmsghdr
	iovs  [readBatch]syscall.Iovec
	names [readBatch]syscall.RawSockaddrAny
	bufs  [readBatch][1500]byte
	n     int // datagrams in the batch
	next  int // the next to hand out
}

// ReadFromAddrPort implements ice.AddrPortReaderWriter: the next datagram of the batch,
// reading a batch when it is used up.
func (c *batchConn) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.next >= c.n {
		if err := c.fill(); err != nil {
			return 0, netip.AddrPort{}, err
		}
	}
	i := c.next
	c.next++
	n := copy(b, c.bufs[i][:c.hdrs[i].n])
	return n, sockaddrPort(&c.names[i]), nil
}

// WriteToAddrPort implements ice.AddrPortReaderWriter.
func (c *batchConn) WriteToAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	return c.WriteToUDPAddrPort(b, addr)
}

// ReadFrom reads through the batch too, so that no datagram overtakes a batched one.
func (c *batchConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, ap, err := c.ReadFromAddrPort(b)
	if err != nil {
		return n, nil, err
	}
	return n, net.UDPAddrFromAddrPort(ap), nil
}

// ReadFromUDP reads through the batch too.
func (c *batchConn) ReadFromUDP(b []byte) (int, *net.UDPAddr, error) {
	n, ap, err := c.ReadFromAddrPort(b)
	if err != nil {
		return n, nil, err
	}
	return n, net.UDPAddrFromAddrPort(ap), nil
}

// fill reads what is queued, at least one datagram (waiting for it in the runtime's
// poller, so deadlines and Close apply), at most readBatch. Caller holds mu.
func (c *batchConn) fill() error {
	if !c.init {
		c.init = true
		for i := range c.hdrs {
			c.iovs[i].Base = &c.bufs[i][0]
			c.iovs[i].SetLen(len(c.bufs[i]))
			c.hdrs[i].hdr.Iov = &c.iovs[i]
			c.hdrs[i].hdr.Iovlen = 1
			c.hdrs[i].hdr.Name = (*byte)(unsafe.Pointer(&c.names[i]))
		}
	}
	for i := range c.hdrs {
		// The kernel writes the address's length back: give each call the full room.
		c.hdrs[i].hdr.Namelen = syscall.SizeofSockaddrAny
	}
	var got int
	var serr syscall.Errno
	err := c.raw.Read(func(fd uintptr) bool {
		r, _, e := syscall.Syscall6(syscall.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&c.hdrs[0])), readBatch,
			syscall.MSG_DONTWAIT, 0, 0)
		for e == syscall.EINTR { // a signal (the runtime's preemption): as net's reads, again
			r, _, e = syscall.Syscall6(syscall.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&c.hdrs[0])), readBatch,
				syscall.MSG_DONTWAIT, 0, 0)
		}
		if e == syscall.EAGAIN {
			return false // nothing queued: wait in the poller
		}
		got, serr = int(r), e
		return true
	})
	if err != nil {
		return err
	}
	if serr != 0 {
		return &net.OpError{Op: "read", Net: "udp", Source: c.LocalAddr(), Err: serr}
	}
	c.n, c.next = got, 0
	if got == 0 {
		return &net.OpError{Op: "read", Net: "udp", Source: c.LocalAddr(), Err: syscall.EAGAIN}
	}
	return nil
}

// sockaddrPort decodes a sender's address as the kernel wrote it.
func sockaddrPort(sa *syscall.RawSockaddrAny) netip.AddrPort {
	switch sa.Addr.Family {
	case syscall.AF_INET:
		a := (*syscall.RawSockaddrInet4)(unsafe.Pointer(sa))
		p := (*[2]byte)(unsafe.Pointer(&a.Port))
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(p[0])<<8|uint16(p[1]))
	case syscall.AF_INET6:
		a := (*syscall.RawSockaddrInet6)(unsafe.Pointer(sa))
		p := (*[2]byte)(unsafe.Pointer(&a.Port))
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr).Unmap(), uint16(p[0])<<8|uint16(p[1]))
	}
	return netip.AddrPort{}
}
