package testkit

import (
	"io"
	"net"
	"sync"
	"testing"
)

// CutProxy is a loopback TCP proxy to a target that a test can cut, as a network drop
// would: Cut closes every connection made so far (new ones still pass: a drop the client
// recovers from), Sever also closes the listener (the link stays down).
type CutProxy struct {
	ln net.Listener

	mu      sync.Mutex // guards conns and severed; the accept loop takes it per connection
	conns   []net.Conn
	severed bool
}

// NewCutProxy listens on a free loopback port and forwards each connection to target
// until the test ends (then it is severed).
func NewCutProxy(t testing.TB, target string) *CutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &CutProxy{ln: ln}
	t.Cleanup(p.Sever)
	go p.accept(target)
	return p
}

func (p *CutProxy) accept(target string) {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		if p.severed {
			p.mu.Unlock()
			_ = c.Close()
			_ = up.Close()
			continue
		}
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		go func() { _, _ = io.Copy(up, c); _ = up.Close() }()
		go func() { _, _ = io.Copy(c, up); _ = c.Close() }()
	}
}

// Addr is the proxy's host:port.
func (p *CutProxy) Addr() string { return p.ln.Addr().String() }

// URL is the proxy's base URL, for an HTTP target.
func (p *CutProxy) URL() string { return "http://" + p.Addr() }

// Cut closes every connection made so far.
func (p *CutProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

// Sever cuts every connection and refuses new ones for good.
func (p *CutProxy) Sever() {
	p.mu.Lock()
	p.severed = true
	p.mu.Unlock()
	_ = p.ln.Close()
	p.Cut()
}
