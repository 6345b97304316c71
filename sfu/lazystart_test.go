package sfu

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/cau-project/cau/internal/testpeer"
)

// countingFactory builds interceptors that count what is done to them.
type countingFactory struct {
	built, writers, readers, streams, closed atomic.Int32
}

func (f *countingFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	f.built.Add(1)
	return &countingInterceptor{f: f}, nil
}

type countingInterceptor struct {
	interceptor.NoOp
	f *countingFactory
}

func (c *countingInterceptor) BindRTCPWriter(w interceptor.RTCPWriter) interceptor.RTCPWriter {
	c.f.writers.Add(1)
	return w
}

func (c *countingInterceptor) BindRTCPReader(r interceptor.RTCPReader) interceptor.RTCPReader {
	c.f.readers.Add(1)
	return interceptor.RTCPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, a, err := r.Read(b, a)
		if n > 0 {
			b[0] = 0xEE // marks what went through the inner interceptor; b[1] says the source
		}
		return n, a, err
	})
}

func (c *countingInterceptor) BindRemoteStream(_ *interceptor.StreamInfo, r interceptor.RTPReader) interceptor.RTPReader {
	c.f.streams.Add(1)
	return r
}

func (c *countingInterceptor) Close() error {
	c.f.closed.Add(1)
	return nil
}

// The inner interceptor is built with the first remote stream, bound to the writer and
// reader kept until then, reads RTCP from then on, and is closed with the connection.
func TestRemoteOnlyStartsWithTheFirstRemoteStream(t *testing.T) {
	var f countingFactory
	i, err := remoteOnly{&f}.NewInterceptor("pc")
	if err != nil {
		t.Fatal(err)
	}
	w := interceptor.RTCPWriterFunc(func([]rtcp.Packet, interceptor.Attributes) (int, error) { return 0, nil })
	i.BindRTCPWriter(w)
	// pion binds one reader per sender and per receiver: each must keep reading its own.
	source := func(id byte) interceptor.RTCPReader {
		return interceptor.RTCPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
			b[0], b[1] = 0, id
			return 2, a, nil
		})
	}
	read := func(r interceptor.RTCPReader) (mark, id byte) {
		buf := make([]byte, 4)
		if _, _, err := r.Read(buf, nil); err != nil {
			t.Fatal(err)
		}
		return buf[0], buf[1]
	}
	ra, rb := i.BindRTCPReader(source(1)), i.BindRTCPReader(source(2))
	if m, id := read(ra); m != 0 || id != 1 || f.built.Load() != 0 {
		t.Fatalf("before any stream: read mark %#x from %d, %d built; want a plain read from 1, none built", m, id, f.built.Load())
	}
	i.BindLocalStream(&interceptor.StreamInfo{SSRC: 1}, nil)
	if f.built.Load() != 0 {
		t.Fatal("a local stream started the inner interceptor")
	}
	for ssrc := range uint32(2) {
		i.BindRemoteStream(&interceptor.StreamInfo{SSRC: ssrc}, nil)
	}
	rc := i.BindRTCPReader(source(3)) // bound after the start
	if f.built.Load() != 1 || f.writers.Load() != 1 || f.readers.Load() != 3 || f.streams.Load() != 2 {
		t.Fatalf("after two remote streams: built %d, writers %d, readers %d, streams %d; want 1, 1, 3, 2",
			f.built.Load(), f.writers.Load(), f.readers.Load(), f.streams.Load())
	}
	for want, r := range map[byte]interceptor.RTCPReader{1: ra, 2: rb, 3: rc} {
		if m, id := read(r); m != 0xEE || id != want {
			t.Errorf("reader %d after start: mark %#x, read from %d; want it through the inner interceptor, from its own source", want, m, id)
		}
	}
	if err := i.Close(); err != nil || f.closed.Load() != 1 {
		t.Fatalf("close: %v, %d closed", err, f.closed.Load())
	}

	// Closed before any stream: nothing is ever built.
	var g countingFactory
	j, _ := remoteOnly{&g}.NewInterceptor("pc2")
	_ = j.Close()
	j.BindRemoteStream(&interceptor.StreamInfo{SSRC: 3}, nil)
	if g.built.Load() != 0 {
		t.Fatal("a closed interceptor started its inner one")
	}
}

