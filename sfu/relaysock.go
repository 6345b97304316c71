package sfu

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/pion/transport/v5"
	"github.com/pion/webrtc/v4"
)

// Relay links' sockets.
//
// pion's UDP mux hands a datagram to the connection that last sent to, or heard from, its
// source address. Two connections between the same two bridges' ICE UDP ports (the two
// directions of one relay link, the links of two meetings) share one pair of addresses:
// each connectivity check one sends re-binds the remote address to it, so the other's
// checks and media land on the wrong connection and are discarded, and one direction can
// carry nothing until ICE gives up about 25 s later (TestRelayLinksCarryBothWays: 8 of 12
// links on main). DTLS and SRTP carry nothing a mux could tell the connections apart by.
//
// So a relay link's connections do not use the mux: each binds UDP sockets of its own
// (one per local address, like any ICE agent without a mux), from RelayPorts when set,
// and every connection between two bridges has a 4-tuple of its own. One end of a link
// on its own sockets is enough, so a bridge reachable only at its ICE UDP port (through
// one forwarded port, Config.Announce; RelayOnMux) keeps its relay links on the mux: the
// bridge at the other end tells them apart by their source ports.
//
// These sockets get the same large buffers as the mux's (SocketBuffer). They do not batch
// their writes (udpbatch): a relay connection has one destination, so a fan-out writes
// one datagram to it and a batch would hold one.

// PortRange is a range of UDP ports, both ends included. The zero value means any free
// port.
type PortRange struct {
	Min, Max uint16
}

// ParsePortRange reads "min-max" (e.g. "40000-40999"); "" is the zero range.
func ParsePortRange(s string) (PortRange, error) {
	if s == "" {
		return PortRange{}, nil
	}
	lo, hi, ok := strings.Cut(s, "-")
	if !ok {
		return PortRange{}, fmt.Errorf("port range %q: want min-max", s)
	}
	min, err1 := strconv.ParseUint(strings.TrimSpace(lo), 10, 16)
	max, err2 := strconv.ParseUint(strings.TrimSpace(hi), 10, 16)
	if err1 != nil || err2 != nil || min == 0 || max < min {
		return PortRange{}, fmt.Errorf("port range %q: want min-max with 0 < min <= max <= 65535", s)
	}
	return PortRange{Min: uint16(min), Max: uint16(max)}, nil
}

// String is the range as ParsePortRange reads it ("" for the zero range).
func (r PortRange) String() string {
	if r == (PortRange{}) {
		return ""
	}
	return fmt.Sprintf("%d-%d", r.Min, r.Max)
}

// relayOnMux reports whether cfg's relay links share the ICE UDP port (see above).
func relayOnMux(cfg Config) bool {
	return cfg.RelayOnMux || len(cfg.Announce) > 0 && cfg.RelayPorts == (PortRange{})
}

// ownSockets makes se's connections bind sockets of their own, from ports when set, with
// SocketBuffer each way.
func ownSockets(se *webrtc.SettingEngine, std transport.Net, ports PortRange, log *slog.Logger) error {
	se.SetICEUDPMux(nil)
	se.SetNet(&relayNet{Net: std, log: log})
	if ports == (PortRange{}) {
		return nil
	}
	if err := se.SetEphemeralUDPPortRange(ports.Min, ports.Max); err != nil {
		return fmt.Errorf("relay ports %s: %w", ports, err)
	}
	return nil
}

// relayNet is the network relay links' connections bind their sockets on: the standard
// one, with SocketBuffer on each UDP socket.
type relayNet struct {
	transport.Net
	log *slog.Logger
	// warned is set once a socket got smaller buffers than asked: that is logged as a
	// warning once, not for every relay connection. Any goroutine.
	warned atomic.Bool
}

// ListenUDP implements transport.Net.
func (n *relayNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := net.ListenUDP(network, laddr)
	if err != nil {
		return nil, err
	}
	level := slog.LevelWarn
	if n.warned.Load() {
		level = slog.LevelDebug
	}
	if logBuffers(n.log, "relay UDP socket", c, level) {
		n.warned.Store(true)
	}
	return c, nil
}
