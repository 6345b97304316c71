package bridge

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cau-project/cau/ids"
	"github.com/cau-project/cau/internal/testmedia"
	"github.com/cau-project/cau/recorder"
)

// TestAgentRecordsStreams publishes two sites through the agent (as signaling drives
// it: peers and stream keys), records the meeting's keys, and checks the files with
// ffprobe/ffmpeg: one per site, both streams, clean decode. A stream the pick refuses
// is not recorded, and a site that publishes after the start is.
func TestAgentRecordsStreams(t *testing.T) {
	clip := testmedia.MakeClip(t, 320, 240)
	a := NewAgent(testmedia.NewBridge(t), Events{}, testmedia.Logger())
	publish := func(name string) *testmedia.Publisher {
		t.Helper()
		participant := ids.ParticipantID(name)
		id := ids.ForEndpoint(participant, 0)
		if err := a.CreatePeer(id); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = a.ClosePeer(id) })
		pub := testmedia.NewPublisher(t, name, 0)
		pub.Negotiate(t, func(offer string) (string, error) {
			return a.Offer(id, offer, map[string]ids.StreamKey{"camera": {Participant: participant, Source: ids.SourceCamera},
				"mic": {Participant: participant, Source: ids.SourceMicrophone}})
		})
		pub.Start(func(int) *testmedia.Clip { return clip })
		return pub
	}
	publish("p1")
	publish("other") // not in the meeting: pick refuses its keys
	waitStreams(t, a, "p1.camera", "p1.microphone", "other.camera")

	rec, err := recorder.Start(recorder.Config{Dir: t.TempDir(), Meeting: "m1", Logger: testmedia.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	pick := func(key ids.StreamKey) (recorder.Source, bool) {
		participant := string(key.Participant)
		if participant == "other" {
			return recorder.Source{}, false
		}
		return recorder.Source{Name: participant, Site: "site-" + participant}, true
	}
	stop := a.RecordStreams(pick, rec)
	time.Sleep(2 * time.Second)
	publish("p2") // joins during the recording
	time.Sleep(5 * time.Second)
	stop()
	m, err := rec.Stop()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range m.Files {
		names = append(names, f.Name+"@"+f.Site)
		path := filepath.Join(rec.Dir(), f.Name)
		p := testmedia.ProbeFile(t, path)
		v, okV := p.Stream("video")
		au, okA := p.Stream("audio")
		if !okV || !okA || v.Frames == 0 || au.Frames == 0 || !f.Complete {
			t.Errorf("%s: streams %+v, manifest %+v", f.Name, p.Streams, f)
		}
		if out := testmedia.DecodeErrors(t, path); out != "" {
			t.Errorf("%s: decode errors:\n%s", f.Name, out)
		}
	}
	if strings.Join(names, " ") != "p1-1.webm@site-p1 p2-1.webm@site-p2" && strings.Join(names, " ") != "p2-1.webm@site-p2 p1-1.webm@site-p1" {
		t.Errorf("files %v", names)
	}
}

// waitStreams waits until the agent has the stream keys (their first packets arrived).
func waitStreams(t *testing.T, a *Agent, keys ...string) {
	t.Helper()
	want := make([]ids.StreamKey, len(keys))
	for i, k := range keys {
		var err error
		if want[i], err = ids.ParseStreamKey(k); err != nil {
			t.Fatal(err)
		}
	}
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		a.mu.Lock()
		missing := ""
		for _, k := range want {
			if _, ok := a.streams[k]; !ok {
				missing = k.String()
			}
		}
		a.mu.Unlock()
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream %s never reached the bridge", missing)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
