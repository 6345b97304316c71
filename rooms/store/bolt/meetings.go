package bolt

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"go.etcd.io/bbolt"

	"github.com/cau-project/cau/rooms"
)

func getMeeting(tx *bbolt.Tx, id string) (rooms.Meeting, error) {
	v := tx.Bucket(bucketMeetings).Get([]byte(id))
	if v == nil {
		return rooms.Meeting{}, rooms.ErrNotFound
	}
	var m rooms.Meeting
	err := json.Unmarshal(v, &m)
	return m, err
}

func endKey(m rooms.Meeting) []byte { return append(timeKey(m.End), m.ID...) }

// meetingsEndingAfter reads, through the end-time index, the meetings whose End is
// after t, except the one with id skip.
func meetingsEndingAfter(tx *bbolt.Tx, t time.Time, skip string) ([]rooms.Meeting, error) {
	var out []rooms.Meeting
	c := tx.Bucket(bucketMeetingEnd).Cursor()
	from := timeKey(t)
	for k, _ := c.Seek(from); k != nil; k, _ = c.Next() {
		id := string(k[8:])
		if bytes.Equal(k[:8], from) || id == skip { // End == t is not after t
			continue
		}
		m, err := getMeeting(tx, id)
		if err != nil {
			return nil, fmt.Errorf("index entry %s: %w", id, err)
		}
		out = append(out, m)
	}
	return out, nil
}

// writeMeeting stores m and its index entry, replacing old's (if any).
func writeMeeting(tx *bbolt.Tx, m rooms.Meeting, old *rooms.Meeting) error {
	idx := tx.Bucket(bucketMeetingEnd)
	if old != nil {
		if err := idx.Delete(endKey(*old)); err != nil {
			return err
		}
	}
	if err := put(tx.Bucket(bucketMeetings), []byte(m.ID), m); err != nil {
		return err
	}
	return idx.Put(endKey(m), nil)
}

// runCheck gives check (if any) the meetings that might overlap m.
func runCheck(tx *bbolt.Tx, m rooms.Meeting, check rooms.CheckFunc) error {
	if check == nil {
		return nil
	}
	others, err := meetingsEndingAfter(tx, m.WindowStart(), m.ID)
	if err != nil {
		return err
	}
	return check(others)
}

// CreateMeeting implements rooms.MeetingStore.
func (s *Store) CreateMeeting(ctx context.Context, m rooms.Meeting, check rooms.CheckFunc) error {
	m = m.Normalize()
	if err := m.Validate(nil); err != nil {
		return fmt.Errorf("create meeting: %w", err)
	}
	err := s.write(ctx, func(tx *bbolt.Tx) (*rooms.Change, error) {
		if tx.Bucket(bucketMeetings).Get([]byte(m.ID)) != nil {
			return nil, rooms.ErrExists
		}
		if err := runCheck(tx, m, check); err != nil {
			return nil, err
		}
		return &rooms.Change{MeetingID: m.ID, Kind: rooms.ChangeMeeting, Meeting: &m}, writeMeeting(tx, m, nil)
	})
	if err != nil {
		return fmt.Errorf("create meeting %s: %w", m.ID, err)
	}
	return nil
}

// UpdateMeeting implements rooms.MeetingStore.
func (s *Store) UpdateMeeting(ctx context.Context, m rooms.Meeting, check rooms.CheckFunc) error {
	m = m.Normalize()
	if err := m.Validate(nil); err != nil {
		return fmt.Errorf("update meeting: %w", err)
	}
	err := s.write(ctx, func(tx *bbolt.Tx) (*rooms.Change, error) {
		old, err := getMeeting(tx, m.ID)
		if err != nil {
			return nil, err
		}
		if err := runCheck(tx, m, check); err != nil {
			return nil, err
		}
		return &rooms.Change{MeetingID: m.ID, Kind: rooms.ChangeMeeting, Meeting: &m}, writeMeeting(tx, m, &old)
	})
	if err != nil {
		return fmt.Errorf("update meeting %s: %w", m.ID, err)
	}
	return nil
}

// Meeting implements rooms.MeetingStore.
func (s *Store) Meeting(ctx context.Context, id string) (rooms.Meeting, error) {
	var m rooms.Meeting
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		var err error
		m, err = getMeeting(tx, id)
		return err
	})
	if err != nil {
		return rooms.Meeting{}, fmt.Errorf("meeting %s: %w", id, err)
	}
	return m, nil
}

