package udpbuf_test

import (
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/pion/transport/v5/stdnet"

	"github.com/cau-project/cau/internal/udpbuf"
)

// granted is what the kernel should grant a request for bytes: all of it to root (the
// force options), else at most net.core.rmem_max.
func granted(t *testing.T, bytes int) int {
	if os.Geteuid() == 0 {
		return bytes
	}
	b, err := os.ReadFile("/proc/sys/net/core/rmem_max")
	if err != nil {
		t.Fatal(err)
	}
	limit, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return min(bytes, limit)
}

// TestNetSizesSockets: a socket pion opens through Net has the buffers asked for, as far
// as the kernel grants them, and more than the kernel's default.
func TestNetSizesSockets(t *testing.T) {
	std, err := stdnet.NewNet()
	if err != nil {
		t.Fatal(err)
	}
	const want = 3 << 20
	n := &udpbuf.Net{Net: std, Bytes: want}
	c, err := n.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	def, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = def.Close() }()
	_, defSend, err := udpbuf.Size(def, 0) // 0 asks the minimum: what the send side reads then
	if err != nil {
		t.Fatal(err)
	}
	recv, send, err := udpbuf.Size(c.(syscall.Conn), want)
	if err != nil {
		t.Fatal(err)
	}
	if g := granted(t, want); recv < g || send < g {
		t.Errorf("buffers %d receive, %d send; want at least %d each", recv, send, g)
	}
	if send <= defSend {
		t.Errorf("send buffer %d, no larger than the minimum %d", send, defSend)
	}
}
