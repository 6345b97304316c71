package rooms_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/cau-project/cau/rooms"
)

var (
	chair     = rooms.Actor{Name: "Chủ tọa", Role: rooms.RoleChair, Site: "tw"}
	chairAway = rooms.Actor{Name: "Chủ tọa", Role: rooms.RoleChair, Site: "p1"}
	admin     = rooms.Actor{Name: "ops", Role: rooms.RoleAdmin, Site: "p1"}
	tech      = rooms.Actor{Name: "kỹ thuật", Role: rooms.RoleTechnician, Site: "p1"}
	at1       = rooms.Actor{Name: "Tỉnh Một", Role: rooms.RoleParticipant, Site: "p1"}
	room2     = rooms.Actor{Name: "Phòng họp P2", Role: rooms.RoleRoom, Site: "p2"}
	atD1      = rooms.Actor{Name: "Huyện Một", Role: rooms.RoleParticipant, Site: "p1-d1"}
	outsider  = rooms.Actor{Name: "Xã ngoài", Role: rooms.RoleParticipant, Site: "p2-d1-c1"}
)

func floorMeeting(mode rooms.Mode) rooms.Meeting {
	return rooms.Meeting{ID: "m1", Title: "Họp", ChairSite: "tw", Sites: []string{"tw", "p1", "p2", "p1-d1"},
		Mode: mode, Start: time.Date(2026, 3, 2, 1, 0, 0, 0, time.UTC), End: time.Date(2026, 3, 2, 3, 0, 0, 0, time.UTC)}
}

// step is one action in a floor scenario and what the floor must look like after it.
type step struct {
	name     string
	do       func(f *rooms.Floor) error
	err      error    // nil: must succeed
	speakers []string // "site" or "site:mc" / "site:m-" / "site:-c" in directed mode
	requests []string
	previous string
}

func runFloor(t *testing.T, f *rooms.Floor, steps []step) {
	t.Helper()
	clock := time.Date(2026, 3, 2, 1, 0, 0, 0, time.UTC)
	f.SetClock(func() time.Time { return clock })
	for i, s := range steps {
		clock = clock.Add(time.Second)
		before := f.State()
		err := s.do(f)
		after := f.State()
		if s.err == nil && err != nil {
			t.Fatalf("step %d %s: %v", i, s.name, err)
		}
		if s.err != nil {
			if !errors.Is(err, s.err) {
				t.Fatalf("step %d %s: err = %v, want %v", i, s.name, err, s.err)
			}
			if fmt.Sprint(before) != fmt.Sprint(after) {
				t.Fatalf("step %d %s: failed action changed the floor\nbefore %+v\nafter  %+v", i, s.name, before, after)
			}
		}
		if changed := after.Version != before.Version; changed != (fmt.Sprint(before.Speakers, before.Requests, before.Previous, before.Mode, before.Ended, before.MuteEpoch) !=
			fmt.Sprint(after.Speakers, after.Requests, after.Previous, after.Mode, after.Ended, after.MuteEpoch)) {
			t.Errorf("step %d %s: version %d → %d does not match whether the state changed", i, s.name, before.Version, after.Version)
		}
		var speakers []string
		for _, g := range after.Speakers {
			if after.Mode == rooms.ModeDirected {
				m, c := "-", "-"
				if g.Mic {
					m = "m"
				}
				if g.Camera {
					c = "c"
				}
				speakers = append(speakers, g.Site+":"+m+c)
			} else {
				speakers = append(speakers, g.Site)
			}
		}
		var requests []string
		for _, r := range after.Requests {
			requests = append(requests, r.Site)
		}
		if !slices.Equal(speakers, s.speakers) || !slices.Equal(requests, s.requests) || after.Previous != s.previous {
			t.Fatalf("step %d %s: speakers %v requests %v previous %q; want %v %v %q",
				i, s.name, speakers, requests, after.Previous, s.speakers, s.requests, s.previous)
		}
	}
}

