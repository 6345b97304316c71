package whip_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"github.com/cau-project/cau/app"
	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/client"
	"github.com/cau-project/cau/internal/httpapi"
	"github.com/cau-project/cau/internal/testapp"
	"github.com/cau-project/cau/internal/testmedia"
	"github.com/cau-project/cau/internal/testpeer"
	"github.com/cau-project/cau/internal/testutil"
)

func start(t *testing.T) *app.App { return startWith(t, nil) }

// wsURL is a's signaling socket.
func wsURL(a *app.App) string { return strings.Replace(a.URL(), "http://", "ws://", 1) + "/ws" }

// publisher joins meeting from ha-noi as a Go client that publishes a camera and a
// microphone, closed when the test ends.
func publisher(t *testing.T, a *app.App, meeting string) *client.Client {
	t.Helper()
	return testmedia.DialPublishing(t, wsURL(a), token(t, a, meeting, "ha-noi", "Hà Nội"), client.Options{Loopback: true})
}

// deleteResource DELETEs the WHIP or WHEP resource at url (a participant of hue: what)
// with tok, and waits until observer no longer sees it in the meeting.
func deleteResource(t *testing.T, url, tok string, observer *client.Client, what string) {
	t.Helper()
	if resp, body := do(t, http.MethodDelete, url, tok, "", ""); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", resp.StatusCode, body)
	}
	testutil.Eventually(t, 10*time.Second, func() string {
		for _, p := range observer.Participants() {
			if p.Site == "hue" {
				return what + " is still a participant after DELETE"
			}
		}
		return ""
	})
}

// startWith is start with the configuration changed by mutate (if not nil).
func startWith(t *testing.T, mutate func(*app.Config)) *app.App {
	t.Helper()
	cfg := app.Config{ICEUDPPort: 0, ICETCPPort: -1, Dev: true}
	if mutate != nil {
		mutate(&cfg)
	}
	a, _ := testapp.Start(t, cfg)
	return a
}

