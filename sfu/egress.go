package sfu

import (
	"fmt"
	"net"

	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"

	"github.com/cau-project/cau/sfu/udpbatch"
)

// batchNet is the network the ICE UDP mux listens on: the standard one, except that its
// UDP sockets batch their writes (udpbatch) while a fan-out holds the bridge's group.
type batchNet struct {
	transport.Net
	group *udpbatch.Group
}

func newBatchNet(g *udpbatch.Group) (*batchNet, error) {
	std, err := stdnet.NewNet()
	if err != nil {
		return nil, fmt.Errorf("network interfaces: %w", err)
	}
	return &batchNet{Net: std, group: g}, nil
}

// ListenUDP implements transport.Net.
func (n *batchNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := net.ListenUDP(network, laddr)
	if err != nil {
		return nil, err
	}
	return n.group.New(c), nil
}

// EgressStats returns the batching counters of the bridge's ICE UDP sockets.
func (b *Bridge) EgressStats() udpbatch.Stats { return b.egress.Stats() }
