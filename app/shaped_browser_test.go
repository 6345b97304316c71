package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/cau-project/cau/app"
	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/client"
	"github.com/cau-project/cau/internal/testbrowser"
	"github.com/cau-project/cau/internal/testutil"
	"github.com/cau-project/cau/internal/videowatch"
	"github.com/cau-project/cau/internal/wan"
)

// The link rates of issue 10's step, in kbit/s: a commune's link, then the same link
// congested, then recovered.
const (
	stepGood = 3000
	stepPoor = 400
)

// shapedStep is one run of the step: Chromium publishes its camera in three layers
// through the join page; a commune's pion endpoint, in a network namespace whose
// downlink is shaped, and a district's on loopback watch it; their recorders hold every
// video packet each received.
type shapedStep struct {
	commune, district  *videowatch.Recorder
	chair              *browser
	shapedAt, liftedAt time.Time
	// top is the width of the page's top layer when the link was shaped.
	top int
}

// stepPlan says how long each phase lasts. untilTop: the recovery ends once the commune
// is back on the top layer (and has played it for a while), at recovery at the latest.
type stepPlan struct {
	subnet            string
	fixedTop          bool
	poor, recovery    time.Duration
	untilTop          bool
	settle            time.Duration // played at the top layer before the step
	afterTopPlayedFor time.Duration
}

// pageLayer is one of the page's outbound camera encodings (its statistics).
type pageLayer struct {
	RID   string `json:"rid"`
	Width int    `json:"w"`
	Bytes int64  `json:"bytes"`
}

// pageLayers reads the encodings the join page sends now.
func pageLayers(b *browser) (map[string]pageLayer, error) {
	js := `(async () => { const st = await window.cauState.stats();
		const out = (st && st.publisher && st.publisher.outbound) || [];
		return JSON.stringify(out.filter((r) => r.kind === 'video' && r.rid)
			.map((r) => ({rid: r.rid, w: r.frameWidth || 0, bytes: r.bytesSent || 0}))); })()`
	s, err := testbrowser.Await[string](b, js, 5*time.Second)
	if err != nil {
		return nil, err
	}
	var ls []pageLayer
	if err := json.Unmarshal([]byte(s), &ls); err != nil {
		return nil, fmt.Errorf("page layers %q: %w", s, err)
	}
	out := map[string]pageLayer{}
	for _, l := range ls {
		out[l.RID] = l
	}
	return out, nil
}

