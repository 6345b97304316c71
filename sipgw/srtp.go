package sipgw

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
)

// SRTP with SDES keys (RFC 4568): a room that offers a=crypto lines (in RTP/SAVP, RTP/SAVPF,
// or "best effort" in RTP/AVP) gets SRTP with the first suite of its offer the gateway
// knows, under a key the gateway draws for the call and sends in its answer's a=crypto
// line. With SRTPMandatory an offer without usable keys is refused (488), and the
// gateway's own offers (late offer, auto-dial) are RTP/SAVP(F) with keys. Keys travel in
// the SDP, so SIP over TLS is what keeps them secret on the wire (TLS is not done yet:
// see README); SRTP still keeps RTP from being read off a media path that is not the
// signalling path, and authenticates it, so nothing unauthenticated is latched.

// SRTP policies (Config.SRTP).
const (
	// SRTPOptional uses SRTP when the room offers keys, plain RTP otherwise (the default).
	SRTPOptional = "optional"
	// SRTPMandatory refuses calls without SRTP: a plain offer is answered 488.
	SRTPMandatory = "mandatory"
)

// sdesSuites are the suites the gateway takes (RFC 4568 §6.2, RFC 6188, RFC 7714) and the
// pion profiles behind them.
var sdesSuites = map[string]srtp.ProtectionProfile{
	"AES_CM_128_HMAC_SHA1_80": srtp.ProtectionProfileAes128CmHmacSha1_80,
	"AES_CM_128_HMAC_SHA1_32": srtp.ProtectionProfileAes128CmHmacSha1_32,
	"AES_256_CM_HMAC_SHA1_80": srtp.ProtectionProfileAes256CmHmacSha1_80,
	"AES_256_CM_HMAC_SHA1_32": srtp.ProtectionProfileAes256CmHmacSha1_32,
	"AEAD_AES_128_GCM":        srtp.ProtectionProfileAeadAes128Gcm,
	"AEAD_AES_256_GCM":        srtp.ProtectionProfileAeadAes256Gcm,
}

// offeredSuites are the suites of the gateway's own offers, one a=crypto line each
// (tags 1, 2): the two that RFC 4568 makes mandatory to implement and every codec has.
var offeredSuites = []string{"AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32"}

// errSRTPRequired refuses a description without usable SDES keys under SRTPMandatory.
var errSRTPRequired = errors.New("SRTP required: offer RTP/SAVP with an a=crypto line (SDES, e.g. AES_CM_128_HMAC_SHA1_80)")

// sdesKey is one a=crypto line: its tag, its suite and the master key followed by the
// master salt.
type sdesKey struct {
	Tag   int
	Suite string
	Key   []byte
}

func (k *sdesKey) equal(o *sdesKey) bool {
	return k != nil && o != nil && k.Tag == o.Tag && k.Suite == o.Suite && string(k.Key) == string(o.Key)
}

// suiteKeyLen is the length of a suite's master key and salt together (0: unknown suite).
func suiteKeyLen(suite string) int {
	p, ok := sdesSuites[suite]
	if !ok {
		return 0
	}
	k, err1 := p.KeyLen()
	s, err2 := p.SaltLen()
	if err1 != nil || err2 != nil {
		return 0
	}
	return k + s
}

// parseCrypto reads an a=crypto value ("1 AES_CM_128_HMAC_SHA1_80 inline:<base64>|2^31").
// A line it cannot use is not an error of the description (the next one may do): an
// unknown suite, several keys, an MKI, or session parameters (UNENCRYPTED_SRTP and the
// like, which would weaken what the room asked for) make it unusable.
func parseCrypto(value string) (sdesKey, bool) {
	f := strings.Fields(value)
	if len(f) != 3 {
		return sdesKey{}, false
	}
	tag, err := strconv.ParseUint(f[0], 10, 30)
	if err != nil {
		return sdesKey{}, false
	}
	n := suiteKeyLen(f[1])
	b64, ok := strings.CutPrefix(f[2], "inline:")
	if n == 0 || !ok || strings.Contains(b64, ";") {
		return sdesKey{}, false
	}
	parts := strings.Split(b64, "|")
	for _, p := range parts[1:] {
		if strings.Contains(p, ":") {
			return sdesKey{}, false // MKI:length
		}
	}
	key, err := base64.StdEncoding.DecodeString(parts[0])
	if err != nil {
		key, err = base64.RawStdEncoding.DecodeString(parts[0])
	}
	if err != nil || len(key) != n {
		return sdesKey{}, false
	}
	return sdesKey{Tag: int(tag), Suite: f[1], Key: key}, true
}

// cryptoLine is k as an SDP attribute line.
func cryptoLine(k *sdesKey) string {
	return fmt.Sprintf("a=crypto:%d %s inline:%s\r\n", k.Tag, k.Suite, base64.StdEncoding.EncodeToString(k.Key))
}

// legCrypto is a leg's SRTP: tx protects what the gateway sends the room (under the
// gateway's key), rx checks and decrypts what the room sends (under its key). pion's
// contexts are not safe for concurrent use: each has its mutex. tx is used by the
// goroutines that send to the room (video forwarders, the mix loop, keyframe requests);
// rx by the leg's two reader goroutines.
type legCrypto struct {
	local, remote sdesKey

	txMu   sync.Mutex
	tx     *srtp.Context
	txBuf  []byte
	txHdr  rtp.Header
	txRTCP rtcp.Header

	rxMu   sync.Mutex
	rx     *srtp.Context
	rxHdr  rtp.Header
	rxRTCP rtcp.Header
}

