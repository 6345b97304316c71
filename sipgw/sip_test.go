package sipgw_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/cau-project/cau/app"
	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/client"
	"github.com/cau-project/cau/internal/testutil"
	"github.com/cau-project/cau/protocol"
	"github.com/cau-project/cau/sipgw"
)

// rawUA speaks SIP over UDP by hand, so that tests can send what no well-behaved stack
// would (missing headers, bad SDP, garbage) and read the gateway's exact replies.
type rawUA struct {
	t    *testing.T
	conn *net.UDPConn
	gw   string
}

func newRawUA(t *testing.T, gw string) *rawUA {
	t.Helper()
	raddr, err := net.ResolveUDPAddr("udp", gw)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialUDP("udp", nil, raddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &rawUA{t: t, conn: conn, gw: gw}
}

func (u *rawUA) local() string { return u.conn.LocalAddr().String() }

// request builds a request from a dialog's fields; an empty header value drops it.
func (u *rawUA) request(method, ruri, callID string, cseq int, toTag string, headers map[string]string, body string) string {
	h := map[string]string{
		"Via":          fmt.Sprintf("SIP/2.0/UDP %s;branch=z9hG4bK%s%d%s;rport", u.local(), callID, cseq, method),
		"From":         "\"Test room\" <sip:room@127.0.0.1>;tag=from" + callID,
		"To":           "<" + ruri + ">",
		"Call-ID":      callID,
		"CSeq":         fmt.Sprintf("%d %s", cseq, method),
		"Contact":      "<sip:room@" + u.local() + ">",
		"Max-Forwards": "70",
	}
	if toTag != "" {
		h["To"] += ";tag=" + toTag
	}
	if body != "" {
		h["Content-Type"] = "application/sdp"
	}
	for k, v := range headers {
		h[k] = v
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s SIP/2.0\r\n", method, ruri)
	for _, k := range []string{"Via", "From", "To", "Call-ID", "CSeq", "Contact", "Max-Forwards", "Content-Type"} {
		if v := h[k]; v != "" {
			fmt.Fprintf(&b, "%s: %s\r\n", k, v)
		}
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	return b.String()
}

func (u *rawUA) send(msg string) {
	u.t.Helper()
	if _, err := u.conn.Write([]byte(msg)); err != nil {
		u.t.Fatal(err)
	}
}

// final reads responses until a final one (≥ 200) for method and returns it whole.
func (u *rawUA) final(method string) string {
	u.t.Helper()
	buf := make([]byte, 65535)
	deadline := time.Now().Add(15 * time.Second)
	for {
		_ = u.conn.SetReadDeadline(deadline)
		n, err := u.conn.Read(buf)
		if err != nil {
			u.t.Fatalf("no final response to %s: %v", method, err)
		}
		msg := string(buf[:n])
		if !strings.HasPrefix(msg, "SIP/2.0 ") || strings.HasPrefix(msg, "SIP/2.0 1") {
			continue
		}
		if !strings.Contains(msg, " "+method+"\r\n") { // the CSeq line
			continue
		}
		return msg
	}
}

// provisional waits for a provisional response (100 Trying) to method.
func (u *rawUA) provisional(method string) {
	u.t.Helper()
	buf := make([]byte, 65535)
	_ = u.conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	for {
		n, err := u.conn.Read(buf)
		if err != nil {
			u.t.Fatalf("no provisional response to %s: %v", method, err)
		}
		if msg := string(buf[:n]); strings.HasPrefix(msg, "SIP/2.0 1") && strings.Contains(msg, " "+method+"\r\n") {
			return
		}
	}
}

func status(resp string) string {
	line, _, _ := strings.Cut(resp, "\r\n")
	return strings.TrimPrefix(line, "SIP/2.0 ")
}

func toTag(resp string) string {
	for _, line := range strings.Split(resp, "\r\n") {
		if strings.HasPrefix(strings.ToLower(line), "to:") {
			if _, tag, ok := strings.Cut(line, ";tag="); ok {
				tag, _, _ = strings.Cut(tag, ";")
				return tag
			}
		}
	}
	return ""
}

const noCommonCodec = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
	"m=audio 40000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\nm=video 40002 RTP/AVP 100\r\na=rtpmap:100 VP8/90000\r\n"

// TestSIPRefusals: each kind of bad request gets its own clear SIP error, garbage is
// survived, and OPTIONS (a codec's keep-alive) is answered throughout.
func TestSIPRefusals(t *testing.T) {
	a, _ := start(t)
	u := newRawUA(t, a.SIP().Addr().String())
	ruri := "sip:giao-ban@" + a.SIP().Addr().String()
	cases := []struct {
		name, method, ruri string
		headers            map[string]string
		body, want         string
	}{
		{"options", "OPTIONS", ruri, nil, "", "200 OK"},
		{"not a meeting id", "INVITE", "sip:bad%20id!@" + a.SIP().Addr().String(), nil, "", "404 "},
		{"no Contact", "INVITE", ruri, map[string]string{"Contact": ""}, "", "400 "},
		{"malformed SDP", "INVITE", ruri, nil, "v=0\r\nm=video banana\r\n", "400 Malformed SDP"},
		{"no common codec", "INVITE", ruri, nil, noCommonCodec, "488 "},
		{"not SDP", "INVITE", ruri, map[string]string{"Content-Type": "text/plain"}, "hello", "415 "},
		{"BYE outside a call", "BYE", ruri, nil, "", "481 "},
		{"unknown method", "SUBSCRIBE", ruri, nil, "", "405 "},
	}
	for i, c := range cases {
		u.send("this is not SIP\r\n\r\n")
		callID := fmt.Sprintf("refusal%d", i)
		u.send(u.request(c.method, c.ruri, callID, 1, "", c.headers, c.body))
		resp := u.final(c.method)
		if !strings.HasPrefix(status(resp), c.want) {
			t.Errorf("%s: %q, want %q", c.name, status(resp), c.want)
		}
		if c.method == "INVITE" {
			u.send(u.request("ACK", c.ruri, callID, 1, toTag(resp), nil, ""))
		}
	}
	u.send(u.request("OPTIONS", ruri, "after", 1, "", nil, ""))
	if got := status(u.final("OPTIONS")); got != "200 OK" {
		t.Errorf("OPTIONS after the refusals: %q", got)
	}
	if n := a.SIP().Calls(); n != 0 {
		t.Errorf("%d calls left after refusals", n)
	}
	if m := scrape(t, a); !strings.Contains(m, `cau_sip_calls_total{outcome="rejected"} 5`) {
		t.Errorf("rejected calls not counted:\n%s", grep(m, "cau_sip_calls_total"))
	}
}

// TestSIPLateOfferAndCancel: an INVITE without SDP is answered with the gateway's offer
// (PCMU, PCMA, H.264 mode 1) and the call starts when the ACK brings the answer; BYE
// ends it. A CANCEL before the answer ends the setup with 487 and leaves no call.
func TestSIPLateOfferAndCancel(t *testing.T) {
	a, _ := start(t)
	u := newRawUA(t, a.SIP().Addr().String())
	ruri := "sip:late@" + a.SIP().Addr().String()

	u.send(u.request("INVITE", ruri, "late1", 1, "", nil, ""))
	resp := u.final("INVITE")
	if status(resp) != "200 OK" {
		t.Fatalf("late offer INVITE: %q", status(resp))
	}
	for _, want := range []string{"m=audio ", "PCMU/8000", "PCMA/8000", "m=video ", "H264/90000", "packetization-mode=1"} {
		if !strings.Contains(resp, want) {
			t.Errorf("the gateway's offer lacks %q:\n%s", want, resp)
		}
	}
	tag := toTag(resp)
	answer := "v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
		"m=audio 41000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\nm=video 41002 RTP/AVPF 96\r\n" +
		"a=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1;profile-level-id=42e01f\r\na=rtcp-fb:96 nack pli\r\n"
	u.send(u.request("ACK", ruri, "late1", 1, tag, nil, answer))
	testutil.Eventually(t, 10*time.Second, func() string {
		if m := scrape(t, a); !strings.Contains(m, `cau_sip_call_codecs_total{codec="pcma",kind="audio"} 1`) {
			return "the late-offer call has not started with PCMA"
		}
		return ""
	})
	u.bye(a, ruri, "late1", 2, tag)

	// CANCEL right after the 100 Trying: the join and the bridge negotiation take longer.
	invite := u.request("INVITE", ruri, "cancel1", 1, "", nil, "")
	u.send(invite)
	u.provisional("INVITE")
	via := viaOf(invite)
	u.send(u.request("CANCEL", ruri, "cancel1", 1, "", map[string]string{"Via": via, "Contact": ""}, ""))
	if got := status(u.final("INVITE")); got != "487 Request Terminated" {
		t.Errorf("INVITE after CANCEL: %q, want 487", got)
	}
	testutil.Eventually(t, 10*time.Second, func() string {
		if n := a.SIP().Calls(); n != 0 {
			return fmt.Sprintf("%d calls after CANCEL", n)
		}
		if m := scrape(t, a); !strings.Contains(m, `cau_sip_calls_total{outcome="cancelled"} 1`) {
			return "the cancelled call is not counted: " + grep(m, "cau_sip_calls_total")
		}
		return ""
	})
}

// TestSIPAllowedNetworks: a call from outside the allowed networks is refused with 403
// before anything joins; OPTIONS still answers (a keep-alive reveals no meeting).
func TestSIPAllowedNetworks(t *testing.T) {
	a, _ := startWith(t, app.SIPConfig{Addr: "127.0.0.1:0", Allow: []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16")}})
	u := newRawUA(t, a.SIP().Addr().String())
	ruri := "sip:giao-ban@" + a.SIP().Addr().String()
	u.send(u.request("INVITE", ruri, "outside", 1, "", nil, ""))
	resp := u.final("INVITE")
	if !strings.HasPrefix(status(resp), "403 ") {
		t.Errorf("INVITE from outside the allowed networks: %q, want 403", status(resp))
	}
	u.send(u.request("ACK", ruri, "outside", 1, toTag(resp), nil, ""))
	if p := a.Signaling().Participants("giao-ban"); len(p) != 0 {
		t.Errorf("participants after a refused call: %v", p)
	}
}

func grep(text, prefix string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// awaitRequest reads until a request with method arrives, answers it 200 OK, and
// returns it.
func (u *rawUA) awaitRequest(method string, timeout time.Duration) string {
	u.t.Helper()
	buf := make([]byte, 65535)
	_ = u.conn.SetReadDeadline(time.Now().Add(timeout))
	for {
		n, err := u.conn.Read(buf)
		if err != nil {
			u.t.Fatalf("no %s: %v", method, err)
		}
		msg := string(buf[:n])
		if !strings.HasPrefix(msg, method+" ") {
			continue
		}
		u.send(okTo(msg))
		return msg
	}
}

// okTo is a 200 OK to the request msg.
func okTo(msg string) string {
	var b strings.Builder
	b.WriteString("SIP/2.0 200 OK\r\n")
	for _, line := range strings.Split(msg, "\r\n") {
		for _, h := range []string{"via:", "from:", "to:", "call-id:", "cseq:"} {
			if strings.HasPrefix(strings.ToLower(line), h) {
				b.WriteString(line + "\r\n")
			}
		}
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	return b.String()
}

// TestSIPHangupBeforeACK: a call ended on the meeting's side between the gateway's 200
// and the room's ACK (here the chair ends the meeting) gets its BYE once the ACK comes,
// and leaves no call behind.
func TestSIPHangupBeforeACK(t *testing.T) {
	const meeting = "ket-thuc"
	a, _ := start(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	chair := dialChair(ctx, t, a, meeting)
	u := newRawUA(t, a.SIP().Addr().String())
	ruri := "sip:" + meeting + "@" + a.SIP().Addr().String()
	u.send(u.request("INVITE", ruri, "noack1", 1, "", nil, ""))
	resp := u.final("INVITE")
	if status(resp) != "200 OK" {
		t.Fatalf("INVITE: %q", status(resp))
	}
	// The 200 is out, no ACK yet: the chair ends the meeting, which hangs the call up.
	if _, err := chair.FloorAction(ctx, protocol.FloorAction{Action: protocol.FloorEnd}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() string {
		if p := a.Signaling().Participants(meeting); len(p) != 0 {
			return fmt.Sprintf("%d participants after the end", len(p))
		}
		return ""
	})
	answer := "v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
		"m=audio 41000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
	u.send(u.request("ACK", ruri, "noack1", 1, toTag(resp), nil, answer))
	bye := u.awaitRequest("BYE", 10*time.Second)
	if !strings.Contains(bye, "Call-ID: noack1") {
		t.Errorf("a BYE for another call:\n%s", bye)
	}
	noCalls(t, a)
}

// TestSIPCancelAfterAnswer: a CANCEL that crosses the gateway's 200 (the room gave up
// just as the gateway answered) changes nothing: the room ACKs the 200, the call is up,
// and the room's BYE ends it (RFC 3261 §9.2: CANCEL has no effect on a request that
// already got its final response).
func TestSIPCancelAfterAnswer(t *testing.T) {
	a, _ := start(t)
	u := newRawUA(t, a.SIP().Addr().String())
	ruri := "sip:cat-ngang@" + a.SIP().Addr().String()
	invite := u.request("INVITE", ruri, "cross1", 1, "", nil, "")
	u.send(invite)
	resp := u.final("INVITE")
	if status(resp) != "200 OK" {
		t.Fatalf("INVITE: %q", status(resp))
	}
	via := viaOf(invite)
	u.send(u.request("CANCEL", ruri, "cross1", 1, "", map[string]string{"Via": via, "Contact": ""}, ""))
	if got := status(u.final("CANCEL")); !strings.HasPrefix(got, "200") && !strings.HasPrefix(got, "481") {
		t.Errorf("CANCEL after the 200: %q", got)
	}
	answer := "v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
		"m=audio 41000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
	u.send(u.request("ACK", ruri, "cross1", 1, toTag(resp), nil, answer))
	testutil.Eventually(t, 10*time.Second, func() string {
		if m := scrape(t, a); !strings.Contains(m, `cau_sip_calls_total{outcome="answered"} 1`) {
			return "the call crossed by a CANCEL did not start: " + grep(m, "cau_sip_calls_total")
		}
		return ""
	})
	u.bye(a, ruri, "cross1", 2, toTag(resp))
}

// viaOf is a request's Via header (a CANCEL repeats its INVITE's).
func viaOf(req string) string {
	for _, line := range strings.Split(req, "\r\n") {
		if v, ok := strings.CutPrefix(line, "Via: "); ok {
			return v
		}
	}
	return ""
}

// dialChair joins meeting as its chair (site trung-uong), a pion client.
func dialChair(ctx context.Context, t *testing.T, a *app.App, meeting string) *client.Client {
	t.Helper()
	tok, err := a.Keys().Sign(auth.Claims{Use: auth.UseJoin, Meeting: meeting, Site: "trung-uong", Name: "Chủ tọa",
		Role: auth.RoleChair}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	chair, err := client.Dial(ctx, strings.Replace(a.URL(), "http://", "ws://", 1)+"/ws", tok, client.Options{Loopback: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(chair.Close)
	return chair
}

// bye ends a call by BYE and waits until the gateway has no call left.
func (u *rawUA) bye(a *app.App, ruri, callID string, cseq int, tag string) {
	u.t.Helper()
	u.send(u.request("BYE", ruri, callID, cseq, tag, nil, ""))
	if got := status(u.final("BYE")); got != "200 OK" {
		u.t.Errorf("BYE: %q", got)
	}
	noCalls(u.t, a)
}

// TestSIPSRTPMandatory: with SRTP mandatory, a plain RTP offer is refused with 488 and
// says why, and a call without an offer (late offer) is offered RTP/SAVP(F) with SDES
// keys; an answer without keys ends that call.
func TestSIPSRTPMandatory(t *testing.T) {
	a, _ := startWith(t, app.SIPConfig{Addr: "127.0.0.1:0", SRTP: sipgw.SRTPMandatory})
	u := newRawUA(t, a.SIP().Addr().String())
	ruri := "sip:mat-ma@" + a.SIP().Addr().String()
	plain := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
		"m=audio 41000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
	u.send(u.request("INVITE", ruri, "plain1", 1, "", nil, plain))
	resp := u.final("INVITE")
	if got := status(resp); !strings.HasPrefix(got, "488 ") || !strings.Contains(got, "SRTP") {
		t.Errorf("plain offer: %q, want 488 saying SRTP is required", got)
	}
	u.send(u.request("ACK", ruri, "plain1", 1, toTag(resp), nil, ""))

	u.send(u.request("INVITE", ruri, "late1", 1, "", nil, ""))
	resp = u.final("INVITE")
	if status(resp) != "200 OK" {
		t.Fatalf("late offer: %q", status(resp))
	}
	for _, want := range []string{"m=audio ", " RTP/SAVP 0 8\r\n", " RTP/SAVPF 96\r\n", "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:",
		"a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:"} {
		if !strings.Contains(resp, want) {
			t.Errorf("the gateway's offer lacks %q:\n%s", want, resp)
		}
	}
	u.send(u.request("ACK", ruri, "late1", 1, toTag(resp), nil, plain))
	bye := u.awaitRequest("BYE", 10*time.Second)
	if !strings.Contains(bye, "Call-ID: late1") {
		t.Errorf("a BYE for another call:\n%s", bye)
	}
	noCalls(t, a)
}
