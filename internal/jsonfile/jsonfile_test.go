package jsonfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type doc struct {
	Name  string `json:"name"`
	Count int    `json:"count"`
}

// TestWriteRead: what Write wrote, Read gives back; a rewrite replaces it whole, leaves
// no temporary file behind, and the file is not readable by every user.
func TestWriteRead(t *testing.T) {
	dir := t.TempDir()
	for _, want := range []doc{{"một", 1}, {"hai", 2}} {
		if err := Write(dir, "doc.json", want); err != nil {
			t.Fatal(err)
		}
		got, err := Read[doc](dir, "doc.json")
		if err != nil || got != want {
			t.Fatalf("read %+v, %v; want %+v", got, err, want)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 {
		t.Fatalf("dir holds %v (%v), want doc.json alone", entries, err)
	}
	st, err := os.Stat(filepath.Join(dir, "doc.json"))
	if err != nil || st.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v (%v), want 0640", st.Mode().Perm(), err)
	}
}

// TestReadErrors: a missing file and a malformed one are errors that name the file.
func TestReadErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Read[doc](dir, "none.json"); err == nil || !strings.Contains(err.Error(), "none.json") {
		t.Errorf("missing file: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bad.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Read[doc](dir, "bad.json"); err == nil || !strings.Contains(err.Error(), "bad.json") {
		t.Errorf("malformed file: %v", err)
	}
	if err := Write(filepath.Join(dir, "no-such-dir"), "doc.json", doc{}); err == nil {
		t.Error("write into a missing directory succeeded")
	}
}
