package protocol

import (
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func TestDecodeRejectsBadEnvelopes(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want error // nil: any error is fine but there must be one
	}{
		{"empty", "", ErrEmpty},
		{"spaces", "   ", ErrEmpty},
		{"array", `[1,2]`, ErrNotObject},
		{"not json", `{"v":1,`, nil},
		{"wrong version", `{"v":2,"type":"join"}`, ErrVersion},
		{"no version", `{"type":"join"}`, ErrVersion},
		{"no kind", `{"v":1}`, ErrMissingKind},
		{"huge", `{"v":1,"type":"x","data":"` + strings.Repeat("a", MaxMessageBytes) + `"}`, ErrTooLarge},
		{"long id", `{"v":1,"type":"ping","id":"` + strings.Repeat("a", 65) + `"}`, nil},
	}
	for _, c := range cases {
		_, err := Decode([]byte(c.in))
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		if c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%s: error %v, want %v", c.name, err, c.want)
		}
	}
}

func TestDecodeDataValidates(t *testing.T) {
	cases := []struct {
		name string
		msg  string
		into any
		ok   bool
	}{
		{"join ok", `{"v":1,"type":"join","data":{"token":"abc","name":"Xã A"}}`, &Join{}, true},
		{"join without token", `{"v":1,"type":"join","data":{"name":"x"}}`, &Join{}, false},
		{"join unknown field", `{"v":1,"type":"join","data":{"token":"a","admin":true}}`, &Join{}, false},
		{"join long name", `{"v":1,"type":"join","data":{"token":"a","name":"` + strings.Repeat("ă", 65) + `"}}`, &Join{}, false},
		{"join no data", `{"v":1,"type":"join"}`, &Join{}, false},
		{"offer ok", `{"v":1,"type":"offer","data":{"sdp":"v=0\r\n","tracks":[{"id":"t1","source":"camera"}]}}`, &Offer{}, true},
		{"offer not sdp", `{"v":1,"type":"offer","data":{"sdp":"hello"}}`, &Offer{}, false},
		{"offer bad source", `{"v":1,"type":"offer","data":{"sdp":"v=0","tracks":[{"id":"t1","source":"x"}]}}`, &Offer{}, false},
		{"offer empty track id", `{"v":1,"type":"offer","data":{"sdp":"v=0","tracks":[{"id":"","source":"camera"}]}}`, &Offer{}, false},
		{"candidate ok", `{"v":1,"type":"candidate","data":{"target":"publisher","candidate":{"candidate":"candidate:1 1 udp 1 1.2.3.4 5 typ host","sdpMid":"0"}}}`, &Candidate{}, true},
		{"candidate bad target", `{"v":1,"type":"candidate","data":{"target":"x","candidate":{"candidate":""}}}`, &Candidate{}, false},
		{"mute ok", `{"v":1,"type":"mute","data":{"source":"microphone","muted":true}}`, &Mute{}, true},
		{"mute bad source", `{"v":1,"type":"mute","data":{"source":"speaker","muted":true}}`, &Mute{}, false},
		{"answer wrong type", `{"v":1,"type":"answer","data":{"sdp":5}}`, &Answer{}, false},
		{"view ok", `{"v":1,"type":"view","data":{"tiles":[{"participant":"p1","source":"camera","height":360},{"participant":"p1","source":"screen","height":0}]}}`, &View{}, true},
		{"view empty", `{"v":1,"type":"view","data":{"tiles":[]}}`, &View{}, true},
		{"view microphone", `{"v":1,"type":"view","data":{"tiles":[{"participant":"p1","source":"microphone","height":1}]}}`, &View{}, false},
		{"view negative", `{"v":1,"type":"view","data":{"tiles":[{"participant":"p1","source":"camera","height":-1}]}}`, &View{}, false},
		{"view huge", `{"v":1,"type":"view","data":{"tiles":[{"participant":"p1","source":"camera","height":99999}]}}`, &View{}, false},
		{"view no participant", `{"v":1,"type":"view","data":{"tiles":[{"source":"camera","height":1}]}}`, &View{}, false},
		{"view twice", `{"v":1,"type":"view","data":{"tiles":[{"participant":"p","source":"camera","height":1},{"participant":"p","source":"camera","height":2}]}}`, &View{}, false},
		{"view too many", `{"v":1,"type":"view","data":{"tiles":[` + manyTiles(MaxViewTiles+1) + `]}}`, &View{}, false},
		{"view unknown field", `{"v":1,"type":"view","data":{"tiles":[],"zoom":2}}`, &View{}, false},
	}
	for _, c := range cases {
		env, err := Decode([]byte(c.msg))
		if err != nil {
			t.Fatalf("%s: decode envelope: %v", c.name, err)
		}
		err = DecodeData(env, c.into)
		if (err == nil) != c.ok {
			t.Errorf("%s: err = %v, want ok=%v", c.name, err, c.ok)
		}
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	b, err := Encode(KindJoined, "7", Joined{Meeting: "m1", Self: Participant{ID: "p1", Name: "Tỉnh"}})
	if err != nil {
		t.Fatal(err)
	}
	env, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	var j Joined
	if err := DecodeData(env, &j); err != nil {
		t.Fatal(err)
	}
	if env.Kind != KindJoined || env.ID != "7" || j.Meeting != "m1" || j.Self.Name != "Tỉnh" {
		t.Fatalf("round trip changed the message: %+v %+v", env, j)
	}
}

// FuzzDecode feeds arbitrary bytes through the decoder and every payload type: errors are
// fine, panics are not.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"v":1,"type":"join","data":{"token":"abc"}}`))
	f.Add([]byte(`{"v":1,"type":"offer","data":{"sdp":"v=0","tracks":[{"id":"a","source":"screen"}]}}`))
	f.Add([]byte(`{"v":1,"type":"candidate","data":{"target":"subscriber","candidate":{"candidate":"x","sdpMLineIndex":0}}}`))
	f.Add([]byte(`{"v":1,"type":"mute","data":{"source":"camera","muted":false}}`))
	f.Add([]byte(`{"v":1,"type":"view","data":{"tiles":[{"participant":"p1","source":"camera","height":720}]}}`))
	f.Add(AppendRoster(nil, []json.RawMessage{json.RawMessage(`{"id":"p1","name":"Xã A","site":"xa-a","role":"room","muted":["camera"]}`)},
		[]string{"p2"}))
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := Decode(b)
		if err != nil {
			return
		}
		for _, v := range []any{&Join{}, &Offer{}, &Answer{}, &Candidate{}, &Mute{}, &View{}, &Roster{}} {
			_ = DecodeData(env, v)
		}
	})
}