func TestFloorTraining(t *testing.T) {
	f := rooms.NewFloor(floorMeeting(rooms.ModeTraining))
	runFloor(t, f, []step{
		{name: "p1 asks", do: func(f *rooms.Floor) error { return f.Request(at1) }, requests: []string{"p1"}},
		{name: "p2 room asks", do: func(f *rooms.Floor) error { return f.Request(room2) }, requests: []string{"p1", "p2"}},
		{name: "p1 asks again", do: func(f *rooms.Floor) error { return f.Request(at1) }, requests: []string{"p1", "p2"}},
		{name: "participant grants", do: func(f *rooms.Floor) error { return f.Grant(at1, "p1", rooms.MicAndCamera) }, err: rooms.ErrForbidden, requests: []string{"p1", "p2"}},
		{name: "technician grants", do: func(f *rooms.Floor) error { return f.Grant(tech, "p1", rooms.MicAndCamera) }, err: rooms.ErrForbidden, requests: []string{"p1", "p2"}},
		{name: "chair away grants", do: func(f *rooms.Floor) error { return f.Grant(chairAway, "p1", rooms.MicAndCamera) }, err: rooms.ErrForbidden, requests: []string{"p1", "p2"}},
		{name: "chair grants p1", do: func(f *rooms.Floor) error { return f.Grant(chair, "p1", rooms.Media{}) }, speakers: []string{"p1"}, requests: []string{"p2"}},
		{name: "p1 sends both", do: func(f *rooms.Floor) error {
			if got := f.State().Allowed("p1"); got != rooms.MicAndCamera {
				return fmt.Errorf("p1 allowed %+v", got)
			}
			if got := f.State().Allowed("p2"); got != (rooms.Media{}) {
				return fmt.Errorf("p2 allowed %+v", got)
			}
			return nil
		}, speakers: []string{"p1"}, requests: []string{"p2"}},
		{name: "chair grants p2: p1 becomes previous", do: func(f *rooms.Floor) error { return f.Grant(chair, "p2", rooms.MicAndCamera) }, speakers: []string{"p2"}, previous: "p1"},
		{name: "grant p2 again", do: func(f *rooms.Floor) error { return f.Grant(chair, "p2", rooms.MicAndCamera) }, speakers: []string{"p2"}, previous: "p1"},
		{name: "revoke p1 (not speaking)", do: func(f *rooms.Floor) error { return f.Revoke(chair, "p1") }, err: rooms.ErrNotSpeaking, speakers: []string{"p2"}, previous: "p1"},
		{name: "p1-d1 asks", do: func(f *rooms.Floor) error { return f.Request(atD1) }, speakers: []string{"p2"}, requests: []string{"p1-d1"}, previous: "p1"},
		{name: "p1-d1 withdraws", do: func(f *rooms.Floor) error { return f.Withdraw(atD1) }, speakers: []string{"p2"}, previous: "p1"},
		{name: "withdraw again", do: func(f *rooms.Floor) error { return f.Withdraw(atD1) }, err: rooms.ErrNoRequest, speakers: []string{"p2"}, previous: "p1"},
		{name: "p1 asks", do: func(f *rooms.Floor) error { return f.Request(at1) }, speakers: []string{"p2"}, requests: []string{"p1"}, previous: "p1"},
		{name: "chair denies p1", do: func(f *rooms.Floor) error { return f.Deny(chair, "p1") }, speakers: []string{"p2"}, previous: "p1"},
		{name: "deny again", do: func(f *rooms.Floor) error { return f.Deny(chair, "p1") }, err: rooms.ErrNoRequest, speakers: []string{"p2"}, previous: "p1"},
		{name: "grant outsider", do: func(f *rooms.Floor) error { return f.Grant(chair, "p2-d1-c1", rooms.MicAndCamera) }, err: rooms.ErrNotParticipant, speakers: []string{"p2"}, previous: "p1"},
		{name: "outsider asks", do: func(f *rooms.Floor) error { return f.Request(outsider) }, err: rooms.ErrNotParticipant, speakers: []string{"p2"}, previous: "p1"},
		{name: "chair site asks (no-op)", do: func(f *rooms.Floor) error { return f.Grant(chair, "tw", rooms.MicAndCamera) }, speakers: []string{"p2"}, previous: "p1"},
		{name: "p2 yields", do: func(f *rooms.Floor) error { return f.Yield(room2) }, previous: "p2"},
		{name: "p2 yields again", do: func(f *rooms.Floor) error { return f.Yield(room2) }, err: rooms.ErrNotSpeaking, previous: "p2"},
		{name: "chair grants p1, chair revokes", do: func(f *rooms.Floor) error {
			if err := f.Grant(chair, "p1", rooms.MicAndCamera); err != nil {
				return err
			}
			return f.Revoke(chair, "p1")
		}, previous: "p1"},
		{name: "grant p1, mute all", do: func(f *rooms.Floor) error {
			if err := f.Grant(chair, "p1", rooms.MicAndCamera); err != nil {
				return err
			}
			if err := f.Request(room2); err != nil {
				return err
			}
			return f.MuteAll(chair)
		}, requests: []string{"p2"}, previous: "p1"},
		{name: "technician ends", do: func(f *rooms.Floor) error { return f.End(tech) }, err: rooms.ErrForbidden, requests: []string{"p2"}, previous: "p1"},
		{name: "participant ends", do: func(f *rooms.Floor) error { return f.End(at1) }, err: rooms.ErrForbidden, requests: []string{"p2"}, previous: "p1"},
		{name: "chair ends", do: func(f *rooms.Floor) error { return f.End(chair) }, previous: "p1"},
		{name: "ask after end", do: func(f *rooms.Floor) error { return f.Request(at1) }, err: rooms.ErrEnded, previous: "p1"},
		{name: "grant after end", do: func(f *rooms.Floor) error { return f.Grant(chair, "p1", rooms.MicAndCamera) }, err: rooms.ErrEnded, previous: "p1"},
		{name: "mute after end", do: func(f *rooms.Floor) error { return f.MuteAll(chair) }, err: rooms.ErrEnded, previous: "p1"},
		{name: "end twice", do: func(f *rooms.Floor) error { return f.End(chair) }, previous: "p1"},
	})
	s := f.State()
	if !s.Ended || s.MuteEpoch != 1 || s.Allowed("tw") != (rooms.Media{}) || s.MeetingID != "m1" || s.ChairSite != "tw" {
		t.Errorf("final state %+v", s)
	}
}

