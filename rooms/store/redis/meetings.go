package redis

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cau-project/cau/rooms"
)

func (s *Store) meetingsKey() string            { return s.key("meetings") }
func (s *Store) endKey() string                 { return s.key("meetings", "end") }
func (s *Store) floorKey(id string) string      { return s.key("floor", id) }
func (s *Store) attendanceKey(id string) string { return s.key("attendance", id) }

// getMeeting reads one meeting with c (the client, or a transaction's connection).
func (s *Store) getMeeting(ctx context.Context, c goredis.Cmdable, id string) (rooms.Meeting, error) {
	var m rooms.Meeting
	v, err := c.HGet(ctx, s.meetingsKey(), id).Result()
	if errors.Is(err, goredis.Nil) {
		return m, rooms.ErrNotFound
	}
	if err != nil {
		return m, err
	}
	return m, json.Unmarshal([]byte(v), &m)
}

// endingAfter reads, through the end-time index, the meetings whose End is after t,
// except the one with id skip. The index has millisecond scores; the exact test is
// done here.
func (s *Store) endingAfter(ctx context.Context, c goredis.Cmdable, t time.Time, skip string) ([]rooms.Meeting, error) {
	ids, err := c.ZRangeByScore(ctx, s.endKey(), &goredis.ZRangeBy{Min: strconv.FormatInt(t.UnixMilli(), 10), Max: "+inf"}).Result()
	if err != nil || len(ids) == 0 {
		return nil, err
	}
	vals, err := c.HMGet(ctx, s.meetingsKey(), ids...).Result()
	if err != nil {
		return nil, err
	}
	var out []rooms.Meeting
	for i, v := range vals {
		str, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("index entry %s has no meeting", ids[i])
		}
		var m rooms.Meeting
		if err := json.Unmarshal([]byte(str), &m); err != nil {
			return nil, err
		}
		if m.ID != skip && m.End.After(t) {
			out = append(out, m)
		}
	}
	return out, nil
}

// putMeeting is the shared body of CreateMeeting and UpdateMeeting: inside a
// transaction watching the meetings hash, so any concurrent meeting write restarts it.
func (s *Store) putMeeting(ctx context.Context, m rooms.Meeting, check rooms.CheckFunc, create bool) error {
	m = m.Normalize()
	if err := m.Validate(nil); err != nil {
		return err
	}
	data, err := encode(m)
	if err != nil {
		return err
	}
	change, err := encode(rooms.Change{MeetingID: m.ID, Kind: rooms.ChangeMeeting, Meeting: &m})
	if err != nil {
		return err
	}
	pa, az, err := s.pendingAudit(ctx)
	if err != nil {
		return err
	}
	return audited(pa, s.txn(ctx, func(tx *goredis.Tx) error {
		exists, err := tx.HExists(ctx, s.meetingsKey(), m.ID).Result()
		switch {
		case err != nil:
			return err
		case create && exists:
			return rooms.ErrExists
		case !create && !exists:
			return rooms.ErrNotFound
		}
		if check != nil {
			others, err := s.endingAfter(ctx, tx, m.WindowStart(), m.ID)
			if err != nil {
				return err
			}
			if err := check(others); err != nil {
				return err
			}
		}
		_, err = tx.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			p.HSet(ctx, s.meetingsKey(), m.ID, data)
			p.ZAdd(ctx, s.endKey(), goredis.Z{Score: float64(m.End.UnixMilli()), Member: m.ID})
			p.Publish(ctx, s.key("changes"), change)
			s.queueAudit(ctx, p, az)
			return nil
		})
		return err
	}, s.meetingsKey()))
}

// CreateMeeting implements rooms.MeetingStore.
func (s *Store) CreateMeeting(ctx context.Context, m rooms.Meeting, check rooms.CheckFunc) error {
	if err := s.putMeeting(ctx, m, check, true); err != nil {
		return fmt.Errorf("create meeting %s: %w", m.ID, err)
	}
	return nil
}

// UpdateMeeting implements rooms.MeetingStore.
func (s *Store) UpdateMeeting(ctx context.Context, m rooms.Meeting, check rooms.CheckFunc) error {
	if err := s.putMeeting(ctx, m, check, false); err != nil {
		return fmt.Errorf("update meeting %s: %w", m.ID, err)
	}
	return nil
}

