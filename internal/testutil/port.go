package testutil

import (
	"fmt"
	"net"
	"testing"
)

// FreePort is a port on 127.0.0.1 that was free for both UDP and TCP a moment ago: for a
// process or a server that must be told its port before it starts (a SIP room codec, a
// `cau signal` that advertises its address, Prometheus). Another process may take it
// meanwhile; the tests that use it are the only ones that pick ports this way.
func FreePort(t testing.TB) int {
	t.Helper()
	for range 20 {
		u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		port := u.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		_ = u.Close()
		if err == nil {
			_ = l.Close()
			return port
		}
	}
	t.Fatal("no port free for UDP and TCP on 127.0.0.1")
	return 0
}
