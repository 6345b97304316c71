// Package bolt is the embedded, durable [rooms.Store]: one bbolt file, no server to
// run. It is the default store of `cau serve`. Every write is one fsynced bbolt
// transaction, so nothing acknowledged is lost on restart. Change notification
// ([Store.Watch]) is in-process only: one process owns the file.
package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/cau-project/cau/rooms"
	"github.com/cau-project/cau/rooms/internal/notify"
)

// Bucket names. Keys and values are described next to each.
var (
	bucketMeta       = []byte("meta")            // "schema" → schemaVersion
	bucketSites      = []byte("sites")           // position (8-byte big-endian) → Site JSON
	bucketEndpoints  = []byte("endpoints")       // id → Endpoint JSON
	bucketMeetings   = []byte("meetings")        // id → Meeting JSON
	bucketMeetingEnd = []byte("meetings_by_end") // timeKey(End) + id → nothing (index)
	bucketFloors     = []byte("floors")          // meeting id → FloorState JSON
	bucketAttendance = []byte("attendance")      // meeting id → bucket: sequence → AttendanceEvent JSON
	bucketAudit      = []byte("audit")           // timeKey(Time) + sequence → AuditEntry JSON

	allBuckets = [][]byte{bucketMeta, bucketSites, bucketEndpoints, bucketMeetings, bucketMeetingEnd,
		bucketFloors, bucketAttendance, bucketAudit}
)

// schemaVersion is written on first open and checked on every later one.
const schemaVersion = "1"

// Store is the bbolt implementation of rooms.Store. bbolt serialises write
// transactions itself (one writer at a time, readers concurrent), so Store needs no
// lock of its own; the hub has its own.
type Store struct {
	db  *bbolt.DB
	hub *notify.Hub
	now func() time.Time // read-only after Open
	// pubMu is taken at the end of a write transaction and released after its change
	// is published, so watchers see changes in commit order (see write).
	pubMu sync.Mutex
}

var _ rooms.Store = (*Store)(nil)

// Open opens (creating if needed) the store file at path. It fails after 2 s if another
// process holds the file.
func Open(path string) (*Store, error) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		switch v := meta.Get([]byte("schema")); {
		case v == nil:
			return meta.Put([]byte("schema"), []byte(schemaVersion))
		case string(v) != schemaVersion:
			return fmt.Errorf("schema version %q, this build reads %q", v, schemaVersion)
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	// Appends (attendance, audit) go through db.Batch: concurrent ones share an fsync.
	// bbolt's default 10 ms wait would slow a lone writer down; 2 ms still gathers a
	// burst of joins.
	db.MaxBatchDelay = 2 * time.Millisecond
	return &Store{db: db, hub: notify.New(), now: time.Now}, nil
}

// Close closes the file and every watch channel.
func (s *Store) Close() error {
	s.hub.Close()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}

// Path is the store file's path.
func (s *Store) Path() string { return s.db.Path() }

// Watch implements rooms.Watcher, for this process.
func (s *Store) Watch(ctx context.Context, meetingID string) (<-chan rooms.Change, error) {
	ch, err := s.hub.Subscribe(ctx, meetingID)
	if err != nil {
		return nil, fmt.Errorf("watch meeting %s: %w", meetingID, err)
	}
	return ch, nil
}

// update runs fn in a write transaction; batch lets concurrent small writes share one
// fsync (fn may then run twice, so it must not act outside the transaction).
func (s *Store) update(ctx context.Context, batch bool, fn func(tx *bbolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var err error
	if batch {
		err = s.db.Batch(fn)
		return closedErr(err)
	}
	// An audit entry the caller attached goes into this same transaction.
	pa := rooms.PendingAuditOf(ctx)
	if pa != nil {
		change := fn
		fn = func(tx *bbolt.Tx) error {
			if err := change(tx); err != nil {
				return err
			}
			return s.appendAuditTx(tx, pa.Entry)
		}
	}
	err = s.db.Update(fn)
	if err == nil && pa != nil {
		pa.MarkWritten()
	}
	return closedErr(err)
}

// write runs fn in a write transaction and publishes the change it returns (if any)
// after the commit. bbolt runs one write transaction at a time; taking pubMu before
// the commit and releasing it after publishing keeps publications in commit order.
func (s *Store) write(ctx context.Context, fn func(tx *bbolt.Tx) (*rooms.Change, error)) error {
	var c *rooms.Change
	locked := false
	err := s.update(ctx, false, func(tx *bbolt.Tx) error {
		var err error
		if c, err = fn(tx); err != nil || c == nil {
			return err
		}
		s.pubMu.Lock()
		locked = true
		return nil
	})
	if locked {
		if err == nil {
			s.hub.Publish(*c)
		}
		s.pubMu.Unlock()
	}
	return err
}

// view runs fn in a read transaction.
func (s *Store) view(ctx context.Context, fn func(tx *bbolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return closedErr(s.db.View(fn))
}

func closedErr(err error) error {
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return fmt.Errorf("%w: %w", rooms.ErrClosed, err)
	}
	return err
}

// timeKey encodes t so that byte order is time order (sign bit flipped).
func timeKey(t time.Time) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(t.UnixNano())^(1<<63))
	return b[:]
}

func seqKey(n uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], n)
	return b[:]
}

func put(b *bbolt.Bucket, key []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(key, data)
}