func token(t *testing.T, a *app.App, meeting, site, name string) string {
	t.Helper()
	tok, err := a.Keys().Sign(auth.Claims{Use: auth.UseJoin, Meeting: meeting, Site: site, Name: name, Role: auth.RoleParticipant}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func do(t *testing.T, method, url, tok, ctype, body string) (*http.Response, string) {
	t.Helper()
	return doWith(t, method, url, tok, ctype, body, nil)
}

// doWith is do with extra request headers.
func doWith(t *testing.T, method, url, tok, ctype, body string, extra map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for k, v := range extra {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestWHIPPublisherSeenByGoClient: a pion encoder publishes with one WHIP POST (its
// offer carries its candidates, as OBS's does); a normal Go client in the meeting sees
// it arrive as a participant and receives its video and audio; DELETE ends it and the
// client sees it leave.
func TestWHIPPublisherSeenByGoClient(t *testing.T) {
	testmedia.Need(t)
	for _, mime := range []string{webrtc.MimeTypeVP8, webrtc.MimeTypeH264} {
		t.Run(strings.TrimPrefix(mime, "video/"), func(t *testing.T) { whipPublishes(t, mime) })
	}
}

func whipPublishes(t *testing.T, mime string) {
	a := start(t)
	t0 := time.Now()
	viewer := publisher(t, a, "whip")
	wsJoin := time.Since(t0)

	enc := testmedia.NewPublisherOf(t, "obs", 0, mime)
	offer, err := enc.Offer()
	if err != nil {
		t.Fatal(err)
	}
	tok := token(t, a, "whip", "hue", "Bộ mã hoá Huế")
	t0 = time.Now()
	resp, answer := do(t, http.MethodPost, a.URL()+"/whip/whip", tok, "application/sdp", offer)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /whip: %d %s", resp.StatusCode, answer)
	}
	// A figure, not an assertion: the WHIP POST (join + offer/answer) against a
	// WebSocket join and publish in the same run.
	t.Logf("WHIP POST → 201 in %v; WebSocket join + publish offer/answer in %v", time.Since(t0), wsJoin)
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, "/whip/whip/") || resp.Header.Get("ETag") == "" ||
		resp.Header.Get("Content-Type") != "application/sdp" {
		t.Fatalf("201 headers: Location %q, ETag %q, Content-Type %q", loc, resp.Header.Get("ETag"), resp.Header.Get("Content-Type"))
	}
	if links := resp.Header.Values("Link"); len(links) == 0 || !strings.Contains(links[0], `rel="ice-server"`) {
		t.Errorf("no TURN server in Link headers: %q", links)
	}
	if err := enc.Answer(answer); err != nil {
		t.Fatal(err)
	}
	clip := testmedia.MakeClip(t, 320, 240)
	if mime == webrtc.MimeTypeH264 {
		clip = testmedia.MakeH264Clip(t, 320, 240)
	}
	enc.Start(func(int) *testmedia.Clip { return clip })

	var streamID string
	testutil.Eventually(t, 30*time.Second, func() string {
		for _, p := range viewer.Participants() {
			if p.Name == "Bộ mã hoá Huế" && p.Site == "hue" {
				streamID = p.Streams["camera"]
			}
		}
		if streamID == "" {
			return "the viewer has not seen the encoder join"
		}
		for _, kind := range []string{"video", "audio"} {
			s := viewer.Stream(streamID, kind)
			if s == nil || s.Packets.Load() < 30 {
				return "the viewer has not received 30 " + kind + " packets from the encoder"
			}
			if kind == "video" && !strings.EqualFold(s.MimeType, mime) {
				return "the viewer receives " + s.MimeType + ", want " + mime
			}
		}
		return ""
	})
	// The encoder only publishes: the viewer's own stream is not sent to it.
	for _, tr := range enc.PC.GetTransceivers() {
		if tr.Receiver() != nil && len(tr.Receiver().Tracks()) > 0 && tr.Receiver().Track() != nil && tr.Receiver().Track().SSRC() != 0 {
			t.Errorf("the encoder receives a track: %v", tr.Receiver().Track().ID())
		}
	}

	checkPatches(t, a.URL()+loc, tok, resp.Header.Get("ETag"), offer)
	if resp, body := do(t, http.MethodDelete, a.URL()+loc, token(t, a, "whip", "hue", "another"), "", ""); resp.StatusCode != http.StatusForbidden {
		t.Errorf("DELETE with another token: %d %s, want 403", resp.StatusCode, body)
	}
	deleteResource(t, a.URL()+loc, tok, viewer, "the encoder")
	if resp, _ := do(t, http.MethodDelete, a.URL()+loc, tok, "", ""); resp.StatusCode != http.StatusNotFound {
		t.Errorf("second DELETE: %d, want 404", resp.StatusCode)
	}
}

// patchReq sends a PATCH with If-Match (none when ifMatch is "").
func patchReq(t *testing.T, url, tok, ifMatch, ctype, body string) (*http.Response, string) {
	t.Helper()
	extra := map[string]string{}
	if ifMatch != "" {
		extra["If-Match"] = ifMatch
	}
	return doWith(t, http.MethodPatch, url, tok, ctype, body, extra)
}

// trickleFragment is the trickle-ice-sdpfrag a client PATCHes for the first media section
// of its offer: its ICE credentials, the section's mid and its candidates.
func trickleFragment(t *testing.T, offer string) string {
	t.Helper()
	var ufrag, pwd, mid string
	var cands []string
	for _, l := range strings.Split(offer, "\r\n") {
		switch {
		case strings.HasPrefix(l, "a=ice-ufrag:") && ufrag == "":
			ufrag = l
		case strings.HasPrefix(l, "a=ice-pwd:") && pwd == "":
			pwd = l
		case strings.HasPrefix(l, "a=mid:") && mid == "":
			mid = l
		case strings.HasPrefix(l, "a=candidate:") && len(cands) < 8:
			cands = append(cands, l)
		}
	}
	if ufrag == "" || mid == "" || len(cands) == 0 {
		t.Fatalf("the offer has no ICE credentials, mid or candidates:\n%s", offer)
	}
	return strings.Join(append([]string{ufrag, pwd, "m=audio 9 UDP/TLS/RTP/SAVPF 0", mid}, cands...), "\r\n") + "\r\na=end-of-candidates\r\n"
}

// checkPatches sends a live session's PATCHes (RFC 9725 §4.3): trickled candidates with
// the ETag or *, and each kind of bad PATCH with its status.
func checkPatches(t *testing.T, url, tok, etag, offer string) {
	t.Helper()
	frag := trickleFragment(t, offer)
	restart := strings.Replace(frag, "a=ice-ufrag:", "a=ice-ufrag:x", 1)
	cases := []struct {
		name, ifMatch, ctype, body string
		status                     int
		code                       string
	}{
		{"trickle", etag, "application/trickle-ice-sdpfrag", frag, 204, ""},
		{"trickle with If-Match *", "*", "application/trickle-ice-sdpfrag", "a=end-of-candidates\r\n", 204, ""},
		{"stale ETag", `"old"`, "application/trickle-ice-sdpfrag", frag, 412, httpapi.CodePreconditionFailed},
		{"no If-Match", "", "application/trickle-ice-sdpfrag", frag, 428, httpapi.CodePreconditionRequired},
		{"SDP body", etag, "application/sdp", frag, 415, httpapi.CodeUnsupportedType},
		{"ICE restart", etag, "application/trickle-ice-sdpfrag", restart, 422, httpapi.CodeInvalid},
		{"malformed candidate", etag, "application/trickle-ice-sdpfrag", "m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\na=candidate:1 1 udp\r\n", 400, httpapi.CodeBadRequest},
		{"candidate outside a section", etag, "application/trickle-ice-sdpfrag", "a=candidate:1 1 udp 1 127.0.0.1 9 typ host\r\n", 400, httpapi.CodeBadRequest},
		{"not SDP lines", etag, "application/trickle-ice-sdpfrag", "hello\r\n", 400, httpapi.CodeBadRequest},
		{"too large", etag, "application/trickle-ice-sdpfrag", strings.Repeat("a=x:y\r\n", 4000), 413, httpapi.CodeTooLarge},
	}
	for _, c := range cases {
		resp, body := patchReq(t, url, tok, c.ifMatch, c.ctype, c.body)
		if resp.StatusCode != c.status {
			t.Errorf("PATCH %s: %d %s, want %d", c.name, resp.StatusCode, body, c.status)
			continue
		}
		if c.code != "" {
			if e := httpapi.ParseError(resp.StatusCode, []byte(body)); e.Code != c.code || e.Message == "" {
				t.Errorf("PATCH %s: error body %q, want code %s with a message", c.name, body, c.code)
			}
		}
	}
}

// TestWHIPRefusals: each kind of bad request gets its own clear 4xx in the REST error
// shape, and none leaves anyone in the meeting.
func TestWHIPRefusals(t *testing.T) {
	a := start(t)
	url := a.URL() + "/whip/m1"
	tok := token(t, a, "m1", "hue", "Huế")
	const recvOnly = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n" +
		"m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=recvonly\r\na=rtpmap:96 VP8/90000\r\n" +
		"a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=fingerprint:sha-256 " +
		"00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n" +
		"a=setup:actpass\r\na=rtcp-mux\r\n"
	// Sends video but has no ICE credentials: it parses, and the bridge refuses it.
	noICE := strings.Replace(strings.Replace(recvOnly, "a=recvonly", "a=sendonly", 1),
		"a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n", "", 1)
	// Parses and has ICE credentials, but a fingerprint without its hash.
	fp := recvOnly[strings.Index(recvOnly, "a=fingerprint:"):]
	fp = fp[:strings.Index(fp, "\r\n")]
	badSetup := strings.Replace(strings.Replace(recvOnly, "a=recvonly", "a=sendonly", 1), fp, "a=fingerprint:sha-256", 1)
	other := token(t, a, "m2", "hue", "Huế")
	api, err := a.Keys().Sign(auth.Claims{Use: auth.UseAPI, Role: auth.RoleAdmin}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, method, url, tok, ctype, body string
		status                              int
		code                                string
	}{
		{"no token", "POST", url, "", "application/sdp", recvOnly, 401, httpapi.CodeUnauthorized},
		{"garbage token", "POST", url, "not-a-jwt", "application/sdp", recvOnly, 401, httpapi.CodeUnauthorized},
		{"API token", "POST", url, api, "application/sdp", recvOnly, 401, httpapi.CodeUnauthorized},
		{"another meeting's token", "POST", url, other, "application/sdp", recvOnly, 403, httpapi.CodeForbidden},
		{"JSON body", "POST", url, tok, "application/json", `{"sdp":"v=0"}`, 415, httpapi.CodeUnsupportedType},
		{"not SDP", "POST", url, tok, "application/sdp", "hello", 400, httpapi.CodeBadRequest},
		{"too large", "POST", url, tok, "application/sdp", "v=0\r\n" + strings.Repeat("a=x:y\r\n", 10000), 413, httpapi.CodeTooLarge},
		{"receive-only offer", "POST", url, tok, "application/sdp", recvOnly, 422, httpapi.CodeInvalid},
		{"offer without ICE credentials", "POST", url, tok, "application/sdp", noICE, 400, httpapi.CodeBadRequest},
		{"offer the bridge refuses", "POST", url, tok, "application/sdp", badSetup, 400, httpapi.CodeBadRequest},
		{"unknown resource", "DELETE", url + "/nothere", tok, "", "", 404, httpapi.CodeNotFound},
		{"PATCH unknown resource", "PATCH", url + "/nothere", tok, "application/trickle-ice-sdpfrag", "a=x", 404, httpapi.CodeNotFound},
		{"GET", "GET", url, tok, "", "", 405, ""},
	}
	for _, c := range cases {
		resp, body := do(t, c.method, c.url, c.tok, c.ctype, c.body)
		if resp.StatusCode != c.status {
			t.Errorf("%s: %d %s, want %d", c.name, resp.StatusCode, body, c.status)
			continue
		}
		if c.code == "" {
			continue
		}
		if e := httpapi.ParseError(resp.StatusCode, []byte(body)); e.Code != c.code || e.Message == "" {
			t.Errorf("%s: error body %q, want code %s with a message", c.name, body, c.code)
		}
		if c.status == 401 && resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: 401 without WWW-Authenticate", c.name)
		}
	}
	if ps := a.Signaling().Participants("m1"); len(ps) != 0 {
		t.Errorf("refused requests left participants in the meeting: %+v", ps)
	}
	resp, _ := do(t, http.MethodOptions, url, "", "", "")
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") == "" ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Authorization") ||
		resp.Header.Get("Accept-Post") != "application/sdp" {
		t.Errorf("OPTIONS: %d %v", resp.StatusCode, resp.Header)
	}
}

// whepViewer is a pion player: a receive-only offer for one video and one audio track,
// as a WHEP page or a restreamer sends; it counts the RTP packets of each kind.
type whepViewer struct {
	pc           *webrtc.PeerConnection
	video, audio atomic.Int64
}

func newWHEPViewer(t *testing.T) (*whepViewer, string) {
	t.Helper()
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	// No mDNS: nobody here resolves .local names, and each peer connection would open
	// multicast sockets and a reader goroutine for it (leaked past Close on a loaded box).
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	v := &whepViewer{pc: pc}
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		n := &v.audio
		if tr.Kind() == webrtc.RTPCodecTypeVideo {
			n = &v.video
		}
		for {
			if _, _, err := tr.ReadRTP(); err != nil {
				return
			}
			n.Add(1)
		}
	})
	return v, testpeer.Offer(t, pc)
}