func TestFloorDirected(t *testing.T) {
	f := rooms.NewFloor(floorMeeting(rooms.ModeDirected))
	mic, cam := rooms.Media{Mic: true}, rooms.Media{Camera: true}
	runFloor(t, f, []step{
		{name: "grant p1 mic", do: func(f *rooms.Floor) error { return f.Grant(chair, "p1", mic) }, speakers: []string{"p1:m-"}},
		{name: "grant p2 both", do: func(f *rooms.Floor) error { return f.Grant(chair, "p2", rooms.MicAndCamera) }, speakers: []string{"p1:m-", "p2:mc"}},
		{name: "p1 gets camera too", do: func(f *rooms.Floor) error { return f.Grant(chair, "p1", rooms.MicAndCamera) }, speakers: []string{"p1:mc", "p2:mc"}},
		{name: "same grant again", do: func(f *rooms.Floor) error { return f.Grant(chair, "p1", rooms.MicAndCamera) }, speakers: []string{"p1:mc", "p2:mc"}},
		{name: "grant nothing", do: func(f *rooms.Floor) error { return f.Grant(chair, "p1", rooms.Media{}) }, err: rooms.ErrInvalidMedia, speakers: []string{"p1:mc", "p2:mc"}},
		{name: "admin revokes p1", do: func(f *rooms.Floor) error { return f.Revoke(admin, "p1") }, speakers: []string{"p2:mc"}, previous: "p1"},
		{name: "p1-d1 asks", do: func(f *rooms.Floor) error { return f.Request(atD1) }, speakers: []string{"p2:mc"}, requests: []string{"p1-d1"}, previous: "p1"},
		{name: "p1-d1 granted camera only", do: func(f *rooms.Floor) error { return f.Grant(chair, "p1-d1", cam) }, speakers: []string{"p2:mc", "p1-d1:-c"}, previous: "p1"},
		{name: "allowed", do: func(f *rooms.Floor) error {
			s := f.State()
			for site, want := range map[string]rooms.Media{"p1-d1": cam, "p2": rooms.MicAndCamera, "p1": {}, "tw": rooms.MicAndCamera} {
				if got := s.Allowed(site); got != want {
					return fmt.Errorf("Allowed(%s) = %+v, want %+v", site, got, want)
				}
			}
			return nil
		}, speakers: []string{"p2:mc", "p1-d1:-c"}, previous: "p1"},
		{name: "participant revokes", do: func(f *rooms.Floor) error { return f.Revoke(at1, "p2") }, err: rooms.ErrForbidden, speakers: []string{"p2:mc", "p1-d1:-c"}, previous: "p1"},
		{name: "mute all", do: func(f *rooms.Floor) error { return f.MuteAll(chair) }, previous: "p1-d1"},
		{name: "switch to training", do: func(f *rooms.Floor) error {
			if err := f.Grant(chair, "p1", mic); err != nil {
				return err
			}
			if err := f.Request(room2); err != nil {
				return err
			}
			return f.SetMode(chair, rooms.ModeTraining)
		}, requests: []string{"p2"}, previous: "p1"},
		{name: "bad mode", do: func(f *rooms.Floor) error { return f.SetMode(chair, "lecture") }, err: rooms.ErrInvalidMode, requests: []string{"p2"}, previous: "p1"},
		{name: "switch to discussion drops the queue", do: func(f *rooms.Floor) error { return f.SetMode(chair, rooms.ModeDiscussion) }, previous: "p1"},
	})
}

