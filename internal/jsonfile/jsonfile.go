// Package jsonfile reads and writes the JSON files a recording keeps beside its media
// (recording.json, timeline.json): written atomically, so a crash leaves the previous
// version or the new one, never half of one.
package jsonfile

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// Write writes v, indented, to dir/name atomically: a temporary file in dir, synced,
// made 0640 (recordings are not for every local user), then renamed over the old one.
func Write(dir, name string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", name, err)
	}
	tmp, err := os.CreateTemp(dir, "."+name+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	_, err = tmp.Write(append(b, '\n'))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o640)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(dir, name))
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// Read decodes dir/name into a T.
func Read[T any](dir, name string) (T, error) {
	var v T
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return v, fmt.Errorf("read %s: %w", name, err)
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return v, fmt.Errorf("read %s in %s: %w", name, dir, err)
	}
	return v, nil
}