// TestWHEPViewerReceivesParticipant: a normal Go client publishes in a meeting; a pion
// WHEP player that names the client's site receives its video and audio; DELETE ends
// the viewer, which leaves the meeting.
func TestWHEPViewerReceivesParticipant(t *testing.T) {
	a := start(t)
	pub := publisher(t, a, "whep")

	v, offer := newWHEPViewer(t)
	tok := token(t, a, "whep", "hue", "Màn hình Huế")
	if resp, body := do(t, http.MethodPost, a.URL()+"/whep/other", tok, "application/sdp", offer); resp.StatusCode != http.StatusForbidden {
		t.Errorf("WHEP POST to another meeting: %d %s, want 403", resp.StatusCode, body)
	}
	resp, answer := do(t, http.MethodPost, a.URL()+"/whep/whep/ha-noi", tok, "application/sdp", offer)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("WHEP POST: %d %s", resp.StatusCode, answer)
	}
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, "/whep/whep/ha-noi/") || resp.Header.Get("Content-Type") != "application/sdp" {
		t.Fatalf("201 headers: %v", resp.Header)
	}
	if err := v.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, func() string {
		if v.video.Load() < 30 || v.audio.Load() < 30 {
			return fmt.Sprintf("the WHEP viewer has %d video and %d audio packets, want 30 of each", v.video.Load(), v.audio.Load())
		}
		return ""
	})
	checkPatches(t, a.URL()+loc, tok, resp.Header.Get("ETag"), offer)
	deleteResource(t, a.URL()+loc, tok, pub, "the WHEP viewer")
}
