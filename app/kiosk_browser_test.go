package app_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/cau-project/cau/apiclient"
	"github.com/cau-project/cau/app"
	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/client"
	"github.com/cau-project/cau/internal/testbrowser"
	"github.com/cau-project/cau/internal/testkit"
	"github.com/cau-project/cau/protocol"
)

// apiCall makes one REST call as an admin (through apiclient) and decodes the answer.
func apiCall(t *testing.T, a *app.App, method, path string, body, out any) {
	t.Helper()
	tok, err := a.Keys().Sign(auth.Claims{Use: auth.UseAPI, Role: auth.RoleAdmin, Name: "kiosk test"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := apiclient.New(a.URL(), tok, nil).Do(t.Context(), method, path, body, out); err != nil {
		t.Fatal(err)
	}
}

// bookPhuocSon schedules meeting id over the API, as an admin: "Giao ban huyện Phước Sơn"
// with every site of the district qnam-psn, from start to end, its test window
// testWindow before the start ("": the default). It returns the meeting as created.
func bookPhuocSon(t *testing.T, a *app.App, id string, start, end time.Time, testWindow string) apiclient.Meeting {
	t.Helper()
	body := map[string]any{"id": id, "title": "Giao ban huyện Phước Sơn", "select": map[string]any{"root": "qnam-psn"},
		"start": start.Format(time.RFC3339Nano), "end": end.Format(time.RFC3339Nano)}
	if testWindow != "" {
		body["test_window"] = testWindow
	}
	var m apiclient.Meeting
	apiCall(t, a, "POST", "/meetings", body, &m)
	return m
}

// districtChair joins meeting as the chair at the district qnam-psn (a Go client that
// publishes nothing), closed when the test ends.
func districtChair(t *testing.T, a *app.App, meeting string) *client.Client {
	t.Helper()
	tok, err := a.Keys().Sign(auth.Claims{Use: auth.UseJoin, Meeting: meeting, Site: "qnam-psn", Name: "Huyện Phước Sơn", Role: auth.RoleChair}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, "ws"+strings.TrimPrefix(a.URL(), "http")+"/ws", tok, client.Options{Name: "Huyện Phước Sơn", Loopback: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// roomParticipant finds the kiosk among what the observer sees.
func roomParticipant(c *client.Client, site string) (protocol.Participant, bool) {
	for _, p := range c.Participants() {
		if p.Role == string(auth.RoleRoom) && p.Site == site {
			return p, true
		}
	}
	return protocol.Participant{}, false
}

// TestBrowserKiosk: a meeting-room kiosk page, opened before its meeting is booked, picks
// the booking up, counts down, joins by itself when the test window opens (another
// participant sees it and receives its camera), comes back after a reload and after a
// network drop, and leaves by itself at the meeting's end.
func TestBrowserKiosk(t *testing.T) {
	s := newStage(t, true)
	a, dir := s.app, s.dir
	proxy := testkit.NewCutProxy(t, strings.TrimPrefix(a.URL(), "http://"))
	const site = "qnam-psn-c01"

	var created struct {
		KioskPath string `json:"kiosk_path"`
	}
	apiCall(t, a, "POST", "/endpoints", map[string]any{"id": "room-c01", "name": "Phòng họp Khâm Đức", "site": site, "kind": "room"}, &created)

	kiosk := s.browsers(testbrowser.Options{}, "kiosk")[0]
	// Through the proxy, so the network can be cut; poll=1 so the booking shows at once.
	if err := kiosk.Run(30*time.Second, chromedp.Navigate(proxy.URL()+created.KioskPath+"&poll=1")); err != nil {
		t.Fatalf("open the kiosk page: %v", err)
	}
	if err := kiosk.WaitFor("the empty plan", `window.cauRoom && window.cauRoom.polls > 0 &&
		document.getElementById('site-name').textContent === 'Thị trấn Khâm Đức' &&
		document.getElementById('next-title').textContent.includes('Chưa có cuộc họp')`, 10*time.Second); err != nil {
		t.Fatal(err)
	}

	// Book the province's meeting: test window from T0+6 s, start T0+8 s, end T0+36 s (brought
	// forward once the checks in the meeting pass).
	t0 := time.Now()
	connectAt, start, end := t0.Add(6*time.Second), t0.Add(8*time.Second), t0.Add(36*time.Second)
	m := bookPhuocSon(t, a, "kiosk-test", start, end, "2s")
	if err := kiosk.WaitFor("the countdown", `document.getElementById('next-title').textContent === 'Giao ban huyện Phước Sơn' &&
		!document.getElementById('countdown').hidden &&
		document.getElementById('countdown').textContent.includes('Tự động kết nối sau')`, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	kiosk.Shot(t, dir, "countdown")
	if testbrowser.Eval[int](t, kiosk, `window.cauRoom.sessions`) != 0 {
		t.Fatal("the kiosk joined before the test window")
	}

	// Another participant joins at the district as the window opens.
	time.Sleep(time.Until(connectAt))
	observer := districtChair(t, a, m.ID)

	// The kiosk joins by itself, not before the window opened; the observer sees it and
	// receives its camera.
	if err := kiosk.WaitFor("the kiosk joined", `window.cauRoom.joined`, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	joinedAt := time.UnixMilli(int64(testbrowser.Eval[float64](t, kiosk, `window.cauRoom.joinedAt`)))
	if joinedAt.Before(connectAt.Add(-500 * time.Millisecond)) {
		t.Errorf("the kiosk joined at %v, before the window opened at %v", joinedAt, connectAt)
	}
	t.Logf("the kiosk joined %v after the window opened", joinedAt.Sub(connectAt).Round(time.Millisecond))
	first := testbrowser.Eval[string](t, kiosk, `window.cauRoom.selfId`)
	waitUntil(t, "the observer sees the kiosk", 10*time.Second, func() string {
		if p, ok := roomParticipant(observer, site); !ok || p.ID != first {
			return fmt.Sprintf("participants %v", observer.Participants())
		}
		if s := observer.Stream(first+".camera", "video"); s == nil || s.Packets.Load() < 20 {
			return "no video from the kiosk yet"
		}
		return ""
	})
	if err := kiosk.WaitFor("the kiosk shows the observer", `window.cauRoom.participants.includes('`+observer.Self.ID+`') &&
		!document.getElementById('meeting-screen').hidden`, 5*time.Second); err != nil {
		t.Error(err)
	}
	kiosk.Shot(t, dir, "in-meeting")

	// A reload: the page joins again by itself, and its old session is gone.
	if err := kiosk.Run(20*time.Second, chromedp.Reload()); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if err := kiosk.WaitFor("rejoined after the reload", `window.cauRoom && window.cauRoom.joined && window.cauRoom.selfId !== '`+first+`'`, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	second := testbrowser.Eval[string](t, kiosk, `window.cauRoom.selfId`)
	waitUntil(t, "the observer sees the reloaded kiosk only", 10*time.Second, func() string {
		var rooms []string
		for _, p := range observer.Participants() {
			if p.Role == string(auth.RoleRoom) {
				rooms = append(rooms, p.ID)
			}
		}
		if len(rooms) != 1 || rooms[0] != second {
			return fmt.Sprintf("room participants %v, want [%s]", rooms, second)
		}
		return ""
	})

	// A network drop: every connection through the proxy is cut; the page comes back.
	proxy.Cut()
	if err := kiosk.WaitFor("rejoined after the drop", `window.cauRoom.joined && window.cauRoom.selfId !== '`+second+`'`, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	third := testbrowser.Eval[string](t, kiosk, `window.cauRoom.selfId`)
	waitUntil(t, "the observer sees the kiosk back", 10*time.Second, func() string {
		if p, ok := roomParticipant(observer, site); !ok || p.ID != third {
			return fmt.Sprintf("participants %v", observer.Participants())
		}
		return ""
	})
	// Someone else with a token for the room's endpoint (issue 12, finding 6) is refused;
	// the kiosk keeps its meeting.
	intruderTok, err := a.Keys().Sign(auth.Claims{Use: auth.UseJoin, Meeting: m.ID, Site: site, Name: "Phòng họp Khâm Đức",
		Role: auth.RoleRoom, Endpoint: "room-c01"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	intruder, err := client.Dial(ctx, "ws"+strings.TrimPrefix(a.URL(), "http")+"/ws", intruderTok, client.Options{Loopback: true})
	cancel()
	if err == nil {
		intruder.Close()
		t.Fatal("a second session for the room's endpoint joined while the kiosk was in")
	}
	if !strings.Contains(err.Error(), protocol.CodeEndpointInUse) {
		t.Fatalf("the second session for the endpoint: %v, want %s", err, protocol.CodeEndpointInUse)
	}
	if got := testbrowser.Eval[string](t, kiosk, `window.cauRoom.joined ? window.cauRoom.selfId : ''`); got != third {
		t.Fatalf("the kiosk's session after the intruder: %q, want %q still joined", got, third)
	}
	if time.Now().After(end.Add(-2 * time.Second)) {
		t.Fatalf("too slow: the meeting is about to end before the leave can be checked (machine overloaded?)")
	}
	// The checks in the meeting passed: bring its end forward to 3 s from now, over the
	// API, rather than wait out the booked end (the page reads its plan every second, so
	// it follows a rescheduled end as it would the booked one).
	end = time.Now().Add(3 * time.Second).Truncate(time.Millisecond)
	var moved apiclient.Meeting
	apiCall(t, a, "PATCH", "/meetings/"+m.ID, map[string]any{"end": end.Format(time.RFC3339Nano)}, &moved)
	if !moved.End.Equal(end) {
		t.Fatalf("rescheduled end %v, want %v", moved.End, end)
	}

	// The end: the kiosk leaves by itself, not before; the observer sees it go.
	if err := kiosk.WaitFor("left at the end", `!window.cauRoom.joined && window.cauRoom.leftAt > 0 &&
		!document.getElementById('idle-screen').hidden`, time.Until(end)+10*time.Second); err != nil {
		t.Fatal(err)
	}
	leftAt := time.UnixMilli(int64(testbrowser.Eval[float64](t, kiosk, `window.cauRoom.leftAt`)))
	if leftAt.Before(end.Add(-500 * time.Millisecond)) {
		t.Errorf("the kiosk left at %v, before the end at %v", leftAt, end)
	}
	t.Logf("the kiosk left %v after the end", leftAt.Sub(end).Round(time.Millisecond))
	waitUntil(t, "the observer sees the kiosk leave", 5*time.Second, func() string {
		if _, ok := roomParticipant(observer, site); ok {
			return "the kiosk is still in the meeting"
		}
		return ""
	})
	// And it stays out: nothing more to join.
	time.Sleep(2 * time.Second)
	if testbrowser.Eval[bool](t, kiosk, `window.cauRoom.joined`) {
		t.Error("the kiosk joined again after the end")
	}
	kiosk.Shot(t, dir, "after-end")
}

// waitUntil polls check (which returns why it is not yet satisfied) until it returns "".
func waitUntil(t *testing.T, what string, timeout time.Duration, check func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		why := check()
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s within %v: %s", what, timeout, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