// rtcpSeen records the RTCP packet types a connection reads.
type rtcpSeen struct {
	mu    sync.Mutex
	types map[string]int
}

func (s *rtcpSeen) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &rtcpRecorder{s: s}, nil
}

func (s *rtcpSeen) count(kind string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.types[kind]
}

type rtcpRecorder struct {
	interceptor.NoOp
	s *rtcpSeen
}

func (r *rtcpRecorder) BindRTCPReader(next interceptor.RTCPReader) interceptor.RTCPReader {
	return interceptor.RTCPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, a, err := next.Read(b, a)
		if err == nil {
			if pkts, perr := rtcp.Unmarshal(b[:n]); perr == nil {
				r.s.mu.Lock()
				for _, p := range pkts {
					r.s.types[fmt.Sprintf("%T", p)]++
				}
				r.s.mu.Unlock()
			}
		}
		return n, a, err
	})
}

// A publisher still gets the bridge's receiver reports and TWCC feedback now that both
// generators start with the connection's first remote stream.
func TestPublisherGetsReceiverReportsAndTWCCFeedback(t *testing.T) {
	b := newTestBridge(t)
	seen := &rtcpSeen{types: map[string]int{}}
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	if err := me.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.AudioLevelURI}, webrtc.RTPCodecTypeAudio); err != nil {
		t.Fatal(err)
	}
	ir := &interceptor.Registry{}
	ir.Add(seen) // nearest the network: sees every RTCP packet read
	// A browser numbers what it sends for TWCC, so the bridge has something to report.
	if err := webrtc.ConfigureTWCCHeaderExtensionSender(me, ir); err != nil {
		t.Fatal(err)
	}
	api := testpeer.API(t, me, ir, testpeer.Loopback)
	r := &room{}
	pub := newTestEndpointWith(t, b, "pub", r.onTrack(new(string)), endpointOpts{api: api})
	defer pub.close()
	pub.publish()
	eventually(t, 20*time.Second, func() string {
		rr, cc := seen.count("*rtcp.ReceiverReport"), seen.count("*rtcp.TransportLayerCC")
		if rr > 0 && cc > 0 {
			return ""
		}
		return fmt.Sprintf("publisher read %d receiver reports and %d TWCC feedbacks, want both", rr, cc)
	})
}

// TestWatchOnlyPeerMakesNoPublisherConnection: an endpoint that only watches gets no
// publisher connection (issue 11: it held 15-20 kB of pion state for nothing); a
// publisher candidate that arrives before any offer is held, and the endpoint's first
// offer makes the connection, which then publishes as any other.
func TestWatchOnlyPeerMakesNoPublisherConnection(t *testing.T) {
	_, _, pub, s := watching(t, webrtc.MimeTypeVP8, "watcher", 10)
	if s.peer.publisher() != nil {
		t.Fatal("a watch-only peer has a publisher connection")
	}
	if pub.peer.publisher() == nil {
		t.Fatal("the publishing peer has no publisher connection")
	}
	if got := s.peer.HopStats(); got.Out.Packets == 0 || got.In.Packets != 0 {
		t.Fatalf("watcher's hop: out %d packets, in %d; want out > 0, in 0", got.Out.Packets, got.In.Packets)
	}
	early := webrtc.ICECandidateInit{Candidate: "candidate:1 1 udp 2130706431 127.0.0.1 9 typ host"}
	if err := s.peer.AddCandidate(Publisher, early); err != nil {
		t.Fatalf("publisher candidate before any offer: %v", err)
	}
	if s.peer.publisher() != nil {
		t.Fatal("a candidate made the publisher connection")
	}
	s.publishAudio()
	if s.peer.publisher() == nil {
		t.Fatal("the watcher's offer made no publisher connection")
	}
	pub.waitPackets(t, 10*time.Second, "stream-watcher", webrtc.RTPCodecTypeAudio, 10, "pub has no audio from the former watcher")
	eventually(t, 5*time.Second, func() string {
		if n := s.peer.HopStats().In.Packets; n == 0 {
			return "the new publisher connection measures nothing"
		}
		return ""
	})
}