// manyTiles is n distinct camera tiles of a view message, comma-separated.
func manyTiles(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = `{"participant":"p` + strconv.Itoa(i) + `","source":"camera","height":100}`
	}
	return strings.Join(parts, ",")
}

func TestLayerForHeight(t *testing.T) {
	for _, c := range []struct{ height, want int }{
		{0, -1}, {1, 0}, {180, 0}, {240, 0}, {241, 1}, {480, 1}, {481, 2}, {2160, 2},
	} {
		if got := LayerForHeight(c.height); got != c.want {
			t.Errorf("LayerForHeight(%d) = %d, want %d", c.height, got, c.want)
		}
	}
}

// TestAppendRoster: the roster the server assembles from encoded news reads back as the
// Roster it stands for, with either list empty.
func TestAppendRoster(t *testing.T) {
	a := Participant{ID: "p1", Name: "Ủy ban \"xã\" <A>", Site: "xa-a", Role: "room", Muted: []Source{SourceCamera},
		Streams: map[Source]string{SourceCamera: "p1.camera"}}
	b := Participant{ID: "p2", Name: "Xã B", Site: "xa-b", Role: "participant"}
	var raw []json.RawMessage
	for _, p := range []Participant{a, b} {
		j, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		raw = append(raw, j)
	}
	for _, c := range []struct {
		states []json.RawMessage
		left   []string
		want   Roster
	}{
		{raw, []string{"p3", "p\"4"}, Roster{Participants: []Participant{a, b}, Left: []string{"p3", "p\"4"}}},
		{raw[:1], nil, Roster{Participants: []Participant{a}}},
		{nil, []string{"p3"}, Roster{Left: []string{"p3"}}},
	} {
		env, err := Decode(AppendRoster(nil, c.states, c.left))
		if err != nil || env.Kind != KindRoster {
			t.Fatalf("%s: %v", env.Kind, err)
		}
		var r Roster
		if err := DecodeData(env, &r); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(r, c.want) {
			t.Errorf("read back %+v, want %+v", r, c.want)
		}
	}
	var r Roster
	env, _ := Decode(AppendRoster(nil, nil, []string{""}))
	if err := DecodeData(env, &r); err == nil {
		t.Error("a roster naming an empty id was accepted")
	}
}
