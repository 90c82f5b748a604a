package vfmgr

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Store keeps allocation records across restarts.
type Store interface {
	// Load returns the saved allocations (none when nothing was saved).
	Load() ([]Allocation, error)
	// Save replaces the saved allocations.
	Save([]Allocation) error
}

// FileStore is a Store in one JSON file, replaced atomically on Save.
type FileStore struct {
	path string
}

var _ Store = (*FileStore)(nil)

// NewFileStore returns a store at path; its directory must exist.
func NewFileStore(path string) *FileStore { return &FileStore{path: path} }

type storeFile struct {
	Version     int          `json:"version"`
	Allocations []Allocation `json:"allocations"`
}

const storeVersion = 1

// Load reads the file; a missing file is an empty store.
func (s *FileStore) Load() ([]Allocation, error) {
	data, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load allocations: %w", err)
	}
	var f storeFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("load allocations from %s: %w", s.path, err)
	}
	if f.Version != storeVersion {
		return nil, fmt.Errorf("load allocations from %s: %w: version %d, want %d", s.path, ErrInvalid, f.Version, storeVersion)
	}
	return f.Allocations, nil
}

// Save writes a temporary file, syncs it and renames it over the old one.
func (s *FileStore) Save(allocs []Allocation) error {
	sorted := slices.Clone(allocs)
	slices.SortFunc(sorted, func(a, b Allocation) int { return strings.Compare(a.Owner, b.Owner) })
	data, err := json.MarshalIndent(storeFile{Version: storeVersion, Allocations: sorted}, "", "  ")
	if err != nil {
		return fmt.Errorf("save allocations: %w", err)
	}
	dir := filepath.Dir(s.path)
	tmp, err := os.CreateTemp(dir, filepath.Base(s.path)+".tmp*")
	if err != nil {
		return fmt.Errorf("save allocations to %s: %w", s.path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("save allocations to %s: %w", s.path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("save allocations to %s: %w", s.path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save allocations to %s: %w", s.path, err)
	}
	if err := os.Rename(tmp.Name(), s.path); err != nil {
		return fmt.Errorf("save allocations to %s: %w", s.path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // make the rename durable; not all filesystems support it
		d.Close()
	}
	return nil
}
