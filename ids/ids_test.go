package ids

import (
	"encoding/json"
	"errors"
	"testing"
)

func TestParsePeerID(t *testing.T) {
	for text, want := range map[string]PeerID{
		"relay~m1~br-p1": ForRelay("m1", "br-p1"),
		"relay~a~b~c":    ForRelay("a~b", "c"), // the bridge is after the last "~"
		"p1a2b3~1":       ForEndpoint("p1a2b3", 1),
		"p1a2b3~12":      ForEndpoint("p1a2b3", 12),
	} {
		got, err := ParsePeerID(text)
		if err != nil || got != want {
			t.Errorf("ParsePeerID(%q) = %+v, %v; want %+v", text, got, err, want)
		}
		if got.String() != text {
			t.Errorf("%+v prints as %q, want %q", got, got.String(), text)
		}
	}
	for _, bad := range []string{"", "relay~m1~", "relay~~b", "relay~", "relay~only", "p1", "p1~", "~1", "p1~0",
		"p1~-1", "p1~01", "p1~x"} {
		if got, err := ParsePeerID(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParsePeerID(%q) = %+v, %v; want ErrInvalid", bad, got, err)
		}
	}
}

func TestParseStreamKey(t *testing.T) {
	for text, want := range map[string]StreamKey{
		"p1.camera":     {"p1", SourceCamera},
		"p1.microphone": {"p1", SourceMicrophone},
		"a.b.screen":    {"a.b", SourceScreen},
	} {
		got, err := ParseStreamKey(text)
		if err != nil || got != want {
			t.Errorf("ParseStreamKey(%q) = %+v, %v; want %+v", text, got, err, want)
		}
		if got.String() != text {
			t.Errorf("%+v prints as %q, want %q", got, got.String(), text)
		}
	}
	for _, bad := range []string{"", ".camera", "p1", "p1.", "p1.video", "track-id"} {
		if got, err := ParseStreamKey(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseStreamKey(%q) = %+v, %v; want ErrInvalid", bad, got, err)
		}
	}
}

// TestWireForm: keys and peer ids are JSON strings in their text form, as before they
// were typed, so bridges and signaling of either version understand each other.
func TestWireForm(t *testing.T) {
	type msg struct {
		Peer PeerID    `json:"peer"`
		Key  StreamKey `json:"key"`
	}
	in := msg{Peer: ForRelay("giao-ban", "br-1"), Key: StreamKey{"p9", SourceScreen}}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"peer":"relay~giao-ban~br-1","key":"p9.screen"}`; string(b) != want {
		t.Fatalf("wire form %s, want %s", b, want)
	}
	var out msg
	if err := json.Unmarshal(b, &out); err != nil || out != in {
		t.Fatalf("round trip: %+v, %v; want %+v", out, err, in)
	}
	if err := json.Unmarshal([]byte(`{"peer":"relay~x","key":"p9.screen"}`), &out); err == nil {
		t.Fatal("a malformed peer id decoded without error")
	}
	if _, err := json.Marshal(msg{Key: StreamKey{"p1", "video"}}); err == nil {
		t.Fatal("a key with an unknown source encoded without error")
	}
}

func TestBridgeIDValid(t *testing.T) {
	for id, want := range map[BridgeID]bool{"br-1": true, "local": true, "": false, "a~b": false, "a b": false} {
		if id.Valid() != want {
			t.Errorf("BridgeID(%q).Valid() = %v", id, !want)
		}
	}
}

// fuzzRoundTrip checks one text grammar: whatever parse accepts prints back to the same
// text and parses again to the same value, and nothing panics.
func fuzzRoundTrip[T interface {
	comparable
	String() string
}](f *testing.F, parse func(string) (T, error), seeds ...string) {
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := parse(s)
		if err != nil {
			return
		}
		if v.String() != s {
			t.Fatalf("%q parsed to %+v, which prints as %q", s, v, v.String())
		}
		if w, err := parse(v.String()); err != nil || w != v {
			t.Fatalf("%q: reparse gave %+v, %v", s, w, err)
		}
	})
}

// FuzzParsePeerID: relay and endpoint peer ids round-trip.
func FuzzParsePeerID(f *testing.F) {
	fuzzRoundTrip(f, ParsePeerID, "relay~m1~br-p1", "relay~a~b~c", "p1~1", "relay~", "~", "p~01")
}

// FuzzParseStreamKey: stream keys round-trip.
func FuzzParseStreamKey(f *testing.F) {
	fuzzRoundTrip(f, ParseStreamKey, "p1.camera", "a.b.screen", ".camera", "p1.")
}
