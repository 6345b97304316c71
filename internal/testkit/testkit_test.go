package testkit_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/cau-project/cau/internal/testkit"
)

// echoServer answers every line on a loopback port with the same line until the test ends.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { _ = ln.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); _ = c.Close() }()
		}
	}()
	return ln.Addr().String()
}

// roundTrip writes a line on c and reads it back.
func roundTrip(c net.Conn, line string) error {
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return err
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if got != line+"\n" {
		return errors.New("echoed " + got)
	}
	return nil
}

// dial connects to addr; the connection closes with the test.
func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestCutProxy: traffic passes the proxy; Cut drops the connections made so far but a
// new one passes; Sever refuses new ones for good.
func TestCutProxy(t *testing.T) {
	p := testkit.NewCutProxy(t, echoServer(t))
	first := dial(t, p.Addr())
	if err := roundTrip(first, "xin chào"); err != nil {
		t.Fatalf("through the proxy: %v", err)
	}
	p.Cut()
	if err := roundTrip(first, "còn đó không"); err == nil {
		t.Fatal("a cut connection still carries traffic")
	}
	second := dial(t, p.Addr())
	if err := roundTrip(second, "lại"); err != nil {
		t.Fatalf("a new connection after Cut: %v", err)
	}
	p.Sever()
	if err := roundTrip(second, "nữa"); err == nil {
		t.Error("a connection carries traffic after Sever")
	}
	if c, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		c.Close()
		t.Error("a severed proxy accepts connections")
	}
}
