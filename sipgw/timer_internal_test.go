package sipgw

import (
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// TestNegotiateTimer: the interval and the refresher chosen for each way a room may ask
// for session timers (RFC 4028), and the refusals.
func TestNegotiateTimer(t *testing.T) {
	g := &Gateway{cfg: Config{SessionExpires: 1800 * time.Second, MinSE: 90 * time.Second}}
	cases := []struct {
		name, headers string
		cur           sessionTimer
		want          sessionTimer
		status        int
	}{
		{"no timers", "", sessionTimer{}, sessionTimer{}, 0},
		{"supported only", "Supported: replaces, timer\r\n", sessionTimer{}, sessionTimer{interval: 1800 * time.Second}, 0},
		{"asked, room refreshes", "Supported: timer\r\nSession-Expires: 600;refresher=uac\r\n", sessionTimer{},
			sessionTimer{interval: 600 * time.Second}, 0},
		{"asked, we refresh", "Supported: timer\r\nSession-Expires: 600;refresher=uas\r\n", sessionTimer{},
			sessionTimer{interval: 600 * time.Second, weRefresh: true}, 0},
		{"inserted by a proxy, room without timers", "Session-Expires: 600\r\n", sessionTimer{},
			sessionTimer{interval: 600 * time.Second, weRefresh: true}, 0},
		{"compact forms", "k: timer\r\nx: 300\r\n", sessionTimer{}, sessionTimer{interval: 300 * time.Second}, 0},
		{"room's Min-SE above its interval", "Supported: timer\r\nSession-Expires: 100\r\nMin-SE: 200\r\n", sessionTimer{},
			sessionTimer{interval: 200 * time.Second}, 0},
		{"refresh without headers keeps the timer", "", sessionTimer{interval: 300 * time.Second, weRefresh: true},
			sessionTimer{interval: 300 * time.Second, weRefresh: true}, 0},
		{"too small", "Supported: timer\r\nSession-Expires: 30\r\n", sessionTimer{}, sessionTimer{}, 422},
		{"not a number", "Session-Expires: soon\r\n", sessionTimer{}, sessionTimer{}, 400},
	}
	parser := sip.NewParser()
	for _, c := range cases {
		raw := "INVITE sip:giao-ban@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK1\r\n" +
			"From: <sip:room@127.0.0.1>;tag=1\r\nTo: <sip:giao-ban@127.0.0.1>\r\nCall-ID: 1\r\nCSeq: 1 INVITE\r\n" +
			c.headers + "Content-Length: 0\r\n\r\n"
		msg, err := parser.ParseSIP([]byte(raw))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		got, refusal := g.negotiateTimer(msg.(*sip.Request), c.cur)
		switch {
		case c.status != 0 && (refusal == nil || refusal.status != c.status):
			t.Errorf("%s: refusal %v, want %d", c.name, refusal, c.status)
		case c.status == 0 && refusal != nil:
			t.Errorf("%s: refused %v", c.name, refusal)
		case c.status == 0 && (got.interval != c.want.interval || got.weRefresh != c.want.weRefresh):
			t.Errorf("%s: %v (we refresh %v), want %v (%v)", c.name, got.interval, got.weRefresh, c.want.interval, c.want.weRefresh)
		}
	}
}