// replayWindow is the SRTP replay window of what the room sends (RFC 3711 §3.3.2: 64 at
// least).
const replayWindow = 128

func newLegCrypto(local, remote sdesKey) (*legCrypto, error) {
	profile := sdesSuites[remote.Suite]
	split := func(k []byte) ([]byte, []byte) {
		n, _ := profile.KeyLen()
		return k[:n], k[n:]
	}
	lk, ls := split(local.Key)
	tx, err := srtp.CreateContext(lk, ls, profile)
	if err != nil {
		return nil, fmt.Errorf("srtp: our key: %w", err)
	}
	rk, rs := split(remote.Key)
	rx, err := srtp.CreateContext(rk, rs, profile, srtp.SRTPReplayProtection(replayWindow),
		srtp.SRTCPReplayProtection(replayWindow))
	if err != nil {
		return nil, fmt.Errorf("srtp: the room's key: %w", err)
	}
	return &legCrypto{local: local, remote: remote, tx: tx, rx: rx, txBuf: make([]byte, 0, mtu+64)}, nil
}

// protect encrypts one RTP packet (or, with isRTCP, one RTCP compound packet) and sends
// it on conn to the address in to, under the tx lock (its buffer is reused).
func (lc *legCrypto) protect(b []byte, isRTCP bool, conn *net.UDPConn, to *atomic.Pointer[netip.AddrPort]) error {
	lc.txMu.Lock()
	defer lc.txMu.Unlock()
	var out []byte
	var err error
	if isRTCP {
		out, err = lc.tx.EncryptRTCP(lc.txBuf[:0], b, &lc.txRTCP)
	} else {
		out, err = lc.tx.EncryptRTP(lc.txBuf[:0], b, &lc.txHdr)
	}
	if err != nil {
		return err
	}
	if cap(out) > cap(lc.txBuf) {
		lc.txBuf = out[:0] // grown for a larger packet: keep it
	}
	return sendTo(conn, to, out)
}

// unprotect authenticates and decrypts b in place; it returns the plain packet, or
// false for one that fails (forged, replayed, or not SRTP at all).
func (lc *legCrypto) unprotect(b []byte, isRTCP bool) ([]byte, bool) {
	lc.rxMu.Lock()
	defer lc.rxMu.Unlock()
	var out []byte
	var err error
	if isRTCP {
		out, err = lc.rx.DecryptRTCP(b[:0], b, &lc.rxRTCP)
	} else {
		out, err = lc.rx.DecryptRTP(b[:0], b, &lc.rxHdr)
	}
	return out, err == nil
}

// newKey draws a master key and salt for suite.
func newKey(suite string) []byte {
	k := make([]byte, suiteKeyLen(suite))
	_, _ = rand.Read(k)
	return k
}

// keys is what a leg knows of its SDES keys: the gateway's own per suite (kept for the
// call: a re-INVITE's answer repeats it, and an offer's keys must match its answer).
// Guarded by leg.keyMu.
type keys struct {
	ours    map[string][]byte // by suite
	offered []sdesKey         // the gateway's offer, if it made one
}

// offerKeys are the a=crypto lines of an offer by the gateway on l.
func (l *leg) offerKeys() []sdesKey {
	l.keyMu.Lock()
	defer l.keyMu.Unlock()
	if l.keys.offered == nil {
		for i, s := range offeredSuites {
			l.keys.offered = append(l.keys.offered, sdesKey{Tag: i + 1, Suite: s, Key: l.ourKey(s)})
		}
	}
	return l.keys.offered
}

func (l *leg) ourKey(suite string) []byte {
	if l.keys.ours == nil {
		l.keys.ours = map[string][]byte{}
	}
	k, ok := l.keys.ours[suite]
	if !ok {
		k = newKey(suite)
		l.keys.ours[suite] = k
	}
	return k
}

// setKeys starts, changes or keeps l's SRTP for the room's a=crypto line remote (nil: plain
// RTP). For an answer to the gateway's offer, remote must name one of the offered lines.
func (l *leg) setKeys(remote *sdesKey, isAnswer bool) error {
	l.keyMu.Lock()
	defer l.keyMu.Unlock()
	if remote == nil {
		l.crypto.Store(nil)
		return nil
	}
	local := sdesKey{Tag: remote.Tag, Suite: remote.Suite}
	if isAnswer {
		i := slices.IndexFunc(l.keys.offered, func(k sdesKey) bool { return k.Tag == remote.Tag && k.Suite == remote.Suite })
		if i < 0 {
			return fmt.Errorf("srtp: the answer's a=crypto:%d %s is not one the gateway offered", remote.Tag, remote.Suite)
		}
		local = l.keys.offered[i]
	} else {
		local.Key = l.ourKey(remote.Suite)
	}
	if cur := l.crypto.Load(); cur != nil && cur.remote.equal(remote) && cur.local.equal(&local) {
		return nil // a re-INVITE that kept the keys: the contexts (and their counters) stay
	}
	lc, err := newLegCrypto(local, *remote)
	if err != nil {
		return err
	}
	l.crypto.Store(lc)
	return nil
}

// localKey is the a=crypto line of the gateway's answer on l (nil: plain RTP).
func (l *leg) localKey() *sdesKey {
	if lc := l.crypto.Load(); lc != nil {
		k := lc.local
		return &k
	}
	return nil
}
