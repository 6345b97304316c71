package sipgw_test

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cau-project/cau/app"
	"github.com/cau-project/cau/internal/testkit"
	"github.com/cau-project/cau/internal/testutil"
	"github.com/cau-project/cau/rooms"
)

// tlsUA speaks SIP over one TLS connection by hand: it reads whole messages (framed by
// Content-Length, RFC 3261 §18.3), so a test sees exactly what came on that connection.
type tlsUA struct {
	t    *testing.T
	conn *tls.Conn
	r    *bufio.Reader
}

// read returns the next message on the connection.
func (u *tlsUA) read(timeout time.Duration) string {
	u.t.Helper()
	_ = u.conn.SetReadDeadline(time.Now().Add(timeout))
	tp := textproto.NewReader(u.r)
	var b strings.Builder
	n := 0
	for {
		line, err := tp.ReadLine()
		if err != nil {
			u.t.Fatalf("reading SIP over TLS: %v (so far %q)", err, b.String())
		}
		if line == "" && b.Len() == 0 {
			continue // a CRLF keep-alive
		}
		b.WriteString(line + "\r\n")
		if line == "" {
			break
		}
		if k, v, ok := strings.Cut(line, ":"); ok && (strings.EqualFold(k, "Content-Length") || k == "l") {
			n, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(u.r, body); err != nil {
		u.t.Fatalf("reading a SIP body over TLS: %v", err)
	}
	return b.String() + string(body)
}

func (u *tlsUA) send(msg string) {
	u.t.Helper()
	if _, err := io.WriteString(u.conn, msg); err != nil {
		u.t.Fatal(err)
	}
}

// TestSIPTLSDialogKeepsItsConnection: a room calls over TLS and asks the gateway to
// refresh the session (refresher=uas); its Contact names a port where nothing listens,
// so the gateway's in-dialog requests (the UPDATE refreshes) reach it only on the TLS
// connection of the INVITE. The call then ends by the room's BYE on that connection.
func TestSIPTLSDialogKeepsItsConnection(t *testing.T) {
	cfg := sippConfig()
	cfg.TLS, cfg.TLSAddr = serverTLS(t), "127.0.0.1:0"
	a, _ := startWith(t, cfg)
	roots := x509.NewCertPool()
	leaf, err := x509.ParseCertificate(cfg.TLS.Certificates[0].Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	roots.AddCert(leaf)
	conn, err := tls.Dial("tcp", a.SIP().TLSAddr().String(), &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	u := &tlsUA{t: t, conn: conn, r: bufio.NewReader(conn)}

	local, gw := conn.LocalAddr().String(), a.SIP().TLSAddr().String()
	ruri := "sip:tls-timer@" + gw + ";transport=tls"
	req := func(method string, cseq int, toTag, extra, body string) string {
		var b strings.Builder
		fmt.Fprintf(&b, "%s %s SIP/2.0\r\nVia: SIP/2.0/TLS %s;branch=z9hG4bKtls%d%s\r\n", method, ruri, local, cseq, method)
		fmt.Fprintf(&b, "From: \"TLS room\" <sip:room@127.0.0.1>;tag=fromtls\r\nTo: <%s>", ruri)
		if toTag != "" {
			b.WriteString(";tag=" + toTag)
		}
		fmt.Fprintf(&b, "\r\nCall-ID: tls1\r\nCSeq: %d %s\r\nContact: <sip:room@127.0.0.1:9;transport=tls>\r\n", cseq, method)
		b.WriteString("Max-Forwards: 70\r\n" + extra)
		if body != "" {
			b.WriteString("Content-Type: application/sdp\r\n")
		}
		fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
		return b.String()
	}
	offer := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
		"m=audio 41010 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n" +
		"m=video 41012 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\n"
	u.send(req("INVITE", 1, "", "Supported: timer\r\nSession-Expires: 6;refresher=uas\r\n"+
		"Allow: INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE\r\n", offer))
	var resp string
	for {
		resp = u.read(20 * time.Second)
		if !strings.HasPrefix(resp, "SIP/2.0 1") {
			break
		}
	}
	if status(resp) != "200 OK" {
		t.Fatalf("INVITE over TLS: %q", status(resp))
	}
	if !strings.Contains(resp, ";transport=tls") {
		t.Errorf("the gateway's Contact does not keep TLS:\n%s", resp)
	}
	tag := toTag(resp)
	u.send(req("ACK", 1, tag, "", ""))

	// The gateway refreshes before the 6 s session runs out (at 3 s: slack for a loaded
	// machine), on this connection.
	for i := range 1 {
		msg := u.read(10 * time.Second)
		for !strings.HasPrefix(msg, "UPDATE ") && !strings.HasPrefix(msg, "INVITE ") {
			msg = u.read(10 * time.Second)
		}
		if !strings.Contains(msg, "Call-ID: tls1") || !strings.Contains(msg, "SIP/2.0/TLS") {
			t.Fatalf("refresh %d is not the call's, over TLS:\n%s", i+1, msg)
		}
		// refresher=uac: the sender of the refresh, the gateway, goes on refreshing.
		u.send(strings.Replace(okTo(msg), "Content-Length: 0", "Supported: timer\r\nSession-Expires: 6;refresher=uac\r\n"+
			"Content-Length: 0", 1))
	}
	u.send(req("BYE", 2, tag, "", ""))
	for {
		if msg := u.read(10 * time.Second); strings.HasPrefix(msg, "SIP/2.0 ") && strings.Contains(msg, " BYE\r\n") {
			if status(msg) != "200 OK" {
				t.Errorf("BYE: %q", status(msg))
			}
			break
		}
	}
	noCalls(t, a)
}

// TestAutoDialTLS: a room endpoint whose SIP URI asks for TLS (;transport=tls) is called
// over TLS, its certificate checked against the gateway's TLSClient roots; the call
// joins, and at the meeting's end the gateway's BYE goes on that TLS connection.
func TestAutoDialTLS(t *testing.T) {
	needBaresip(t)
	ctx := t.Context()
	store, tree := testkit.Store(t, rooms.Site{ID: "tinh", Name: "Tỉnh", Level: rooms.LevelProvince},
		rooms.Site{ID: "xa-b", Name: "Xã B", Level: rooms.LevelCommune, Parent: "tinh"})
	// baresip listens over TLS on its SIP port + 1, with a certificate for 127.0.0.1.
	port := freePortPair(t)
	certPEM, keyPEM := testutil.SelfSignedPEM(t, "127.0.0.1")
	pemFile := filepath.Join(t.TempDir(), "room.pem")
	if err := os.WriteFile(pemFile, append(certPEM, keyPEM...), 0o600); err != nil {
		t.Fatal(err)
	}
	room := startBaresipAudio(t, "Phòng họp xã B", fmt.Sprintf("127.0.0.1:%d", port), "", "g711.so",
		"sip_certificate "+pemFile)
	ep := rooms.Endpoint{ID: "phong-hop-xa-b", Name: "Phòng họp xã B", Site: "xa-b", Kind: rooms.KindRoom,
		SIPURI: fmt.Sprintf("sip:room@127.0.0.1:%d;transport=tls", port+1)}
	if err := store.PutEndpoint(ctx, ep); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	m := rooms.Meeting{ID: "hop-tls", Title: "Họp", ChairSite: "tinh", Sites: []string{"tinh", "xa-b"},
		Start: now.Add(time.Second), End: now.Add(30 * time.Second), TestWindow: 5 * time.Second}
	if err := store.CreateMeeting(ctx, m, nil); err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(certPEM)
	a, logs := startConfig(t, app.Config{Store: store, Tree: tree, Site: "tinh", Ancestry: tree.Ancestors,
		SIP: app.SIPConfig{Addr: "127.0.0.1:0", DialPoll: 200 * time.Millisecond, DialBackoff: 500 * time.Millisecond,
			TLSClient: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}})
	testutil.Eventually(t, 10*time.Second, func() string {
		if !room.established() || a.SIP().Calls() != 1 {
			return "the gateway has not called the room"
		}
		if !strings.Contains(logs.String(), "sip_transport=TLS") {
			return "no call answered over TLS"
		}
		return ""
	})
	// The end: brought forward now that the call is up; the booked end leaves room for
	// the call on a loaded box.
	endSoon(t, store, m.ID)
	testutil.Eventually(t, 15*time.Second, func() string {
		if n := a.SIP().Calls(); n != 0 {
			return fmt.Sprintf("%d calls after the meeting's end", n)
		}
		if !strings.Contains(room.out.String(), "terminated") {
			return "baresip has not seen the gateway's BYE"
		}
		return ""
	})
	if strings.Contains(logs.String(), "sip bye to the room") {
		t.Errorf("the gateway's BYE failed:\n%s", grep(logs.String(), "time"))
	}
}

// freePortPair is a port free for UDP and TCP on 127.0.0.1 whose next one is free for
// TCP too (baresip's TLS port), a moment ago.
func freePortPair(t *testing.T) int {
	t.Helper()
	for range 20 {
		p := testutil.FreePort(t)
		if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+1)); err == nil {
			_ = l.Close()
			return p
		}
	}
	t.Fatal("no pair of free ports")
	return 0
}