// Meetings implements rooms.MeetingStore.
func (s *Store) Meetings(ctx context.Context, endAfter time.Time) ([]rooms.Meeting, error) {
	var out []rooms.Meeting
	err := s.view(ctx, func(tx *bbolt.Tx) (err error) {
		if !endAfter.IsZero() {
			out, err = meetingsEndingAfter(tx, endAfter, "")
		} else {
			out, err = decodeAll[rooms.Meeting](tx.Bucket(bucketMeetings))
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list meetings: %w", err)
	}
	slices.SortFunc(out, func(a, b rooms.Meeting) int {
		return cmp.Or(a.Start.Compare(b.Start), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// DeleteMeeting implements rooms.MeetingStore.
func (s *Store) DeleteMeeting(ctx context.Context, id string) error {
	err := s.write(ctx, func(tx *bbolt.Tx) (*rooms.Change, error) {
		m, err := getMeeting(tx, id)
		if err != nil {
			return nil, err
		}
		if err := tx.Bucket(bucketMeetingEnd).Delete(endKey(m)); err != nil {
			return nil, err
		}
		if err := tx.Bucket(bucketMeetings).Delete([]byte(id)); err != nil {
			return nil, err
		}
		if err := tx.Bucket(bucketFloors).Delete([]byte(id)); err != nil {
			return nil, err
		}
		if att := tx.Bucket(bucketAttendance); att.Bucket([]byte(id)) != nil {
			if err := att.DeleteBucket([]byte(id)); err != nil {
				return nil, err
			}
		}
		return &rooms.Change{MeetingID: id, Kind: rooms.ChangeMeeting}, nil
	})
	if err != nil {
		return fmt.Errorf("delete meeting %s: %w", id, err)
	}
	return nil
}

// floor loads a meeting's floor inside tx.
func floor(tx *bbolt.Tx, id string) (*rooms.Floor, error) {
	m, err := getMeeting(tx, id)
	if err != nil {
		return nil, err
	}
	var st rooms.FloorState
	if v := tx.Bucket(bucketFloors).Get([]byte(id)); v != nil {
		if err := json.Unmarshal(v, &st); err != nil {
			return nil, err
		}
	}
	return rooms.RestoreFloor(m, st), nil
}

// Floor implements rooms.FloorStore.
func (s *Store) Floor(ctx context.Context, meetingID string) (rooms.FloorState, error) {
	var st rooms.FloorState
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		f, err := floor(tx, meetingID)
		if err != nil {
			return err
		}
		st = f.State()
		return nil
	})
	if err != nil {
		return rooms.FloorState{}, fmt.Errorf("floor of meeting %s: %w", meetingID, err)
	}
	return st, nil
}

// UpdateFloor implements rooms.FloorStore. bbolt runs one write transaction at a time,
// so fn runs once, on the latest state.
func (s *Store) UpdateFloor(ctx context.Context, meetingID string, fn func(*rooms.Floor) error) (rooms.FloorState, error) {
	var st rooms.FloorState
	err := s.write(ctx, func(tx *bbolt.Tx) (*rooms.Change, error) {
		f, err := floor(tx, meetingID)
		if err != nil {
			return nil, err
		}
		var changed bool
		if st, changed, err = f.Update(s.now, fn); err != nil || !changed {
			return nil, err
		}
		c := &rooms.Change{MeetingID: meetingID, Kind: rooms.ChangeFloor, Floor: &st}
		return c, put(tx.Bucket(bucketFloors), []byte(meetingID), st)
	})
	if err != nil {
		return rooms.FloorState{}, fmt.Errorf("update floor of meeting %s: %w", meetingID, err)
	}
	return st, nil
}

// AppendAttendance implements rooms.AttendanceStore.
func (s *Store) AppendAttendance(ctx context.Context, e rooms.AttendanceEvent) error {
	if err := e.Validate(); err != nil {
		return fmt.Errorf("append attendance: %w", err)
	}
	e.Time = e.Time.UTC()
	err := s.update(ctx, true, func(tx *bbolt.Tx) error {
		if tx.Bucket(bucketMeetings).Get([]byte(e.MeetingID)) == nil {
			return rooms.ErrNotFound
		}
		b, err := tx.Bucket(bucketAttendance).CreateBucketIfNotExists([]byte(e.MeetingID))
		if err != nil {
			return err
		}
		n, err := b.NextSequence()
		if err != nil {
			return err
		}
		return put(b, seqKey(n), e)
	})
	if err != nil {
		return fmt.Errorf("append attendance to meeting %s: %w", e.MeetingID, err)
	}
	s.hub.Publish(rooms.Change{MeetingID: e.MeetingID, Kind: rooms.ChangeAttendance, Event: &e})
	return nil
}

// Attendance implements rooms.AttendanceStore.
func (s *Store) Attendance(ctx context.Context, meetingID string) ([]rooms.AttendanceEvent, error) {
	var out []rooms.AttendanceEvent
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketAttendance).Bucket([]byte(meetingID))
		if b == nil {
			return nil
		}
		var err error
		out, err = decodeAll[rooms.AttendanceEvent](b)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("attendance of meeting %s: %w", meetingID, err)
	}
	return out, nil
}