func TestFloorDiscussion(t *testing.T) {
	f := rooms.NewFloor(floorMeeting(rooms.ModeDiscussion))
	runFloor(t, f, []step{
		{name: "request", do: func(f *rooms.Floor) error { return f.Request(at1) }, err: rooms.ErrWrongMode},
		{name: "grant", do: func(f *rooms.Floor) error { return f.Grant(chair, "p1", rooms.MicAndCamera) }, err: rooms.ErrWrongMode},
		{name: "revoke", do: func(f *rooms.Floor) error { return f.Revoke(chair, "p1") }, err: rooms.ErrWrongMode},
		{name: "everyone may speak", do: func(f *rooms.Floor) error {
			for _, s := range []string{"tw", "p1", "p2", "p1-d1"} {
				if f.State().Allowed(s) != rooms.MicAndCamera {
					return fmt.Errorf("%s may not speak", s)
				}
			}
			return nil
		}},
		{name: "participant mutes all", do: func(f *rooms.Floor) error { return f.MuteAll(at1) }, err: rooms.ErrForbidden},
		{name: "mute all", do: func(f *rooms.Floor) error { return f.MuteAll(chair) }},
		{name: "to training", do: func(f *rooms.Floor) error { return f.SetMode(chair, rooms.ModeTraining) }},
		{name: "now request works", do: func(f *rooms.Floor) error { return f.Request(at1) }, requests: []string{"p1"}},
	})
	if s := f.State(); s.MuteEpoch != 1 || s.Mode != rooms.ModeTraining {
		t.Errorf("state %+v", s)
	}
}