// SaveSites implements rooms.SiteStore.
func (s *Store) SaveSites(ctx context.Context, sites []rooms.Site) error {
	err := s.update(ctx, false, func(tx *bbolt.Tx) error {
		if err := tx.DeleteBucket(bucketSites); err != nil {
			return err
		}
		b, err := tx.CreateBucket(bucketSites)
		if err != nil {
			return err
		}
		b.FillPercent = 1 // appended in key order: pack pages full
		for i, site := range sites {
			if err := put(b, seqKey(uint64(i)), site); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("save %d sites: %w", len(sites), err)
	}
	return nil
}

// Sites implements rooms.SiteStore.
func (s *Store) Sites(ctx context.Context) ([]rooms.Site, error) {
	return list[rooms.Site](ctx, s, bucketSites, "load sites")
}

// PutEndpoint implements rooms.EndpointStore.
func (s *Store) PutEndpoint(ctx context.Context, e rooms.Endpoint) error {
	if e.ID == "" {
		return fmt.Errorf("put endpoint: %w", rooms.ErrEmptyID)
	}
	err := s.update(ctx, false, func(tx *bbolt.Tx) error {
		return put(tx.Bucket(bucketEndpoints), []byte(e.ID), e)
	})
	if err != nil {
		return fmt.Errorf("put endpoint %s: %w", e.ID, err)
	}
	return nil
}

// Endpoint implements rooms.EndpointStore.
func (s *Store) Endpoint(ctx context.Context, id string) (rooms.Endpoint, error) {
	var e rooms.Endpoint
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketEndpoints).Get([]byte(id))
		if v == nil {
			return rooms.ErrNotFound
		}
		return json.Unmarshal(v, &e)
	})
	if err != nil {
		return rooms.Endpoint{}, fmt.Errorf("endpoint %s: %w", id, err)
	}
	return e, nil
}

// Endpoints implements rooms.EndpointStore.
func (s *Store) Endpoints(ctx context.Context) ([]rooms.Endpoint, error) {
	return list[rooms.Endpoint](ctx, s, bucketEndpoints, "list endpoints")
}

// DeleteEndpoint implements rooms.EndpointStore.
func (s *Store) DeleteEndpoint(ctx context.Context, id string) error {
	err := s.update(ctx, false, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketEndpoints)
		if b.Get([]byte(id)) == nil {
			return rooms.ErrNotFound
		}
		return b.Delete([]byte(id))
	})
	if err != nil {
		return fmt.Errorf("delete endpoint %s: %w", id, err)
	}
	return nil
}

// AppendAudit implements rooms.AuditStore.
func (s *Store) AppendAudit(ctx context.Context, e rooms.AuditEntry) error {
	if e.Time.IsZero() {
		e.Time = s.now()
	}
	err := s.update(ctx, true, func(tx *bbolt.Tx) error { return s.appendAuditTx(tx, e) })
	if err != nil {
		return fmt.Errorf("append audit entry: %w", err)
	}
	return nil
}

// appendAuditTx appends e in tx.
func (s *Store) appendAuditTx(tx *bbolt.Tx, e rooms.AuditEntry) error {
	if e.Time.IsZero() {
		e.Time = s.now()
	}
	e.Time = e.Time.UTC()
	b := tx.Bucket(bucketAudit)
	n, err := b.NextSequence()
	if err != nil {
		return err
	}
	return put(b, append(timeKey(e.Time), seqKey(n)...), e)
}

// Audit implements rooms.AuditStore. Entries are keyed by time, so a bounded query
// reads only its range; with a limit it reads backwards from the end of the range.
func (s *Store) Audit(ctx context.Context, q rooms.AuditQuery) ([]rooms.AuditEntry, error) {
	var out []rooms.AuditEntry
	before := func(k []byte) bool { return q.Until.IsZero() || bytes.Compare(k[:8], timeKey(q.Until)) < 0 }
	after := func(k []byte) bool { return q.Since.IsZero() || bytes.Compare(k[:8], timeKey(q.Since)) >= 0 }
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketAudit).Cursor()
		take := func(v []byte) error {
			var e rooms.AuditEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return err
			}
			if q.Match(e) {
				out = append(out, e)
			}
			return nil
		}
		if q.Limit <= 0 {
			k, v := c.First()
			if !q.Since.IsZero() {
				k, v = c.Seek(timeKey(q.Since))
			}
			for ; k != nil && before(k); k, v = c.Next() {
				if err := take(v); err != nil {
					return err
				}
			}
			return nil
		}
		k, v := c.Last()
		if !q.Until.IsZero() {
			if k, _ = c.Seek(timeKey(q.Until)); k == nil {
				k, v = c.Last()
			} else {
				k, v = c.Prev()
			}
		}
		for ; k != nil && after(k) && len(out) < q.Limit; k, v = c.Prev() {
			if err := take(v); err != nil {
				return err
			}
		}
		slices.Reverse(out)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	return out, nil
}

// list reads every record of bucket; what says what failed.
func list[T any](ctx context.Context, s *Store, bucket []byte, what string) ([]T, error) {
	var out []T
	err := s.view(ctx, func(tx *bbolt.Tx) (err error) {
		out, err = decodeAll[T](tx.Bucket(bucket))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

// decodeAll decodes every value of b, a bucket of JSON records, in key order.
func decodeAll[T any](b *bbolt.Bucket) ([]T, error) {
	var out []T
	err := b.ForEach(func(_, v []byte) error {
		var x T
		if err := json.Unmarshal(v, &x); err != nil {
			return err
		}
		out = append(out, x)
		return nil
	})
	return out, err
}
