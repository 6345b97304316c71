package testkit_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/cau-project/cau/internal/testkit"
)

// TestMain fails the package's tests if a goroutine outlives them: a severed CutProxy
// must have stopped its accept loop and both copy goroutines of every connection.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

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

// TestCutProxy: traffic passes the proxy; Cut drops the connections made so far but a
// new one passes; Sever refuses new ones for good.
func TestCutProxy(t *testing.T) {
	p := testkit.NewCutProxy(t, echoServer(t))
	first, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	if err := roundTrip(first, "xin chào"); err != nil {
		t.Fatalf("through the proxy: %v", err)
	}
	p.Cut()
	if err := roundTrip(first, "còn đó không"); err == nil {
		t.Fatal("a cut connection still carries traffic")
	}
	second, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
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