// Meeting implements rooms.MeetingStore.
func (s *Store) Meeting(ctx context.Context, id string) (rooms.Meeting, error) {
	if err := s.open(); err != nil {
		return rooms.Meeting{}, fmt.Errorf("meeting %s: %w", id, err)
	}
	m, err := s.getMeeting(ctx, s.c, id)
	if err != nil {
		return rooms.Meeting{}, fmt.Errorf("meeting %s: %w", id, mapErr(err))
	}
	return m, nil
}

// Meetings implements rooms.MeetingStore.
func (s *Store) Meetings(ctx context.Context, endAfter time.Time) ([]rooms.Meeting, error) {
	if err := s.open(); err != nil {
		return nil, fmt.Errorf("list meetings: %w", err)
	}
	var out []rooms.Meeting
	var err error
	if endAfter.IsZero() {
		out, err = decodeAll[rooms.Meeting](s.c.HVals(ctx, s.meetingsKey()).Result())
	} else {
		out, err = s.endingAfter(ctx, s.c, endAfter, "")
	}
	if err != nil {
		return nil, fmt.Errorf("list meetings: %w", mapErr(err))
	}
	slices.SortFunc(out, func(a, b rooms.Meeting) int {
		return cmp.Or(a.Start.Compare(b.Start), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// DeleteMeeting implements rooms.MeetingStore.
func (s *Store) DeleteMeeting(ctx context.Context, id string) error {
	change, err := encode(rooms.Change{MeetingID: id, Kind: rooms.ChangeMeeting})
	if err != nil {
		return fmt.Errorf("delete meeting %s: %w", id, err)
	}
	pa, az, err := s.pendingAudit(ctx)
	if err != nil {
		return fmt.Errorf("delete meeting %s: %w", id, err)
	}
	err = s.txn(ctx, func(tx *goredis.Tx) error {
		exists, err := tx.HExists(ctx, s.meetingsKey(), id).Result()
		if err != nil {
			return err
		}
		if !exists {
			return rooms.ErrNotFound
		}
		_, err = tx.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			p.HDel(ctx, s.meetingsKey(), id)
			p.ZRem(ctx, s.endKey(), id)
			p.Del(ctx, s.floorKey(id), s.attendanceKey(id))
			p.Publish(ctx, s.key("changes"), change)
			s.queueAudit(ctx, p, az)
			return nil
		})
		return err
	}, s.meetingsKey())
	if err = audited(pa, err); err != nil {
		return fmt.Errorf("delete meeting %s: %w", id, err)
	}
	return nil
}

// floor reads a meeting's floor with c.
func (s *Store) floor(ctx context.Context, c goredis.Cmdable, id string) (*rooms.Floor, error) {
	m, err := s.getMeeting(ctx, c, id)
	if err != nil {
		return nil, err
	}
	var st rooms.FloorState
	v, err := c.Get(ctx, s.floorKey(id)).Result()
	switch {
	case errors.Is(err, goredis.Nil):
	case err != nil:
		return nil, err
	default:
		if err := json.Unmarshal([]byte(v), &st); err != nil {
			return nil, err
		}
	}
	return rooms.RestoreFloor(m, st), nil
}

// Floor implements rooms.FloorStore.
func (s *Store) Floor(ctx context.Context, meetingID string) (rooms.FloorState, error) {
	if err := s.open(); err != nil {
		return rooms.FloorState{}, fmt.Errorf("floor of meeting %s: %w", meetingID, err)
	}
	f, err := s.floor(ctx, s.c, meetingID)
	if err != nil {
		return rooms.FloorState{}, fmt.Errorf("floor of meeting %s: %w", meetingID, mapErr(err))
	}
	return f.State(), nil
}

// UpdateFloor implements rooms.FloorStore: an optimistic transaction watching the
// floor key and the meetings hash (so a meeting deleted meanwhile leaves no floor).
func (s *Store) UpdateFloor(ctx context.Context, meetingID string, fn func(*rooms.Floor) error) (rooms.FloorState, error) {
	var st rooms.FloorState
	err := s.txn(ctx, func(tx *goredis.Tx) error {
		if err := checkFence(ctx, tx); err != nil {
			return err
		}
		f, err := s.floor(ctx, tx, meetingID)
		if err != nil {
			return err
		}
		var changed bool
		if st, changed, err = f.Update(s.now, fn); err != nil || !changed {
			return err
		}
		data, err := encode(st)
		if err != nil {
			return err
		}
		change, err := encode(rooms.Change{MeetingID: meetingID, Kind: rooms.ChangeFloor, Floor: &st})
		if err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			p.Set(ctx, s.floorKey(meetingID), data, 0)
			p.Publish(ctx, s.key("changes"), change)
			return nil
		})
		return err
	}, fenced(ctx, s.floorKey(meetingID), s.meetingsKey())...)
	if err != nil {
		return rooms.FloorState{}, fmt.Errorf("update floor of meeting %s: %w", meetingID, err)
	}
	return st, nil
}

