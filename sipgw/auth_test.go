package sipgw_test

import (
	"strings"
	"testing"
	"time"

	"github.com/cau-project/cau/app"
	"github.com/cau-project/cau/internal/testutil"
	"github.com/cau-project/cau/sipgw"
)

// TestSIPDigest: with accounts, a call without credentials is challenged (401 and a
// digest challenge), baresip with a wrong password does not get in, and baresip with
// its account's password does, joining as the account's site. The password is never
// logged.
func TestSIPDigest(t *testing.T) {
	needBaresip(t)
	const meeting, password = "xac-thuc", "mat-khau-phong-xa-a"
	accounts, err := sipgw.LoadAccounts(strings.NewReader("# user site password\nphong-xa-a xa-a " + password + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	a, logs := startWith(t, app.SIPConfig{Addr: "127.0.0.1:0", Site: "phong-hop", Accounts: accounts})
	u := newRawUA(t, a.SIP().Addr().String())
	ruri := "sip:" + meeting + "@" + a.SIP().Addr().String()
	u.send(u.request("INVITE", ruri, "noauth", 1, "", nil, ""))
	resp := u.final("INVITE")
	if !strings.HasPrefix(status(resp), "401 ") || !strings.Contains(resp, "WWW-Authenticate: Digest ") ||
		!strings.Contains(resp, `realm="cau"`) {
		t.Fatalf("INVITE without credentials:\n%s", resp)
	}
	u.send(u.request("ACK", ruri, "noauth", 1, toTag(resp), nil, ""))

	wrong := startBaresipWith(t, "Kẻ lạ", "127.0.0.1:0", ";auth_user=phong-xa-a;auth_pass=sai")
	wrong.command("/dial " + a.SIP().URI(meeting))
	right := startBaresipWith(t, "Phòng họp xã A", "127.0.0.1:0", ";auth_user=phong-xa-a;auth_pass="+password)
	right.command("/dial " + a.SIP().URI(meeting))
	testutil.Eventually(t, 30*time.Second, func() string {
		if !right.established() {
			return "the room with its password is not in"
		}
		for _, p := range a.Signaling().Participants(meeting) {
			if p.Name == "Phòng họp xã A" && p.Site == "xa-a" {
				return ""
			}
		}
		return "the room is not in the meeting as site xa-a"
	})
	if wrong.established() || a.SIP().Calls() != 1 {
		t.Errorf("the wrong password got in (%d calls)", a.SIP().Calls())
	}
	if strings.Contains(logs.String(), password) {
		t.Errorf("the password is in the log")
	}
}
