package sfu

import (
	"time"

	"github.com/pion/webrtc/v4"
)

// dtlsFirstRetransmit is how long the bridge waits for the answer to a DTLS handshake
// flight before sending it again; each retry waits twice as long as the one before
// (pion's backoff: 500 ms, 1 s, 2 s, …). pion starts at 1 s, so one datagram lost in a
// join storm (a socket buffer that overflowed for a moment at either end) held that
// connection's media for a whole second. Not shorter: on a box loaded enough that a
// handshake step takes longer than the interval, every early copy is more work for both
// ends, in the storm that loaded it; and a slow link (satellite, 600 ms RTT) gets one
// early copy of a flight of about 1.5 kB at most.
const dtlsFirstRetransmit = 500 * time.Millisecond

// setDTLSHandshake shortens the bridge's DTLS handshakes (issue 11: join storms).
//
// No HelloVerifyRequest: the bridge answers a ClientHello with its ServerHello at once,
// one round trip fewer on every subscriber connection (where the endpoint is the DTLS
// client). The cookie exchange guards a server against a spoofed source address used to
// reflect its larger flight; here DTLS runs only over a pair that ICE has already checked
// with the connection's credentials (pion's agent drops anything but STUN from an address
// that has not sent it an authenticated check), which is the proof of address the cookie
// would give.
func setDTLSHandshake(se *webrtc.SettingEngine) {
	se.SetDTLSInsecureSkipHelloVerify(true)
	se.SetDTLSRetransmissionInterval(dtlsFirstRetransmit)
}
