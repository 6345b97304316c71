package wan

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// TestRelayIsTheOnlyWayIn: UDP from the host reaches the namespace only through the
// relay, which holds each packet for its delay in each direction and counts what it
// carried towards the namespace.
func TestRelayIsTheOnlyWayIn(t *testing.T) {
	Require(t)
	const delay = 30 * time.Millisecond
	l := New(t, Config{Subnet: "10.231.0", RelayPort: 40000})
	var target *net.UDPConn
	inside(t, l.NS, func() error {
		var err error
		target, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(l.PeerIP)})
		return err
	})
	t.Cleanup(func() { _ = target.Close() })
	go func() { // echoes what reaches the namespace
		buf := make([]byte, 1500)
		for {
			n, from, err := target.ReadFromUDP(buf)
			if err != nil {
				return
			}
			_, _ = target.WriteToUDP(append([]byte("echo "), buf[:n]...), from)
		}
	}()
	r := l.NewRelay(t, target.LocalAddr().(*net.UDPAddr), delay)
	peer, err := ListenUDP(l.HostIP, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	read := func(wait time.Duration) (string, error) {
		buf := make([]byte, 1500)
		_ = peer.SetReadDeadline(time.Now().Add(wait))
		n, err := peer.Read(buf)
		return string(buf[:n]), err
	}

	// Straight to the target: the namespace's firewall drops it (not from a relay port).
	if _, err := peer.WriteToUDP([]byte("direct"), target.LocalAddr().(*net.UDPAddr)); err != nil {
		t.Fatal(err)
	}
	if got, err := read(500 * time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a packet sent around the relay was answered: %q, %v", got, err)
	}

	// Through the relay: there and back, held each way.
	sent := time.Now()
	if _, err := peer.WriteToUDP([]byte("hello"), &net.UDPAddr{IP: net.ParseIP(l.HostIP), Port: r.Port()}); err != nil {
		t.Fatal(err)
	}
	got, err := read(10 * time.Second)
	if err != nil {
		t.Fatalf("no echo through the relay: %v", err)
	}
	if rtt := time.Since(sent); got != "echo hello" || rtt < 2*delay {
		t.Fatalf("through the relay: %q after %v, want %q after at least %v", got, rtt, "echo hello", 2*delay)
	}
	if n := r.Down(); n != 1 {
		t.Errorf("relay counted %d packets towards the namespace, want 1", n)
	}
	if mean, _, n := r.MeanHold(0, 0); n != 2 || mean < delay {
		t.Errorf("relay held %d packets for %v on average, want 2 for at least %v", n, mean, delay)
	}
}
