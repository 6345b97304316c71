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

// TestNetSizesSockets: a socket pion opens through Net has the buffers asked for (3 MiB,
// over the kernel's ~208 KiB default), as far as the kernel grants them: all of it to
// root, as in CI, whatever net.core.rmem_max says.
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
	recv, send, err := udpbuf.Sizes(c.(syscall.Conn))
	if err != nil {
		t.Fatal(err)
	}
	if g := granted(t, want); recv < g || send < g {
		t.Errorf("buffers %d receive, %d send; want at least %d each", recv, send, g)
	}
}
