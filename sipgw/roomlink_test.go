package sipgw_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cau-project/cau/app"
	"github.com/cau-project/cau/client"
	"github.com/cau-project/cau/internal/testutil"
	"github.com/cau-project/cau/monitor"
)

// TestRoomLinkAndLayer: a browser-like pion endpoint publishes its camera as three H.264
// simulcast layers (180p/360p/720p as the join page sends them) and two rooms call the
// meeting. One offers H.264 level 1.3 with max-fs=396 (CIF) and b=AS:256: the gateway
// caps its subscription at the bridge, and it receives the low layer only; the other
// offers level 3.1 and receives a higher one. Both rooms answer the gateway's RTCP sender
// reports, and the round trip, the jitter and the loss of each call reach the
// cau_sip_* metrics and the monitor's view of the room's endpoint (its console entry):
// transport, codecs, state, layer.
func TestRoomLinkAndLayer(t *testing.T) {
	a, _ := start(t)
	const meeting = "tap-huan"
	ws := strings.Replace(a.URL(), "http://", "ws://", 1) + "/ws"
	pub, err := client.Dial(t.Context(), ws, token(t, a, meeting, "ha-noi", "Hà Nội"), client.Options{Loopback: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pub.Close)
	if _, err := pub.PublishWith(t.Context(), client.PublishOptions{Simulcast: true, H264: true}); err != nil {
		t.Fatal(err)
	}
	gw := a.SIP().Addr()
	small := dialRTPRoomOffering(t, gw, meeting, "Phòng CIF",
		roomOffer{fmtp: "packetization-mode=1;profile-level-id=42e00d;max-fs=396", bw: "b=AS:256"})
	big := dialRTPRoomOffering(t, gw, meeting, "Phòng HD", roomOffer{})
	small.sendTone(440)
	big.sendTone(880)

	// The low layer reaches the small room, and nothing above it once it flows.
	testutil.Eventually(t, 20*time.Second, func() string {
		if s, b := small.layerPackets(), big.layerPackets(); s[0] == 0 || b[1]+b[2] == 0 {
			return fmt.Sprintf("layers received: CIF room %v, HD room %v", s, b)
		}
		return ""
	})
	before := small.layerPackets()
	time.Sleep(3 * time.Second)
	after := small.layerPackets()
	if after[0] == before[0] || after[1] != before[1] || after[2] != before[2] {
		t.Errorf("the CIF room received %v by layer in 3 s, want the low layer only", [3]int64{after[0] - before[0],
			after[1] - before[1], after[2] - before[2]})
	}

	// RTCP figures in the metrics: a round trip on loopback, jitter, loss.
	testutil.Eventually(t, 15*time.Second, func() string {
		text := scrape(t, a)
		n := metricValue(text, `cau_sip_rtt_seconds_count{kind="audio"}`)
		sum := metricValue(text, `cau_sip_rtt_seconds_sum{kind="audio"}`)
		if n == 0 || sum/n <= 0 || sum/n >= 1 {
			return fmt.Sprintf("rtt: %v reports, %v s in all", n, sum)
		}
		if n := metricValue(text, `cau_sip_received_jitter_seconds_count{kind="audio"}`); n == 0 {
			return "no received jitter"
		}
		if n := metricValue(text, `cau_sip_received_loss_ratio_count{kind="audio"}`); n == 0 {
			return "no received loss"
		}
		if n := metricValue(text, `cau_sip_calls_by_state{state="active"}`); n != 2 {
			return fmt.Sprintf("%v calls active", n)
		}
		return ""
	})

	// The monitor shows each room by its own link, as any endpoint.
	testutil.Eventually(t, 15*time.Second, func() string {
		eps := sipEndpoints(a)
		if len(eps) != 2 {
			return fmt.Sprintf("%d SIP endpoints in the monitor", len(eps))
		}
		for _, ep := range eps {
			s := ep.SIP
			if s.Transport != "udp" || s.AudioCodec != "pcmu" || s.VideoCodec != "h264" || s.State != "active" ||
				s.Encryption != "none" {
				return fmt.Sprintf("%s: %+v", ep.Name, *s)
			}
			if want := map[string]int{"Phòng CIF": 0, "Phòng HD": 2}[ep.Name]; s.VideoLayer != want {
				return fmt.Sprintf("%s: layer %d, want %d", ep.Name, s.VideoLayer, want)
			}
			if !ep.Measured || ep.Down.RTTMs <= 0 || ep.Down.RTTMs >= 1000 || ep.Up.JitterMs < 0 || ep.Up.JitterMs >= 1000 ||
				ep.Up.LossPct < 0 || ep.Up.LossPct > 5 || ep.Up.Streams != 2 || ep.Up.BitrateBps <= 0 || ep.Down.BitrateBps <= 0 {
				return fmt.Sprintf("%s: measured %v, up %+v, down %+v", ep.Name, ep.Measured, ep.Up, ep.Down)
			}
		}
		return ""
	})
}

// sipEndpoints are the monitor's endpoints that are SIP calls, wherever their site.
func sipEndpoints(a *app.App) []monitor.EndpointView {
	var out []monitor.EndpointView
	for _, site := range []string{"phong-hop", monitor.UnknownSite} {
		d, ok := a.Monitor().Detail(site)
		if !ok {
			continue
		}
		for _, ep := range d.Endpoints {
			if ep.SIP != nil {
				out = append(out, ep)
			}
		}
	}
	return out
}

// metricValue is the value of the series line that starts with series, 0 if none.
func metricValue(text, series string) float64 {
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}