// TestFloorAuthorization checks every role against every floor action.
func TestFloorAuthorization(t *testing.T) {
	// A state where every action would succeed if allowed: p1 both asks and speaks.
	start := rooms.FloorState{MeetingID: "m1", Mode: rooms.ModeDirected,
		Speakers: []rooms.Grant{{Site: "p1", Mic: true, Camera: true}, {Site: "p2", Mic: true}},
		Requests: []rooms.FloorRequest{{Site: "p1"}, {Site: "p1-d1"}}}
	actions := []struct {
		act rooms.Action
		do  func(f *rooms.Floor, a rooms.Actor) error
	}{
		{rooms.ActionRequest, func(f *rooms.Floor, a rooms.Actor) error { return f.Request(a) }},
		{rooms.ActionWithdraw, func(f *rooms.Floor, a rooms.Actor) error { return f.Withdraw(a) }},
		{rooms.ActionYield, func(f *rooms.Floor, a rooms.Actor) error { return f.Yield(a) }},
		{rooms.ActionGrant, func(f *rooms.Floor, a rooms.Actor) error { return f.Grant(a, "p1-d1", rooms.MicAndCamera) }},
		{rooms.ActionDeny, func(f *rooms.Floor, a rooms.Actor) error { return f.Deny(a, "p1-d1") }},
		{rooms.ActionRevoke, func(f *rooms.Floor, a rooms.Actor) error { return f.Revoke(a, "p2") }},
		{rooms.ActionMuteAll, func(f *rooms.Floor, a rooms.Actor) error { return f.MuteAll(a) }},
		{rooms.ActionSetMode, func(f *rooms.Floor, a rooms.Actor) error { return f.SetMode(a, rooms.ModeTraining) }},
		{rooms.ActionEnd, func(f *rooms.Floor, a rooms.Actor) error { return f.End(a) }},
	}
	siteActs := map[rooms.Action]bool{rooms.ActionRequest: true, rooms.ActionWithdraw: true, rooms.ActionYield: true}
	roomAtP1 := rooms.Actor{Role: rooms.RoleRoom, Site: "p1"}
	unknown := rooms.Actor{Role: "bridge", Site: "p1"}
	actors := []struct {
		name        string
		a           rooms.Actor
		chair, site bool // may take chair actions / site actions
	}{
		{"admin", admin, true, true},
		{"technician", tech, false, false},
		{"chair at chair site", chair, true, false},
		{"chair elsewhere", chairAway, false, false},
		{"participant", at1, false, true},
		{"room", roomAtP1, false, true},
		{"unknown role", unknown, false, false},
	}
	for _, who := range actors {
		for _, act := range actions {
			t.Run(who.name+"/"+string(act.act), func(t *testing.T) {
				f := rooms.RestoreFloor(floorMeeting(rooms.ModeDirected), start)
				err := act.do(f, who.a)
				allowed := who.chair
				if siteActs[act.act] {
					allowed = who.site
				}
				if allowed && err != nil {
					t.Fatalf("refused: %v", err)
				}
				if !allowed {
					var fe *rooms.ForbiddenError
					if !errors.As(err, &fe) || !errors.Is(err, rooms.ErrForbidden) {
						t.Fatalf("err = %v, want a ForbiddenError", err)
					}
					if fe.Action != act.act || fe.Role != who.a.Role || fe.Reason == "" {
						t.Errorf("ForbiddenError %+v", fe)
					}
				}
			})
		}
	}
	var err error = &rooms.ForbiddenError{Action: rooms.ActionEnd, Role: rooms.RoleTechnician, Site: "gl", Reason: "technicians have no meeting control"}
	if got := err.Error(); got != "forbidden: technician at gl may not end: technicians have no meeting control" {
		t.Errorf("message %q", got)
	}
}

func TestFloorStateClone(t *testing.T) {
	f := rooms.NewFloor(floorMeeting(rooms.ModeTraining))
	if err := f.Request(at1); err != nil {
		t.Fatal(err)
	}
	s := f.State()
	s.Requests[0].Site = "changed"
	if f.State().Requests[0].Site != "p1" {
		t.Error("State() shares its slices with the floor")
	}
	r := rooms.RestoreFloor(floorMeeting(rooms.ModeTraining), f.State())
	if fmt.Sprint(r.State()) != fmt.Sprint(f.State()) {
		t.Errorf("restore: %+v != %+v", r.State(), f.State())
	}
}

// TestFloorUpdate: Update stamps with the clock it is given and says whether fn changed
// the floor; a refused action and an action that changes nothing both leave it unchanged,
// which is what tells a store not to write or announce.
func TestFloorUpdate(t *testing.T) {
	f := rooms.NewFloor(floorMeeting(rooms.ModeTraining))
	at := time.Date(2026, 3, 2, 1, 5, 0, 0, time.FixedZone("ICT", 7*3600))
	clock := func() time.Time { return at }
	st, changed, err := f.Update(clock, func(f *rooms.Floor) error { return f.Request(at1) })
	if err != nil || !changed || st.Version != 1 || !st.UpdatedAt.Equal(at) || st.UpdatedAt.Location() != time.UTC {
		t.Fatalf("request: changed %v, version %d, updated %v, err %v", changed, st.Version, st.UpdatedAt, err)
	}
	st, changed, err = f.Update(clock, func(*rooms.Floor) error { return nil })
	if err != nil || changed || st.Version != 1 || !st.Requested("p1") {
		t.Errorf("no-op: changed %v, version %d, err %v", changed, st.Version, err)
	}
	_, changed, err = f.Update(clock, func(f *rooms.Floor) error { return f.End(tech) })
	var fe *rooms.ForbiddenError
	if !errors.As(err, &fe) || changed {
		t.Errorf("refused end: changed %v, err %v", changed, err)
	}
	if v := f.State().Version; v != 1 {
		t.Errorf("version %d after a refused action, want 1", v)
	}
}
