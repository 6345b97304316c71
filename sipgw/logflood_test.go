package sipgw_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cau-project/cau/internal/logbudget"
)

// TestJunkDatagramsBoundedInLog (issue 12, finding 9, SIP): sipgo logs every datagram it
// cannot parse at ERROR with its content. A flood of them, some carrying what looks like
// a credential, at a live gateway's UDP port leaves a few log lines (the log budget), none
// with the content, and the gateway still answers OPTIONS.
func TestJunkDatagramsBoundedInLog(t *testing.T) {
	a, logs := start(t)
	u := newRawUA(t, a.SIP().Addr().String())
	const secret = "Authorization: Digest username=\"room\", response=\"s3cr3t-d1g3st\""
	const n = 2000
	for i := range n {
		u.send(fmt.Sprintf("NOT SIP %d\r\n%s\r\n\r\n", i, secret))
		if i%200 == 0 {
			time.Sleep(10 * time.Millisecond) // let the reader keep up: the socket buffer is finite
		}
	}
	ruri := "sip:giao-ban@" + a.SIP().Addr().String()
	u.send(u.request("OPTIONS", ruri, "after-flood", 1, "", nil, ""))
	if got := status(u.final("OPTIONS")); got != "200 OK" {
		t.Errorf("OPTIONS after the flood: %q", got)
	}
	out := logs.String()
	if strings.Contains(out, "s3cr3t") {
		t.Errorf("the log holds a junk datagram's content:\n%s", grep(out, "level=ERROR"))
	}
	lines := strings.Count(out, "failed to parse")
	if lines == 0 || lines > logbudget.Burst+1 {
		t.Errorf("%d log lines for %d junk datagrams, want 1 to %d", lines, n, logbudget.Burst+1)
	}
	t.Logf("%d junk datagrams: %d log lines", n, lines)
}
