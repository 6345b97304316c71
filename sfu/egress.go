package sfu

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"

	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"

	"github.com/cau-project/cau/internal/udpbuf"
	"github.com/cau-project/cau/sfu/udpbatch"
)

// batchNet is the network the ICE UDP mux listens on: the standard one, except that its
// UDP sockets batch their writes (udpbatch) while a fan-out holds the bridge's group.
type batchNet struct {
	transport.Net
	group *udpbatch.Group
	log   *slog.Logger

	mu    sync.Mutex       // guards conns
	conns []*udpbatch.Conn // the sockets made here, for own SRTP's sends (ownsrtp.go)
	// checks are own SRTP's key checks in progress, by destination (ownsrtp.go): the
	// sockets' watch hands them what pion writes there. nchecks skips the lookup when none.
	checks  sync.Map // netip.AddrPort → *keyCheck
	nchecks atomic.Int32
}

func newBatchNet(g *udpbatch.Group, log *slog.Logger) (*batchNet, error) {
	std, err := stdnet.NewNet()
	if err != nil {
		return nil, fmt.Errorf("network interfaces: %w", err)
	}
	return &batchNet{Net: std, group: g, log: log}, nil
}

// SocketBuffer is the receive and send buffer the bridge asks for on its ICE UDP socket.
// One socket carries every endpoint's media: with the default (~208 KiB, a few hundred
// small datagrams) a scheduling pause of a few tens of milliseconds on a busy bridge
// overflows it, and the kernel drops packets that no link lost. The kernel grants at most
// net.core.rmem_max / wmem_max; the bridge logs what it got (docs/deploy says how to raise
// the limits).
const SocketBuffer = 4 << 20

// sizeBuffers asks for SocketBuffer each way (beyond the limits where the bridge runs
// as root) and returns what the kernel granted.
func sizeBuffers(c *net.UDPConn) (recv, send int, err error) {
	return udpbuf.Size(c, SocketBuffer)
}

// ListenUDP implements transport.Net.
func (n *batchNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := net.ListenUDP(network, laddr)
	if err != nil {
		return nil, err
	}
	logBuffers(n.log, "ICE UDP socket", c, slog.LevelWarn)
	bc := n.group.New(c)
	bc.SetWatch(n.watch)
	n.mu.Lock()
	n.conns = append(n.conns, bc)
	n.mu.Unlock()
	return bc, nil
}

// logBuffers asks for SocketBuffer each way on c, a socket of the kind what names, and
// logs at level, and reports, when the kernel granted less.
func logBuffers(log *slog.Logger, what string, c *net.UDPConn, level slog.Level) (short bool) {
	ctx := context.Background()
	recv, send, err := sizeBuffers(c)
	switch {
	case err != nil:
		log.Log(ctx, level, what+" buffers left at the kernel default", "addr", c.LocalAddr().String(), "err", err)
		return true
	case recv < SocketBuffer || send < SocketBuffer:
		log.Log(ctx, level, what+" buffers smaller than asked: raise net.core.rmem_max and wmem_max",
			"addr", c.LocalAddr().String(), "receive_bytes", recv, "send_bytes", send, "want_bytes", SocketBuffer)
		return true
	}
	log.Debug(what+" buffers", "addr", c.LocalAddr().String(), "receive_bytes", recv, "send_bytes", send)
	return false
}

// EgressStats returns the batching counters of the bridge's ICE UDP sockets.
func (b *Bridge) EgressStats() udpbatch.Stats { return b.egress.Stats() }
