package hopstats

import (
	"io"

	"github.com/pion/rtcp"
	"github.com/pion/transport/v5/packetio"
)

// Feedback addressed to a retransmission stream.
//
// A receiver addresses each TWCC feedback to the SSRC of the last packet it received
// before building it (pion's generator and libwebrtc's alike), and after a loss that is
// often a retransmission on the RTX stream (RFC 4588) or a probe's padding there. pion
// delivers RTCP by that SSRC, and a sender reads the RTCP of its media SSRC only: RTCP
// about its RTX SSRC lands in a stream nobody reads. Such feedback, and the losses it
// reports, never reached these counters, and it is the feedback right after a loss that
// goes so: a receiving bridge's NACK ticker (20 ms) and TWCC ticker (100 ms) keep the
// phase they started with, and on a connection whose feedback is built just after a
// NACK's retransmission arrives, the feedback reporting that loss is addressed to the RTX
// SSRC. The monitor read 5.8% on a hop that lost 8.3% (monitor
// TestEachHopImpairedAloneIsTheOnlyOneBlamed, in CI; two of its five hops in that run).
//
// The only place a connection's RTCP for an SSRC it does not read can be seen is the
// buffer pion's SRTCP session writes it into: BufferFactory makes those buffers (as pion
// makes them by default), and hands the TWCC feedback written into the buffer of a local
// RTX SSRC to the connection that sends that stream.

// Buffer limits, as pion's SRTP session sets them by default.
const (
	rtpBufferSize  = 1000 * 1000
	rtcpBufferSize = 100 * 1000
)

// BufferFactory makes the read buffers of the connections' SRTP and SRTCP streams: set it
// as webrtc.SettingEngine.BufferFactory on every API whose connections this Factory
// measures. The buffers are pion's (packetio, its default limits); an SRTCP buffer also
// hands the TWCC feedback about a local RTX SSRC to the interceptor that sends it.
// (With a BufferFactory set, pion starts a track's RTX reader with the track's first
// Read instead of at once: the bridge reads every track it receives.)
func (f *Factory) BufferFactory(kind packetio.BufferPacketType, ssrc uint32) io.ReadWriteCloser {
	b := &buffer{Buffer: packetio.NewBuffer()}
	if kind != packetio.RTCPBufferPacket {
		b.SetLimitSize(rtpBufferSize)
		return b
	}
	b.SetLimitSize(rtcpBufferSize)
	return &rtcpBuffer{buffer: b, factory: f, ssrc: ssrc}
}

// buffer is a packetio.Buffer as an io.ReadWriteCloser that keeps packet attributes (as
// pion's SRTP session wraps its own).
type buffer struct{ *packetio.Buffer }

func (b *buffer) Read(p []byte) (int, error) {
	n, _, err := b.Buffer.Read(p, nil)
	return n, err
}

func (b *buffer) Write(p []byte) (int, error) { return b.Buffer.Write(p, nil) }

// ReadWithAttributes keeps the attributes pion's SRTP session reads with a packet.
func (b *buffer) ReadWithAttributes(p []byte, a packetio.Attributes) (int, packetio.Attributes, error) {
	return b.Buffer.Read(p, a)
}

// WriteWithAttributes keeps the attributes pion's SRTP session writes with a packet.
func (b *buffer) WriteWithAttributes(p []byte, a packetio.Attributes) (int, error) {
	return b.Buffer.Write(p, a)
}

// rtcpBuffer is an SRTCP stream's buffer: what is written goes to the buffer as always,
// and TWCC feedback addressed to a local RTX SSRC to its sender's counters too.
type rtcpBuffer struct {
	*buffer
	factory *Factory
	ssrc    uint32
}

func (b *rtcpBuffer) Write(p []byte) (int, error) {
	b.factory.rtxFeedback(b.ssrc, p)
	return b.buffer.Write(p)
}

// WriteWithAttributes is the write pion's SRTCP session makes (one RTCP packet each).
func (b *rtcpBuffer) WriteWithAttributes(p []byte, a packetio.Attributes) (int, error) {
	b.factory.rtxFeedback(b.ssrc, p)
	return b.buffer.WriteWithAttributes(p, a)
}

// localSSRC is one stream a connection sends: its media SSRC, or its RTX SSRC.
type localSSRC struct {
	i   *Interceptor
	rtx bool
}

// addLocal notes that i sends ssrc (as its RTX stream if rtx).
func (f *Factory) addLocal(ssrc uint32, i *Interceptor, rtx bool) {
	f.localMu.Lock()
	defer f.localMu.Unlock()
	if f.local == nil {
		f.local = map[uint32][]localSSRC{}
	}
	f.local[ssrc] = append(f.local[ssrc], localSSRC{i: i, rtx: rtx})
}

// removeLocal forgets that i sends ssrc.
func (f *Factory) removeLocal(ssrc uint32, i *Interceptor) {
	f.localMu.Lock()
	defer f.localMu.Unlock()
	l := f.local[ssrc]
	for k := range l {
		if l[k].i == i {
			l = append(l[:k], l[k+1:]...)
			break
		}
	}
	if len(l) == 0 {
		delete(f.local, ssrc)
	} else {
		f.local[ssrc] = l
	}
}

// rtxSender is the connection that sends ssrc as its RTX stream; nil if none, or if
// another connection sends the same SSRC too (random SSRCs may collide): a feedback
// handed to the wrong connection would count another link's statuses.
func (f *Factory) rtxSender(ssrc uint32) *Interceptor {
	f.localMu.RLock()
	defer f.localMu.RUnlock()
	if l := f.local[ssrc]; len(l) == 1 && l[0].rtx {
		return l[0].i
	}
	return nil
}

// rtxFeedback hands the TWCC feedback in raw (one RTCP packet, or a compound), written
// into the SRTCP buffer of ssrc, to the connection that sends ssrc as its RTX stream.
// The SRTCP session's reading goroutine.
func (f *Factory) rtxFeedback(ssrc uint32, raw []byte) {
	i := f.rtxSender(ssrc)
	if i == nil {
		return
	}
	pkts, err := rtcp.Unmarshal(raw)
	if err != nil {
		return // pion's own reader would refuse it too
	}
	fb := pkts[:0]
	for _, p := range pkts {
		if t, ok := p.(*rtcp.TransportLayerCC); ok && t.MediaSSRC == ssrc {
			fb = append(fb, p)
		}
	}
	if len(fb) > 0 {
		i.read(fb, i.now())
	}
}
