package turnserver

import (
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/turn/v5"
)

var testSecret = []byte("turn-test-secret-turn-test-secret")

// testServer starts a TURN server on loopback whose only allowed peer is media: a UDP
// socket standing in for the bridge's media port.
func testServer(t *testing.T, mutate func(*Config)) (*Server, net.PacketConn) {
	t.Helper()
	media, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = media.Close() })
	allowed := media.LocalAddr().(*net.UDPAddr).AddrPort()
	cfg := Config{UDPAddr: "127.0.0.1:0", TCPAddr: "127.0.0.1:0", RelayIP: net.IPv4(127, 0, 0, 1),
		Secret: testSecret, Allowed: func() []netip.AddrPort { return []netip.AddrPort{allowed} }}
	if mutate != nil {
		mutate(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, media
}

// udpClient is a pion TURN client over UDP with the given credentials.
func udpClient(t *testing.T, s *Server, user, pass string) *turn.Client {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return newClient(t, conn, s.UDPAddr().String(), user, pass)
}

func newClient(t *testing.T, conn net.PacketConn, server, user, pass string) *turn.Client {
	t.Helper()
	c, err := turn.NewClient(&turn.ClientConfig{TURNServerAddr: server, STUNServerAddr: server,
		Username: user, Password: pass, Realm: "cau", Conn: conn, RTO: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// relayTo allocates, sends one datagram to peer through the relay and reports whether
// it arrived at media.
func relayTo(t *testing.T, c *turn.Client, peer net.Addr, media net.PacketConn) error {
	t.Helper()
	relay, err := c.Allocate()
	if err != nil {
		return err
	}
	defer func() { _ = relay.Close() }()
	if err := c.CreatePermission(peer); err != nil {
		return err
	}
	if _, err := relay.WriteTo([]byte("media"), peer); err != nil {
		return err
	}
	buf := make([]byte, 64)
	_ = media.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _, err := media.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "media" {
		t.Fatalf("relayed datagram did not arrive at the media port: %q, %v", buf[:n], err)
	}
	return nil
}

func TestValidCredentialsRelayToTheBridge(t *testing.T) {
	s, media := testServer(t, nil)
	user, pass := Credentials(testSecret, "p1", CredentialTTL, time.Now())
	if err := relayTo(t, udpClient(t, s, user, pass), media.LocalAddr(), media); err != nil {
		t.Fatalf("relay with fresh credentials: %v", err)
	}
}

func TestExpiredCredentialsRefused(t *testing.T) {
	s, _ := testServer(t, nil)
	user, pass := Credentials(testSecret, "p1", CredentialTTL, time.Now().Add(-CredentialTTL-time.Second))
	if _, err := udpClient(t, s, user, pass).Allocate(); err == nil {
		t.Fatal("allocation with expired credentials succeeded")
	}
	// A password made with another secret is refused too.
	user, _ = Credentials(testSecret, "p1", CredentialTTL, time.Now())
	_, forged := Credentials([]byte("another-secret"), "p1", CredentialTTL, time.Now())
	if _, err := udpClient(t, s, user, forged).Allocate(); err == nil {
		t.Fatal("allocation with a forged password succeeded")
	}
}

func TestRelayToDisallowedAddressRefused(t *testing.T) {
	s, media := testServer(t, nil)
	other, err := net.ListenPacket("udp4", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = other.Close() }()
	user, pass := Credentials(testSecret, "p1", CredentialTTL, time.Now())
	c := udpClient(t, s, user, pass)
	relay, err := c.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = relay.Close() }()
	if err := c.CreatePermission(other.LocalAddr()); err == nil {
		t.Error("permission to an address that is not the bridge's was granted")
	}
	// Same address as the media port, another port: the permission (per address) is
	// granted, but the relay drops the datagram.
	sameHost, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sameHost.Close() }()
	if err := c.CreatePermission(sameHost.LocalAddr()); err != nil {
		t.Fatalf("permission to the bridge's address: %v", err)
	}
	_, _ = relay.WriteTo([]byte("probe"), sameHost.LocalAddr())
	_ = sameHost.SetReadDeadline(time.Now().Add(time.Second))
	if n, _, err := sameHost.ReadFrom(make([]byte, 64)); err == nil {
		t.Errorf("a datagram (%d bytes) was relayed to a port other than the media port", n)
	}
	// The media port itself is reachable.
	if _, err := relay.WriteTo([]byte("media"), media.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	_ = media.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := media.ReadFrom(make([]byte, 64)); err != nil {
		t.Errorf("relay to the media port: %v", err)
	}
}

func TestAllocationQuota(t *testing.T) {
	s, _ := testServer(t, func(c *Config) { c.MaxAllocationsPerUser = 1 })
	user, pass := Credentials(testSecret, "p1", CredentialTTL, time.Now())
	relay, err := udpClient(t, s, user, pass).Allocate()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = relay.Close() }()
	if _, err := udpClient(t, s, user, pass).Allocate(); err == nil {
		t.Fatal("a second allocation over the user's quota of 1 succeeded")
	}
	other, opass := Credentials(testSecret, "p2", CredentialTTL, time.Now())
	r2, err := udpClient(t, s, other, opass).Allocate()
	if err != nil {
		t.Fatalf("another user's allocation: %v", err)
	}
	_ = r2.Close()
}

// TestTCPAndTLSOnOnePort allocates over TURN/TCP and TURN/TLS through the same port.
func TestTCPAndTLSOnOnePort(t *testing.T) {
	cert := selfSigned(t)
	s, media := testServer(t, func(c *Config) { c.Certificate = &cert })
	for _, useTLS := range []bool{false, true} {
		var conn net.Conn
		var err error
		if useTLS {
			conn, err = tls.Dial("tcp4", s.TCPAddr().String(), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // self-signed test cert
		} else {
			conn, err = net.Dial("tcp4", s.TCPAddr().String())
		}
		if err != nil {
			t.Fatal(err)
		}
		user, pass := Credentials(testSecret, "p1", CredentialTTL, time.Now())
		c := newClient(t, turn.NewSTUNConn(conn), s.TCPAddr().String(), user, pass)
		if err := relayTo(t, c, media.LocalAddr(), media); err != nil {
			t.Errorf("tls=%v: %v", useTLS, err)
		}
		c.Close()
		_ = conn.Close()
	}
}

func TestNewRequiresSecret(t *testing.T) {
	if _, err := New(Config{UDPAddr: "127.0.0.1:0", RelayIP: net.IPv4(127, 0, 0, 1)}); !errors.Is(err, ErrNoSecret) {
		t.Fatalf("New without a secret: %v, want ErrNoSecret", err)
	}
}

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	cert, err := SelfSigned([]string{"localhost", "127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}