// watchVideo joins a pion endpoint at site that records the video it receives.
func watchVideo(t *testing.T, a *app.App, site string, opts client.Options) *videowatch.Recorder {
	t.Helper()
	rec := &videowatch.Recorder{}
	tok, err := a.Keys().Sign(auth.Claims{Use: auth.UseJoin, Meeting: "m1", Site: site, Name: site, Role: auth.RoleParticipant}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	opts.Logger = testutil.Logger()
	var ssrc atomic.Uint32
	opts.OnPacket = func(s *client.Stream, h *rtp.Header, payload []byte) {
		if s.Kind == "video" {
			ssrc.Store(h.SSRC)
			rec.Add(time.Now(), h.SequenceNumber, h.Timestamp, h.Marker, payload)
		}
	}
	c, err := client.Dial(context.Background(), wsURL(a), tok, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	// As a browser's decoder: a picture it cannot go on with (a packet lost for good) is
	// a keyframe request, once a second at most.
	go func() {
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		var asked time.Time
		for {
			select {
			case <-c.Done():
				return
			case <-tick.C:
			}
			if rec.Stalled() > 300*time.Millisecond && time.Since(asked) > time.Second && ssrc.Load() != 0 {
				asked = time.Now()
				_ = c.RequestKeyframe(ssrc.Load())
			}
		}
	}()
	return rec
}

// runShapedStep runs the step: the link at stepGood until both endpoints play the top
// layer, then stepPoor for plan.poor, then stepGood again.
func runShapedStep(t *testing.T, plan stepPlan) *shapedStep {
	t.Helper()
	sh := wan.NewShaped(t, plan.subnet) // before the server: its ICE sockets include the veth's address
	sh.SetRate(t, stepGood)
	s := newStageWith(t, false, func(c *app.Config) { c.FixedTopLayer = plan.fixedTop })
	run := &shapedStep{chair: s.browsers(testbrowser.Options{}, "chair")[0]}
	if err := run.chair.Open(s.joinURL(s.app.Keys(), "m1", "tw", "Chủ trì", auth.RoleChair), "join",
		`window.cauState && window.cauState.joined`, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	run.commune = watchVideo(t, s.app, "xa", client.Options{UDPConn: sh.ListenUDP(t)})
	run.district = watchVideo(t, s.app, "huyen", client.Options{Loopback: true})

	// Chromium's sender ramps up over tens of seconds; the bridge then raises both
	// endpoints to the top layer. The commune plays it when its picture ids are the
	// district's (one encoding numbers its pictures apart from the others).
	var layers map[string]pageLayer
	testutil.Eventually(t, 120*time.Second, func() string {
		var err error
		if layers, err = pageLayers(run.chair); err != nil {
			return err.Error()
		}
		dw, _ := run.district.LastKeyframe()
		cw, _ := run.commune.LastKeyframe()
		top := layers["f"].Width
		if top == 0 || dw != top || cw != top {
			return fmt.Sprintf("page sends %+v; the district's last keyframe is %d wide, the commune's %d", layers, dw, cw)
		}
		if d := (run.district.LastPID() - run.commune.LastPID()) & 0x7fff; d > 30 && d < 0x8000-30 {
			return fmt.Sprintf("the commune's pictures (id %d) are not the district's (id %d)", run.commune.LastPID(), run.district.LastPID())
		}
		return ""
	})
	time.Sleep(plan.settle)
	if layers, _ = pageLayers(run.chair); layers != nil {
		run.top = layers["f"].Width
	}
	t.Logf("page layers before the step: %+v", layers)

	sh.SetRate(t, stepPoor)
	run.shapedAt = time.Now()
	time.Sleep(plan.poor)
	sh.SetRate(t, stepGood)
	run.liftedAt = time.Now()
	deadline := run.liftedAt.Add(plan.recovery)
	for time.Now().Before(deadline) {
		time.Sleep(500 * time.Millisecond)
		if !plan.untilTop {
			continue
		}
		if back, ok := run.backOnTop(); ok && time.Since(back) > plan.afterTopPlayedFor {
			break
		}
	}
	return run
}

// backOnTop is when the commune's first frame of the top layer after the limit was
// lifted arrived (the lift itself if it never left it), if it did.
func (r *shapedStep) backOnTop() (time.Time, bool) {
	now := time.Now()
	com, dis := r.commune.Analyze(r.liftedAt, now), r.district.Analyze(r.liftedAt.Add(-2*time.Second), now)
	top := pictureSet(dis.Frames)
	for _, f := range com.Frames {
		if f.First.After(r.liftedAt) && top.has(f) {
			return f.First, true
		}
	}
	return time.Time{}, false
}

// pictures is the frames of one encoding by picture id, to tell whether another
// receiver's frame is of that encoding: the same picture id, arriving about then (picture
// ids are 15 bits, so two encodings' ranges may overlap over a minute).
type pictures map[uint16]time.Time

func pictureSet(frames []*videowatch.Frame) pictures {
	out := pictures{}
	for _, f := range frames {
		if f.HasPID {
			out[f.PID] = f.First
		}
	}
	return out
}

// has says whether f is one of these pictures.
func (p pictures) has(f *videowatch.Frame) bool {
	at, ok := p[f.PID]
	if !ok || !f.HasPID {
		return false
	}
	d := f.First.Sub(at)
	return d > -2*time.Second && d < 2*time.Second
}

// TestBrowserSimulcastShapedStep is issue 10's first WAN test. Chromium publishes
// simulcast through the real join page; a commune's pion endpoint in a network namespace
// watches it over a link shaped with tbf from 3 Mbit/s down to 400 kbit/s and back, a
// district's endpoint on loopback watches it unshaped. When the link drops, the layer the
// commune receives drops within 3 s and its picture never freezes for more than 1 s (the
// decoder model of internal/videowatch); once the link recovers, the commune is back on
// the top layer within 15 s; every switch starts on a keyframe; the district plays the
// top layer throughout.
func TestBrowserSimulcastShapedStep(t *testing.T) {
	run := runShapedStep(t, stepPlan{subnet: "10.221.0", poor: 20 * time.Second, recovery: 30 * time.Second,
		untilTop: true, settle: 3 * time.Second, afterTopPlayedFor: 3 * time.Second})
	end := time.Now()
	com := run.commune.Analyze(run.shapedAt.Add(-time.Second), end)
	dis := run.district.Analyze(run.shapedAt.Add(-time.Second), end)
	top := pictureSet(dis.Frames)

	// The drop: the commune's first frame not of the district's (top) encoding.
	var dropAt time.Time
	for _, f := range com.Frames {
		if f.First.After(run.shapedAt) && f.HasPID && !top.has(f) {
			dropAt = f.First
			break
		}
	}
	back, backOK := run.backOnTop()
	t.Logf("step at %d kbit/s: layer dropped after %v; back on the top layer %v after the lift (ok %v); "+
		"commune: %d frames shown, longest freeze %v at %v after the step, %d freezes ≥ %v totalling %v, mean %.0fx%.0f; "+
		"district: %d shown, longest freeze %v, mean %.0fx%.0f",
		stepPoor, dropAt.Sub(run.shapedAt).Round(10*time.Millisecond), back.Sub(run.liftedAt).Round(10*time.Millisecond), backOK,
		com.Shown, com.MaxFreeze.Round(time.Millisecond), com.MaxFreezeAt.Sub(run.shapedAt).Round(10*time.Millisecond),
		com.Freezes, videowatch.FreezeMin, com.Frozen.Round(time.Millisecond), com.MeanWidth, com.MeanHeight,
		dis.Shown, dis.MaxFreeze.Round(time.Millisecond), dis.MeanWidth, dis.MeanHeight)
	for _, s := range com.Switches {
		t.Logf("commune switch at %+v: width %d → %d, keyframe %v (known %v, resume %v)", s.At.Sub(run.shapedAt).Round(10*time.Millisecond),
			s.PrevWidth, s.Width, s.Key, s.Known, s.Resume)
	}

	switch {
	case dropAt.IsZero():
		t.Errorf("the commune kept the top layer on a %d kbit/s link", stepPoor)
	case dropAt.Sub(run.shapedAt) > 3*time.Second:
		t.Errorf("the commune's layer dropped %v after the link did, want within 3 s", dropAt.Sub(run.shapedAt).Round(10*time.Millisecond))
	}
	if com.MaxFreeze > time.Second {
		t.Errorf("the commune's picture froze for %v from %v after the step, want at most 1 s",
			com.MaxFreeze.Round(time.Millisecond), com.MaxFreezeAt.Sub(run.shapedAt).Round(10*time.Millisecond))
	}
	if !backOK {
		t.Errorf("the commune was not back on the top layer %v after the link recovered", time.Since(run.liftedAt).Round(time.Second))
	} else if d := back.Sub(run.liftedAt); d > 15*time.Second {
		t.Errorf("the commune was back on the top layer %v after the link recovered, want within 15 s", d.Round(10*time.Millisecond))
	}
	for _, s := range append(com.Switches, dis.Switches...) {
		if s.Known && !s.Key {
			t.Errorf("a layer switch at %v did not start on a keyframe (width %d → ?)", s.At.Sub(run.shapedAt).Round(10*time.Millisecond), s.PrevWidth)
		}
	}
	for _, s := range dis.Switches {
		if s.Resume {
			// The bridge held the district's frames back for a while (its overload skip
			// on a loaded machine) and resumed at a keyframe of the same layer.
			t.Logf("the district resumed its layer at a keyframe %v after the step (keyframe %v)", s.At.Sub(run.shapedAt).Round(10*time.Millisecond), s.Key)
			continue
		}
		if s.At.After(run.shapedAt.Add(-time.Second)) {
			t.Errorf("the unshaped district switched layers %v after the step (width %d → %d)", s.At.Sub(run.shapedAt).Round(10*time.Millisecond), s.PrevWidth, s.Width)
		}
	}
	if w, _ := run.district.LastKeyframe(); run.top != 0 && w != run.top {
		t.Errorf("the district's last keyframe is %d wide, the page's top layer %d", w, run.top)
	}
}