// AppendAttendance implements rooms.AttendanceStore. It watches the meetings hash only
// to refuse events for a meeting deleted meanwhile; appends do not write that hash, so
// they never restart each other.
func (s *Store) AppendAttendance(ctx context.Context, e rooms.AttendanceEvent) error {
	if err := e.Validate(); err != nil {
		return fmt.Errorf("append attendance: %w", err)
	}
	e.Time = e.Time.UTC()
	data, err := encode(e)
	if err != nil {
		return fmt.Errorf("append attendance: %w", err)
	}
	change, err := encode(rooms.Change{MeetingID: e.MeetingID, Kind: rooms.ChangeAttendance, Event: &e})
	if err != nil {
		return fmt.Errorf("append attendance: %w", err)
	}
	err = s.txn(ctx, func(tx *goredis.Tx) error {
		if err := checkFence(ctx, tx); err != nil {
			return err
		}
		exists, err := tx.HExists(ctx, s.meetingsKey(), e.MeetingID).Result()
		if err != nil {
			return err
		}
		if !exists {
			return rooms.ErrNotFound
		}
		_, err = tx.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			p.RPush(ctx, s.attendanceKey(e.MeetingID), data)
			p.Publish(ctx, s.key("changes"), change)
			return nil
		})
		return err
	}, fenced(ctx, s.meetingsKey())...)
	if err != nil {
		return fmt.Errorf("append attendance to meeting %s: %w", e.MeetingID, err)
	}
	return nil
}

// Attendance implements rooms.AttendanceStore.
func (s *Store) Attendance(ctx context.Context, meetingID string) ([]rooms.AttendanceEvent, error) {
	if err := s.open(); err != nil {
		return nil, fmt.Errorf("attendance of meeting %s: %w", meetingID, err)
	}
	out, err := decodeAll[rooms.AttendanceEvent](s.c.LRange(ctx, s.attendanceKey(meetingID), 0, -1).Result())
	if err != nil {
		return nil, fmt.Errorf("attendance of meeting %s: %w", meetingID, mapErr(err))
	}
	return out, nil
}

// fenced adds the key of the fence ctx carries (rooms.WithFence) to a transaction's
// watched keys: the transaction then fails, and is tried again, if another node takes
// the lease between checkFence and the write.
func fenced(ctx context.Context, keys ...string) []string {
	if f, ok := rooms.FenceOf(ctx); ok {
		return append(keys, f.Key)
	}
	return keys
}

// checkFence refuses the write (rooms.ErrFenced) if the fence ctx carries is stale: its
// lease's counter has moved past its token. Run inside a transaction that watches the
// counter (fenced), so the check and the write are one.
func checkFence(ctx context.Context, tx *goredis.Tx) error {
	f, ok := rooms.FenceOf(ctx)
	if !ok {
		return nil
	}
	cur, err := tx.Get(ctx, f.Key).Int64()
	if err != nil && !errors.Is(err, goredis.Nil) {
		return fmt.Errorf("fence %s: %w", f.Key, err)
	}
	if cur != f.Token {
		return fmt.Errorf("%w (token %d, lease now at %d)", rooms.ErrFenced, f.Token, cur)
	}
	return nil
}
