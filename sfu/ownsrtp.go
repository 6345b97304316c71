package sfu

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/srtp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/cau-project/cau/sfu/udpbatch"
)

// Own SRTP (issue 11): the RTP a subscriber connection is forwarded is encrypted here,
// with a srtp.Context of the connection's own send keys (srtpkeys.go), and handed
// straight to the ICE UDP mux's socket (udpbatch) for the selected candidate pair's
// remote address. pion's write chain below the interceptors (its SRTP session's lock,
// marshal and pool, mux.Endpoint, ice.Conn's closed check, the UDP mux's two mutexes
// and its write-state CAS shared by every writer) is skipped for every forwarded packet.
//
// One owner per SSRC's SRTP state: the egress takes the connection's RTP from its first
// packet (the hop interceptor's last step, hopstats.SetEgress), every stream alike
// (media, RTX, probes' padding), so pion's session never encrypts RTP there and the two
// contexts cannot disagree on a rollover counter. RTCP stays pion's: SRTCP's index is a
// state of its own. A connection whose keys cannot be learned (the bridge as DTLS
// client, a suite or profile not known here, anything odd in the handshake) or whose pair
// is not on a mux socket (ICE-TCP) is given back to pion before its first packet; there
// is no switching back later (pion's context would start the rollover counter at 0), so a
// pair that moves where the egress cannot follow closes the connection.

// ownSRTP is one subscriber connection's RTP egress.
type ownSRTP struct {
	keys *dtlsKeys // the connection's handshake, read once at decide
	// dest is where packets go: nil before decide (packets are not sent, as pion sends
	// none before SRTP is ready) and after stop.
	dest     atomic.Pointer[ownDest]
	stopped  atomic.Bool
	deciding atomic.Bool // decideOwnSRTP ran

	mu  sync.Mutex    // guards ctx, buf, hdr: every writer of the connection's streams
	ctx *srtp.Context // set by decide, before dest
	buf []byte        // the packet, sealed in place
	hdr rtp.Header    // EncryptRTP parses the header into it
}

// ownDest is a socket of the mux and the address a connection's packets go to.
type ownDest struct {
	conn *udpbatch.Conn
	to   netip.AddrPort
}

// errOwnSRTPStopped is returned for writes after the connection's egress stopped.
var errOwnSRTPStopped = errors.New("sfu: connection's SRTP egress stopped")

// ownSRTPBuf fits a forwarded packet (MTU-sized), the largest auth tag and slack.
const ownSRTPBuf = 1500 + 64

// WriteRTP implements hopstats.Egress: marshal, seal in place, queue on the socket (which
// copies it). No allocation once the stream's SSRC is known to the context.
func (o *ownSRTP) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	d := o.dest.Load()
	if d == nil {
		if o.stopped.Load() {
			return 0, errOwnSRTPStopped
		}
		return 0, nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	//nolint:staticcheck // pion's own session marshals with these (padding included)
	_, size := rtp.HeaderAndPacketMarshalSize(h, payload)
	if cap(o.buf) < size+64 {
		o.buf = make([]byte, size+64) // a jumbo packet: rare, kept for the next
	}
	buf := o.buf[:size]
	//nolint:staticcheck // see above
	if _, err := rtp.MarshalPacketTo(buf, h, payload); err != nil {
		return 0, fmt.Errorf("marshal RTP: %w", err)
	}
	sealed, err := o.ctx.EncryptRTP(o.buf[:0], buf, &o.hdr)
	if err != nil {
		return 0, fmt.Errorf("encrypt RTP: %w", err)
	}
	return d.conn.WriteToAddrPort(sealed, d.to)
}

// decide runs once the connection is connected, before its first packet: it takes the
// connection's RTP if the keys and the pair allow, and reports why not otherwise (the
// caller gives the connection back to pion).
//
// The key is checked before any packet uses it: probe makes pion's session send one RTCP
// packet to the pair's remote address, and the key must authenticate and decrypt it as the
// socket sees it. A handshake whose hooks told something else than pion used (a pion
// upgrade) so leaves the connection to pion instead of sending what nobody can decrypt.
func (o *ownSRTP) decide(bn *batchNet, pair *webrtc.ICECandidatePair, remote *webrtc.SessionDescription,
	probe func() error,
) (srtp.ProtectionProfile, error) {
	ctx, profile, check, err := o.keys.keys() // first: it wipes the master secret whatever comes next
	if err != nil {
		return 0, err
	}
	d, err := bn.destFor(pair)
	if err != nil {
		return 0, err
	}
	if err := bn.checkKey(d.to, check, probe); err != nil {
		return 0, err
	}
	o.mu.Lock()
	o.ctx = ctx
	if o.buf == nil {
		o.buf = make([]byte, ownSRTPBuf)
	}
	o.mu.Unlock()
	if err := o.followCryptex(remote); err != nil {
		return 0, err
	}
	o.dest.Store(d)
	return profile, nil
}

