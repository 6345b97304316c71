//go:build linux && (amd64 || arm64)

package client

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/pion/transport/v5/stdnet"

	"github.com/cau-project/cau/internal/udpbuf"
)

// TestBatchConnReadsQueuedInOrder queues datagrams on a socket opened as the client
// opens its connections' sockets, then reads them: all of them, in order, from their
// sender, several to a system call, without allocating; a deadline still ends a read.
func TestBatchConnReadsQueuedInOrder(t *testing.T) {
	std, err := stdnet.NewNet()
	if err != nil {
		t.Fatal(err)
	}
	n := &batchNet{udpbuf.Net{Net: std, Bytes: SocketBuffer}}
	uc, err := n.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = uc.Close() }()
	c, ok := uc.(*batchConn)
	if !ok {
		t.Fatalf("socket is a %T, not batched", uc)
	}
	from, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = from.Close() }()
	const count = 3*readBatch + 3
	send := func() {
		for i := range count {
			msg := make([]byte, 1200)
			msg[0] = byte(i)
			if _, err := from.WriteToUDP(msg, c.LocalAddr().(*net.UDPAddr)); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(50 * time.Millisecond) // queued on loopback, not in flight
	}
	// A read that would wait fails the test rather than hang it.
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	send()
	b := make([]byte, 1500)
	maxBatch := 0
	for i := range count {
		n, ap, err := c.ReadFromAddrPort(b)
		if err != nil {
			t.Fatal(err)
		}
		maxBatch = max(maxBatch, c.n)
		if n != 1200 || b[0] != byte(i) || ap.Port() != uint16(from.LocalAddr().(*net.UDPAddr).Port) || !ap.Addr().Is4() {
			t.Fatalf("datagram %d: %d bytes, first byte %d, from %v", i, n, b[0], ap)
		}
	}
	if maxBatch != readBatch {
		t.Errorf("largest batch %d datagrams, want %d with %d queued", maxBatch, readBatch, count)
	}
	send()
	// AllocsPerRun reads once more than it is told, to warm up: count-1 reads in all.
	if allocs := testing.AllocsPerRun(count-2, func() {
		if _, _, err := c.ReadFromAddrPort(b); err != nil {
			t.Fatal(err)
		}
	}); allocs != 0 {
		t.Errorf("%v allocations per datagram read", allocs)
	}
	if _, _, err := c.ReadFromAddrPort(b); err != nil { // the last one queued
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, _, err := c.ReadFromAddrPort(b); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %v", err)
	}
}
