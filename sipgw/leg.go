package sipgw

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
)

// leg is one stream's media with the room: plain RTP and RTCP on a pair of UDP sockets,
// no ICE. The room's address comes from its SDP; symmetric RTP latching (RFC 7362)
// then replaces it with the address the room's first packet came from, which is the
// one that reaches it through a NAT, and packets from any other address are dropped.
type leg struct {
	rtp, rtcp *net.UDPConn

	// remote and remoteRTCP are where media goes: set from the SDP before the readers
	// start, then replaced once by latching on the reader goroutine of each socket;
	// loaded per packet by the writers.
	remote, remoteRTCP   atomic.Pointer[netip.AddrPort]
	latched, latchedRTCP atomic.Bool
	// mux sends RTCP on the RTP socket (the room's SDP had a=rtcp-mux); set with remote.
	mux atomic.Bool

	// crypto is the leg's SRTP (srtp.go), nil for plain RTP: set before the readers start,
	// replaced by a re-INVITE that changes keys; loaded per packet.
	crypto atomic.Pointer[legCrypto]
	keyMu  sync.Mutex // guards keys and the replacing of crypto
	keys   keys
}

// pairTries bounds the search for adjacent RTP/RTCP ports (RTP even, RTCP the next
// one, the RFC 3550 convention that a=rtcp makes optional).
const pairTries = 20

// openLeg binds the stream's two sockets on ip.
func openLeg(ip netip.Addr) (*leg, error) {
	var lastErr error
	for range pairTries {
		rtp, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
		if err != nil {
			return nil, fmt.Errorf("rtp socket: %w", err)
		}
		port := rtp.LocalAddr().(*net.UDPAddr).Port
		if port%2 == 0 && port < 65535 {
			rtcp, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, uint16(port+1))))
			if err == nil {
				return &leg{rtp: rtp, rtcp: rtcp}, nil
			}
			lastErr = err
		}
		_ = rtp.Close()
	}
	// No adjacent pair: any second port will do, announced with a=rtcp.
	rtp, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
	if err != nil {
		return nil, fmt.Errorf("rtp socket: %w", errors.Join(lastErr, err))
	}
	rtcp, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
	if err != nil {
		_ = rtp.Close()
		return nil, fmt.Errorf("rtcp socket: %w", err)
	}
	return &leg{rtp: rtp, rtcp: rtcp}, nil
}

// local is the leg's ports and SDES key, for an answer.
func (l *leg) local() localMedia {
	return localMedia{RTP: uint16(l.rtp.LocalAddr().(*net.UDPAddr).Port),
		RTCP: uint16(l.rtcp.LocalAddr().(*net.UDPAddr).Port), Key: l.localKey()}
}

// offer is the leg's ports for an offer by the gateway, with SDES keys when secure.
func (l *leg) offer(secure bool) localMedia {
	m := l.local()
	if secure {
		m.Offer = l.offerKeys()
	}
	return m
}

// setRemote takes the room's addresses from its SDP.
func (l *leg) setRemote(m *media) {
	rtp, rtcp := m.Addr, m.RTCP
	l.remote.Store(&rtp)
	l.remoteRTCP.Store(&rtcp)
	l.mux.Store(m.RTCPMux)
}

// relatch points the leg at a new address from the room's SDP (a re-INVITE that moved
// its media) and latches again on the next packet from the room.
func (l *leg) relatch(m *media) {
	l.latched.Store(false)
	l.latchedRTCP.Store(false)
	l.setRemote(m)
}

// accept latches on the first packet's source and then reports whether a packet from
// src belongs to the call. Reader goroutine of the RTP socket (rtcp false) or of the
// RTCP socket (rtcp true).
func (l *leg) accept(src netip.AddrPort, rtcp bool) bool {
	latched, remote := &l.latched, &l.remote
	if rtcp {
		latched, remote = &l.latchedRTCP, &l.remoteRTCP
	}
	if latched.Load() {
		cur := remote.Load()
		return cur != nil && *cur == src
	}
	src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	remote.Store(&src)
	latched.Store(true)
	if !rtcp && !l.latchedRTCP.Load() {
		// Until the room's RTCP arrives, send it RTCP beside its latched RTP.
		r := netip.AddrPortFrom(src.Addr(), src.Port()+1)
		if cur := l.remoteRTCP.Load(); cur != nil && cur.Port() != 0 {
			r = netip.AddrPortFrom(src.Addr(), cur.Port())
		}
		l.remoteRTCP.Store(&r)
	}
	return true
}

// send writes one RTP packet to the room (as SRTP on a secure leg). Any goroutine.
func (l *leg) send(b []byte) error {
	if lc := l.crypto.Load(); lc != nil {
		return lc.protect(b, false, l.rtp, &l.remote)
	}
	return sendTo(l.rtp, &l.remote, b)
}

// sendRTCP writes one RTCP compound packet to the room (as SRTCP on a secure leg). Any
// goroutine.
func (l *leg) sendRTCP(b []byte) error {
	conn := l.rtcp
	if l.mux.Load() {
		conn = l.rtp
	}
	if lc := l.crypto.Load(); lc != nil {
		return lc.protect(b, true, conn, &l.remoteRTCP)
	}
	return sendTo(conn, &l.remoteRTCP, b)
}

// open returns the plain packet of a datagram from the room: b itself on a plain leg,
// b decrypted in place on a secure one, or false for a packet that fails SRTP's
// authentication (it must not be latched on, nor forwarded). The leg's reader
// goroutines.
func (l *leg) open(b []byte, isRTCP bool) ([]byte, bool) {
	if lc := l.crypto.Load(); lc != nil {
		return lc.unprotect(b, isRTCP)
	}
	return b, true
}

func sendTo(conn *net.UDPConn, to *atomic.Pointer[netip.AddrPort], b []byte) error {
	r := to.Load()
	if r == nil || !r.IsValid() {
		return nil
	}
	_, err := conn.WriteToUDPAddrPort(b, *r)
	return err
}

func (l *leg) close() {
	_ = l.rtp.Close()
	_ = l.rtcp.Close()
}