// followCryptex encrypts RTP header extensions (RFC 9335, cryptex) from now on if and
// only if the far end's description asks for them, as pion's session does (its send mode
// is the remote description's: a=cryptex at session level or on the media; pion refuses a
// description that mixes both). Called at decide and after every answer the connection
// takes, before the packets that follow it.
func (o *ownSRTP) followCryptex(remote *webrtc.SessionDescription) error {
	mode := srtp.CryptexModeDisabled
	if remote != nil {
		// Parsed from the text: remote may be pion's own (CurrentRemoteDescription), whose
		// Unmarshal would write the parsed form pion's goroutines read.
		var parsed sdp.SessionDescription
		if err := parsed.UnmarshalString(remote.SDP); err != nil {
			return fmt.Errorf("remote description: %w", err)
		}
		if cryptexIn(&parsed) {
			mode = srtp.CryptexModeEnabled
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.ctx == nil {
		return nil // not ours: pion follows it
	}
	if err := o.ctx.UpdateOptions(srtp.Cryptex(mode)); err != nil {
		return fmt.Errorf("cryptex: %w", err)
	}
	return nil
}

// cryptexIn reports whether d negotiates cryptex: at session level or on an active
// media section.
func cryptexIn(d *sdp.SessionDescription) bool {
	if _, ok := d.Attribute(sdp.AttrKeyCryptex); ok {
		return true
	}
	for _, m := range d.MediaDescriptions {
		if _, ok := m.Attribute(sdp.AttrKeyCryptex); ok && m.MediaName.Port.Value != 0 {
			return true
		}
	}
	return false
}

// follow moves the egress to a newly selected pair; false if it cannot (the caller
// closes the connection: pion cannot take over mid-stream).
func (o *ownSRTP) follow(bn *batchNet, pair *webrtc.ICECandidatePair) bool {
	if o.dest.Load() == nil {
		return true // not ours (yet): decide reads the pair then
	}
	d, err := bn.destFor(pair)
	if err != nil {
		o.stop()
		return false
	}
	o.dest.Store(d)
	return true
}

// stop ends the egress: later writes fail.
func (o *ownSRTP) stop() {
	o.stopped.Store(true)
	o.dest.Store(nil)
	o.keys.wipe()
}

// errNotOnMux says a pair's local end is not one of the mux's UDP sockets.
var errNotOnMux = errors.New("sfu: candidate pair not on the ICE UDP mux")

// destFor finds the mux socket and remote address of pair: a UDP pair whose local
// candidate is a socket's own address, or, where the candidate's address is a public or
// announced one (rewrite rules), the one socket with that port not on loopback.
func (n *batchNet) destFor(pair *webrtc.ICECandidatePair) (*ownDest, error) {
	if pair == nil || pair.Local == nil || pair.Remote == nil {
		return nil, fmt.Errorf("%w: no selected pair", errNotOnMux)
	}
	if pair.Local.Protocol != webrtc.ICEProtocolUDP || pair.Remote.Protocol != webrtc.ICEProtocolUDP {
		return nil, fmt.Errorf("%w: %s", errNotOnMux, pair.Local.Protocol)
	}
	rip, err := netip.ParseAddr(pair.Remote.Address)
	if err != nil || pair.Remote.Port == 0 {
		return nil, fmt.Errorf("%w: remote %q: %w", errNotOnMux, pair.Remote.Address, err)
	}
	local := netip.AddrPortFrom(netip.Addr{}, pair.Local.Port)
	if lip, err := netip.ParseAddr(pair.Local.Address); err == nil {
		local = netip.AddrPortFrom(lip.Unmap(), pair.Local.Port)
	}
	c := n.connAt(local)
	if c == nil {
		return nil, fmt.Errorf("%w: local %s", errNotOnMux, local)
	}
	return &ownDest{conn: c, to: netip.AddrPortFrom(rip.Unmap(), pair.Remote.Port)}, nil
}

// connAt is the mux socket bound to local, else the only one with its port that is not
// on loopback; nil if none or several.
func (n *batchNet) connAt(local netip.AddrPort) *udpbatch.Conn {
	n.mu.Lock()
	defer n.mu.Unlock()
	var byPort *udpbatch.Conn
	several := false
	for _, c := range n.conns {
		ua, ok := c.LocalAddr().(*net.UDPAddr)
		if !ok {
			continue
		}
		at := netip.AddrPortFrom(ua.AddrPort().Addr().Unmap(), ua.AddrPort().Port())
		if at == local {
			return c
		}
		if at.Port() == local.Port() && !at.Addr().IsLoopback() {
			several = byPort != nil
			byPort = c
		}
	}
	if several {
		return nil
	}
	return byPort
}

// subscriberAPI is the lite API with the DTLS hooks of one new connection's keys: each
// subscriber connection has its own, so its hooks see its handshake and no other.
func (b *Bridge) subscriberAPI() (*webrtc.API, *dtlsKeys) {
	se := b.liteSE
	k := &dtlsKeys{}
	k.install(&se)
	return webrtc.NewAPI(webrtc.WithMediaEngine(b.me), webrtc.WithInterceptorRegistry(b.ir),
		webrtc.WithSettingEngine(se)), k
}

// startOwnSRTP makes the subscriber connection's RTP the egress's from its first packet
// (none is sent until decideOwnSRTP), and follows its candidate pair.
func (p *Peer) startOwnSRTP(keys *dtlsKeys) {
	p.own = &ownSRTP{keys: keys}
	p.subHop.SetEgress(p.own)
	p.sub.SCTP().Transport().ICETransport().OnSelectedCandidatePairChange(func(pair *webrtc.ICECandidatePair) {
		if p.own.follow(p.bridge.bn, pair) {
			return
		}
		// The egress cannot send there (ICE-TCP) and pion cannot take over mid-stream.
		err := fmt.Errorf("subscriber connection moved off the ICE UDP mux (own SRTP): %s", pair)
		p.log.Warn("peer failed", "target", Subscriber.String(), "err", err)
		go func() {
			_ = p.Close()
			if p.params.OnFailed != nil {
				p.params.OnFailed(err)
			}
		}()
	})
}

// decideOwnSRTP gives the subscriber connection to the egress or back to pion, once,
// when it first connects.
func (p *Peer) decideOwnSRTP() {
	o := p.own
	if o == nil || !o.deciding.CompareAndSwap(false, true) {
		return
	}
	pair, err := p.sub.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	var profile srtp.ProtectionProfile
	if err == nil {
		profile, err = o.decide(p.bridge.bn, pair, p.sub.CurrentRemoteDescription(), func() error {
			// An empty receiver report: valid RTCP (RFC 3550 §6.4.2) that a receiver ignores.
			_, err := p.sub.SCTP().Transport().WriteRTCP([]rtcp.Packet{&rtcp.ReceiverReport{SSRC: rand.Uint32()}})
			return err
		})
	}
	by := "bridge"
	if err != nil {
		p.subHop.SetEgress(nil)
		by = "pion"
		p.log.Info("subscriber SRTP by pion", "reason", err)
	} else {
		p.log.Debug("subscriber SRTP by the bridge", "profile", profile.String(), "pair", pair.String())
	}
	if m := p.bridge.metrics; m != nil && m.SRTPConnections != nil {
		m.SRTPConnections.WithLabelValues(by).Inc()
	}
}

// keyCheck catches the first SRTCP packet pion's session writes to one destination.
type keyCheck struct {
	mu  sync.Mutex // guards pkt: the socket's writers offer, checkKey reads
	pkt []byte     // nil until caught
}

// offer keeps p if it is the first SRTCP packet seen (RFC 5761 §4: RTP version 2, packet
// type 192–223; DTLS and STUN never look so).
func (k *keyCheck) offer(p []byte) {
	if len(p) < 8 || p[0]>>6 != 2 || p[1] < 192 || p[1] > 223 {
		return
	}
	k.mu.Lock()
	if k.pkt == nil {
		k.pkt = append([]byte(nil), p...)
	}
	k.mu.Unlock()
}

// watch is every mux socket's udpbatch watch: it hands checks in progress what is written
// to their destination. One atomic load per datagram when none is.
func (n *batchNet) watch(p []byte, to netip.AddrPort) {
	if n.nchecks.Load() == 0 {
		return
	}
	if v, ok := n.checks.Load(to); ok {
		v.(*keyCheck).offer(p)
	}
}

// errKeyCheck says the derived key did not open what pion's session sent: not ours.
var errKeyCheck = errors.New("sfu: own SRTP key check failed")

// checkKey runs probe (which makes pion's session write SRTCP to `to`, synchronously down
// to the socket) and decrypts what the socket was given with check, a context of the key
// the egress would use.
func (n *batchNet) checkKey(to netip.AddrPort, check *srtp.Context, probe func() error) error {
	k := &keyCheck{}
	if _, busy := n.checks.LoadOrStore(to, k); busy {
		return fmt.Errorf("%w: another check to %s", errKeyCheck, to)
	}
	n.nchecks.Add(1)
	err := probe()
	n.nchecks.Add(-1)
	n.checks.Delete(to)
	if err != nil {
		return fmt.Errorf("%w: probe: %w", errKeyCheck, err)
	}
	k.mu.Lock()
	pkt := k.pkt
	k.mu.Unlock()
	if pkt == nil {
		return fmt.Errorf("%w: nothing written to %s", errKeyCheck, to)
	}
	if _, err := check.DecryptRTCP(nil, pkt, nil); err != nil {
		return fmt.Errorf("%w: %w", errKeyCheck, err)
	}
	return nil
}
