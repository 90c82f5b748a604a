package fallback

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// RecordStore keeps each migration's record across daemon restarts, so a
// restarted daemon can still commit or abort. Records are opaque bytes.
type RecordStore interface {
	// Load returns every saved record by migration ID.
	Load() (map[string][]byte, error)
	// Save replaces the record of one migration.
	Save(id string, data []byte) error
	// Delete removes a record; a missing one is not an error.
	Delete(id string) error
}

// FileStore is a RecordStore with one file per migration in a directory,
// each replaced atomically on Save.
type FileStore struct {
	dir string
}

var _ RecordStore = (*FileStore)(nil)

const recordSuffix = ".migration.json"

// NewFileStore returns a store in dir (for example STATE_DIR/migrations),
// creating the directory.
func NewFileStore(dir string) (*FileStore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create migration state dir %s: %w", dir, err)
	}
	return &FileStore{dir: dir}, nil
}

func (s *FileStore) path(id string) string { return filepath.Join(s.dir, id+recordSuffix) }

// Load reads every record file; leftovers of an interrupted Save are ignored.
func (s *FileStore) Load() (map[string][]byte, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("load migrations from %s: %w", s.dir, err)
	}
	out := map[string][]byte{}
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), recordSuffix)
		if !ok || e.IsDir() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(s.dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("load migration %s: %w", id, err)
		}
		out[id] = data
	}
	return out, nil
}

// Save writes a temporary file, syncs it and renames it over the record.
func (s *FileStore) Save(id string, data []byte) error {
	tmp, err := os.CreateTemp(s.dir, "."+id+".tmp*")
	if err != nil {
		return fmt.Errorf("save migration %s: %w", id, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("save migration %s: %w", id, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("save migration %s: %w", id, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save migration %s: %w", id, err)
	}
	if err := os.Rename(tmp.Name(), s.path(id)); err != nil {
		return fmt.Errorf("save migration %s: %w", id, err)
	}
	return nil
}

// Delete removes the record file.
func (s *FileStore) Delete(id string) error {
	if err := os.Remove(s.path(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete migration %s: %w", id, err)
	}
	return nil
}

// MemStore is a RecordStore in memory, for tests and daemons without a
// state directory.
type MemStore struct {
	mu   sync.Mutex
	recs map[string][]byte
}

var _ RecordStore = (*MemStore)(nil)

// NewMemStore returns an empty store.
func NewMemStore() *MemStore { return &MemStore{recs: map[string][]byte{}} }

// Load returns copies of the saved records.
func (s *MemStore) Load() (map[string][]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string][]byte, len(s.recs))
	for id, d := range s.recs {
		out[id] = append([]byte(nil), d...)
	}
	return out, nil
}

// Save keeps a copy of data.
func (s *MemStore) Save(id string, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recs[id] = append([]byte(nil), data...)
	return nil
}

// Delete forgets a record.
func (s *MemStore) Delete(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.recs, id)
	return nil
}
