package sipgw

import (
	"encoding/base64"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// TestParseCrypto: the a=crypto lines rooms send are read, and the ones the gateway
// must not use (an MKI, several keys, session parameters that weaken SRTP, a key of the
// wrong length, an unknown suite) are skipped rather than half-understood.
func TestParseCrypto(t *testing.T) {
	const key30 = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz" // RFC 4568's example
	cases := []struct {
		line string
		ok   bool
	}{
		{"1 AES_CM_128_HMAC_SHA1_80 inline:" + key30, true},
		{"2 AES_CM_128_HMAC_SHA1_32 inline:" + key30 + "|2^20", true},
		{"3 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + "|2^20|1:4", false},
		{"4 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + ";inline:" + key30, false},
		{"5 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + " UNENCRYPTED_SRTP", false},
		{"6 AES_CM_128_HMAC_SHA1_80 inline:AAAA", false},
		{"7 F8_128_HMAC_SHA1_80 inline:" + key30, false},
		{"x AES_CM_128_HMAC_SHA1_80 inline:" + key30, false},
		{"8 AES_CM_128_HMAC_SHA1_80 " + key30, false},
	}
	for _, c := range cases {
		k, ok := parseCrypto(c.line)
		if ok != c.ok {
			t.Errorf("%q: usable %v, want %v", c.line, ok, c.ok)
		}
		if ok && len(k.Key) != 30 {
			t.Errorf("%q: %d key bytes", c.line, len(k.Key))
		}
	}
}

const plainAudio = "v=0\r\no=- 1 1 IN IP4 192.0.2.2\r\ns=-\r\nc=IN IP4 192.0.2.2\r\nt=0 0\r\n" +
	"m=audio 39510 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"

// TestSDESNegotiation: an SRTP offer is answered with a key of the gateway's under the
// offer's tag and suite; a SAVP line without a usable key is refused; under the
// mandatory policy a plain offer is errSRTPRequired (488), an SRTP one is taken.
func TestSDESNegotiation(t *testing.T) {
	d, err := parseDescription([]byte(srtpOffer), true)
	if err != nil {
		t.Fatal(err)
	}
	if d.Audio == nil || d.Audio.Key == nil || d.Audio.Key.Tag != 2 || d.Audio.Key.Suite != "AES_CM_128_HMAC_SHA1_32" {
		t.Fatalf("audio key: %+v", d.Audio)
	}
	if d.Video == nil || d.Video.Key == nil || d.Video.Key.Suite != "AEAD_AES_256_GCM" || len(d.Video.Key.Key) != 44 {
		t.Fatalf("video key: %+v", d.Video)
	}
	l := &leg{}
	if err := l.setKeys(d.Audio.Key, false); err != nil {
		t.Fatal(err)
	}
	ans := string(buildAnswer(d, netip.MustParseAddr("127.0.0.1"), 1, 1, localMedia{RTP: 10, RTCP: 11, Key: l.localKey()},
		localMedia{RTP: 12, RTCP: 13, Key: &sdesKey{Tag: 7, Suite: "AEAD_AES_256_GCM", Key: newKey("AEAD_AES_256_GCM")}}))
	if !strings.Contains(ans, "m=audio 10 RTP/SAVP 0\r\n") || !strings.Contains(ans, "a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:") {
		t.Errorf("answer:\n%s", ans)
	}
	if strings.Contains(ans, base64.StdEncoding.EncodeToString(d.Audio.Key.Key)) {
		t.Errorf("the answer echoes the room's key")
	}
	if _, err := parseDescription([]byte(plainAudio), true); !errors.Is(err, errSRTPRequired) {
		t.Errorf("plain offer under the mandatory policy: %v", err)
	}
	if _, err := parseDescription([]byte(strings.Replace(plainAudio, "RTP/AVP", "RTP/SAVP", 1)), false); !errors.Is(err, errNoCommonCode) {
		t.Errorf("SAVP without a key: %v", err)
	}
	if d, err := parseDescription([]byte(plainAudio), false); err != nil || d.Audio.Key != nil {
		t.Errorf("plain offer under the optional policy: %v", err)
	}
}

// TestSRTPLegsBothWays: for every suite the gateway takes, what one side protects the
// other opens (RTP and RTCP, over a real socket), a packet altered on the way or replayed
// is refused, and nothing allocates per packet.
func TestSRTPLegsBothWays(t *testing.T) {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var to atomic.Pointer[netip.AddrPort]
	dst := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	to.Store(&dst)
	for suite := range sdesSuites {
		t.Run(suite, func(t *testing.T) {
			gwKey := sdesKey{Tag: 1, Suite: suite, Key: newKey(suite)}
			roomKey := sdesKey{Tag: 1, Suite: suite, Key: newKey(suite)}
			gw, err := newLegCrypto(gwKey, roomKey)
			if err != nil {
				t.Fatal(err)
			}
			room, err := newLegCrypto(roomKey, gwKey)
			if err != nil {
				t.Fatal(err)
			}
			pkt := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: 7, Timestamp: 9, SSRC: 42},
				Payload: []byte("a frame of the meeting's video")}
			plain, _ := pkt.Marshal()
			buf := make([]byte, 1500)
			var last []byte // the last ciphertext received
			roundTrip := func(from, at *legCrypto, b []byte, isRTCP bool) ([]byte, bool) {
				if err := from.protect(b, isRTCP, conn, &to); err != nil {
					t.Fatal(err)
				}
				n, err := conn.Read(buf)
				if err != nil {
					t.Fatal(err)
				}
				if string(buf[:n]) == string(b) {
					t.Fatal("sent in the clear")
				}
				last = append(last[:0], buf[:n]...)
				got, ok := at.unprotect(buf[:n], isRTCP)
				return got, ok
			}
			if got, ok := roundTrip(gw, room, plain, false); !ok || string(got) != string(plain) {
				t.Fatalf("RTP gateway → room: ok %v", ok)
			}
			pkt.SequenceNumber++
			plain, _ = pkt.Marshal()
			if got, ok := roundTrip(room, gw, plain, false); !ok || string(got) != string(plain) {
				t.Fatalf("RTP room → gateway: ok %v", ok)
			}
			if _, ok := gw.unprotect(last, false); ok {
				t.Error("a replayed packet was accepted")
			}
			pli, _ := (&rtcp.PictureLossIndication{SenderSSRC: 1, MediaSSRC: 42}).Marshal()
			if got, ok := roundTrip(gw, room, pli, true); !ok || string(got) != string(pli) {
				t.Fatalf("RTCP gateway → room: ok %v", ok)
			}
			pkt.SequenceNumber++
			plain, _ = pkt.Marshal()
			if err := room.protect(plain, false, conn, &to); err != nil {
				t.Fatal(err)
			}
			n, _ := conn.Read(buf)
			buf[n-1] ^= 1
			if _, ok := gw.unprotect(buf[:n], false); ok {
				t.Error("an altered packet was accepted")
			}
			pkt.SequenceNumber++
			plain, _ = pkt.Marshal()
			if raceEnabled {
				return
			}
			if a := testing.AllocsPerRun(20, func() {
				pkt.SequenceNumber++
				b, _ := pkt.Header.MarshalTo(plain)
				_ = b
				_ = gw.protect(plain, false, conn, &to)
				n, _ := conn.Read(buf)
				room.unprotect(buf[:n], false)
			}); a > 0 {
				t.Errorf("%.1f allocations per packet", a)
			}
		})
	}
}
