package bolt_test

import (
	"path/filepath"
	"strings"
	"testing"

	"go.etcd.io/bbolt"

	"github.com/cau-project/cau/rooms"
	"github.com/cau-project/cau/rooms/store/bolt"
	"github.com/cau-project/cau/rooms/storetest"
)

func open(t *testing.T, path string) *bolt.Store {
	t.Helper()
	s, err := bolt.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) rooms.Store {
		s := open(t, filepath.Join(t.TempDir(), "cau.db"))
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

func TestReopen(t *testing.T) {
	storetest.RunReopen(t, func(t *testing.T) func() rooms.Store {
		path := filepath.Join(t.TempDir(), "cau.db")
		return func() rooms.Store { return open(t, path) }
	})
}

// TestOneOwner checks that a second handle on a file in use fails instead of
// corrupting it (bbolt's file lock; two `cau serve` on one file is a mistake).
func TestOneOwner(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the 2 s lock timeout (testing.Short)")
	}
	path := filepath.Join(t.TempDir(), "cau.db")
	s := open(t, path)
	defer s.Close()
	if s2, err := bolt.Open(path); err == nil {
		s2.Close()
		t.Fatal("second Open of a file in use succeeded")
	}
}

func TestSchemaVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cau.db")
	open(t, path).Close()
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error { return tx.Bucket([]byte("meta")).Put([]byte("schema"), []byte("99")) })
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bolt.Open(path); err == nil || !strings.Contains(err.Error(), "schema version") {
		t.Fatalf("Open with a newer schema: err = %v", err)
	}
}
