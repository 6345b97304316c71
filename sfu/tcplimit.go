package sfu

import (
	"net"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/logging"
	"github.com/prometheus/client_golang/prometheus"
)

// Bounds on the ICE-TCP port (issue 12, finding 9). Anyone can open a connection to it,
// and pion keeps each one until its first STUN message (30 s by default) or longer;
// idle connections from strangers used to cost a goroutine and a socket each, without
// limit.
const (
	// MaxTCPConnsPerAddr bounds the open ICE-TCP connections from one IP address: an
	// endpoint uses two (publisher and subscriber), a site office behind one NAT a few
	// dozen devices.
	MaxTCPConnsPerAddr = 64
	// MaxTCPConns bounds them all.
	MaxTCPConns = 4096
	// tcpFirstSTUN is how long a new ICE-TCP connection may take to send its first
	// STUN message (a real endpoint sends it at once).
	tcpFirstSTUN = 10 * time.Second
)

// limitListener closes, as soon as they are accepted, connections over the caps: per
// remote IP address and in all. What it refuses is counted (refused, may be nil) and its
// log lines spend from the bridge's log budget.
type limitListener struct {
	net.Listener
	perAddr, total int
	refused        prometheus.Counter
	log            logging.LeveledLogger

	mu    sync.Mutex // guards open and count
	open  map[string]int
	count int
}

// newICETCPMux is webrtc.NewICETCPMux on a listener within the caps, with a shorter wait
// for the first STUN message; m, if not nil, counts the refused connections.
func newICETCPMux(ln net.Listener, log logging.LeveledLogger, m *Metrics) ice.TCPMux {
	var refused prometheus.Counter
	if m != nil && m.TCPConnsRefused != nil {
		refused = m.TCPConnsRefused
	}
	return ice.NewTCPMuxDefault(ice.TCPMuxParams{
		Listener: newLimitListener(ln, MaxTCPConnsPerAddr, MaxTCPConns, refused, log),
		Logger:   log, ReadBufferSize: 32, WriteBufferSize: 4 * 1024 * 1024, // as webrtc.NewICETCPMux
		FirstStunBindTimeout: tcpFirstSTUN,
	})
}

func newLimitListener(ln net.Listener, perAddr, total int, refused prometheus.Counter, log logging.LeveledLogger) *limitListener {
	return &limitListener{Listener: ln, perAddr: perAddr, total: total, refused: refused, log: log, open: map[string]int{}}
}

// Accept returns the next connection within the caps.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		host, _, err := net.SplitHostPort(c.RemoteAddr().String())
		if err != nil {
			host = c.RemoteAddr().String()
		}
		if l.admit(host) {
			return &limitedConn{Conn: c, release: func() { l.release(host) }}, nil
		}
		_ = c.Close()
		if l.refused != nil {
			l.refused.Inc()
		}
		l.log.Warnf("ICE-TCP connection refused: too many open (per address %d, in all %d)", l.perAddr, l.total)
	}
}

func (l *limitListener) admit(host string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[host] >= l.perAddr || l.count >= l.total {
		return false
	}
	l.open[host]++
	l.count++
	return true
}

func (l *limitListener) release(host string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.count--
	if l.open[host]--; l.open[host] <= 0 {
		delete(l.open, host)
	}
}

// limitedConn gives its place back once, when closed.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}
