package store

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/offloadd/offloadd/offload"
)

var (
	bucketFlows = []byte("flows")
	bucketMeta  = []byte("meta")
	keyVersion  = []byte("version")
	keySummary  = []byte("summary")
)

// fillPercent packs pages fuller than bbolt's default of half: flows are
// mostly added, and IDs from one controller tend to share a prefix.
const fillPercent = 0.8

// schemaVersion is bumped when the record format changes incompatibly.
// Version 3: checksummed records (see record.go) and a summary in meta.
// Version 2 files (records without checksums) are read, and rewritten as
// version 3 when opened for writing.
const (
	schemaVersion = "3"
	schemaLegacy  = "2"
)

// maxCheckErrors caps the structural problems an Open reports.
const maxCheckErrors = 5

// Bolt is an offload.Store in a bbolt file.
type Bolt struct {
	db   *bolt.DB
	path string
	log  *slog.Logger
}

var _ offload.Store = (*Bolt)(nil)

// Options configure OpenWith.
type Options struct {
	// Log receives notes about the file; nil is slog.Default().
	Log *slog.Logger
	// ReadOnly opens an existing file with a shared lock and never writes
	// it: schema 2 files stay schema 2. The default is read-write.
	ReadOnly bool

	// salvage opens a file that fails the checks after bbolt's own open
	// (short file, bbolt page check), read-only, for Repair: the walk
	// then reads what it can (guarded: reads past the end fault into a
	// panic) and reports where it stopped.
	salvage bool
}

// Open opens (creating if needed) the state file at path for writing.
func Open(path string) (*Bolt, error) { return OpenWith(path, Options{}) }

// OpenWith opens the state file at path. A missing file is created (a
// first start); an empty or damaged one is an error wrapping ErrDamaged,
// never an empty state: restore would take every installed rule for an
// orphan. The file's pages are checked with bbolt's consistency check.
func OpenWith(path string, o Options) (*Bolt, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist) && !o.ReadOnly:
	case err != nil:
		return nil, fmt.Errorf("open state file %s: %w", path, err)
	case st.Size() == 0:
		return nil, fmt.Errorf("open state file %s: %w: file is empty (0 bytes); restore it from a backup, or remove it to start with no flows", path, ErrDamaged)
	}
	if err == nil && !o.salvage {
		if err := checkMetaPages(path); err != nil {
			return nil, err
		}
	}
	if err == nil {
		// Check an existing file read-only first: bbolt loads the
		// freelist when it opens a file for writing, and a panic there
		// leaks the mapping and so the file's lock.
		ro, err := openBolt(path, true, o.Log)
		if err != nil {
			return nil, err
		}
		if err := ro.verify(); err != nil && !o.salvage {
			ro.Close()
			return nil, err
		}
		if o.ReadOnly {
			return ro, nil
		}
		if err := ro.Close(); err != nil {
			return nil, fmt.Errorf("open state file %s: %w", path, err)
		}
	}
	b, err := openBolt(path, false, o.Log)
	if err != nil {
		return nil, err
	}
	if err := b.upgrade(); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

// openBolt opens the bbolt file. Errors that say the file is not a sound
// bbolt file wrap ErrDamaged.
func openBolt(path string, readOnly bool, log *slog.Logger) (*Bolt, error) {
	var file *os.File
	bo := &bolt.Options{Timeout: 2 * time.Second, ReadOnly: readOnly,
		OpenFile: func(name string, flag int, mode os.FileMode) (*os.File, error) {
			f, err := os.OpenFile(name, flag, mode)
			file = f
			return f, err
		}}
	var db *bolt.DB
	err := guard("open state file", path, func() error {
		var err error
		db, err = bolt.Open(path, 0o600, bo)
		return err
	})
	if err == nil {
		return &Bolt{db: db, path: path, log: log}, nil
	}
	if db == nil && file != nil {
		file.Close() // bbolt panicked holding it
	}
	var pe *fs.PathError
	switch {
	case errors.Is(err, ErrDamaged):
	case errors.Is(err, berrors.ErrTimeout):
		err = fmt.Errorf("open state file %s: locked by another process (a running offloadd?): %w", path, err)
	case errors.As(err, &pe):
		err = fmt.Errorf("open state file %s: %w", path, err)
	default: // bbolt's invalid, version mismatch, checksum, file size
		err = fmt.Errorf("open state file %s: %w: %w", path, ErrDamaged, err)
	}
	return nil, err
}

// verify checks that the file holds every page bbolt will read and runs
// bbolt's page consistency check.
func (b *Bolt) verify() error {
	st, err := os.Stat(b.path)
	if err != nil {
		return fmt.Errorf("check state file %s: %w", b.path, err)
	}
	return guard("check state file", b.path, func() error {
		return b.db.View(func(tx *bolt.Tx) error {
			if hwm := tx.Size(); st.Size() < hwm {
				return fmt.Errorf("check state file %s: %w: %d bytes, its pages need %d (truncated)", b.path, ErrDamaged, st.Size(), hwm)
			}
			var errs []error
			for err := range tx.Check() {
				if len(errs) < maxCheckErrors {
					errs = append(errs, err)
				}
			}
			if len(errs) > 0 {
				return fmt.Errorf("check state file %s: %w: %w", b.path, ErrDamaged, errors.Join(errs...))
			}
			return nil
		})
	})
}

// upgrade creates the buckets of a new file, and rewrites a schema 2
// file's records with checksums.
func (b *Bolt) upgrade() error {
	return guard("open state file", b.path, func() error {
		current := false
		b.db.View(func(tx *bolt.Tx) error {
			if meta := tx.Bucket(bucketMeta); meta != nil && tx.Bucket(bucketFlows) != nil {
				current = string(meta.Get(keyVersion)) == schemaVersion
			}
			return nil
		})
		if current {
			return nil // no write: an open leaves a current file as it is
		}
		return b.db.Update(func(tx *bolt.Tx) error {
			meta, err := tx.CreateBucketIfNotExists(bucketMeta)
			if err != nil {
				return fmt.Errorf("open state file %s: create meta bucket: %w", b.path, err)
			}
			ver := string(meta.Get(keyVersion))
			bk := tx.Bucket(bucketFlows)
			switch {
			case ver == schemaVersion:
				return nil
			case ver == "" && bk == nil: // a new file
				if bk, err = tx.CreateBucket(bucketFlows); err != nil {
					return fmt.Errorf("open state file %s: create flows bucket: %w", b.path, err)
				}
			case ver == schemaLegacy && bk != nil:
				if err := b.rewriteLegacy(bk); err != nil {
					return err
				}
			default:
				return fmt.Errorf("open state file %s: %w: schema version %q, this build reads %q and %q", b.path, ErrDamaged, ver, schemaLegacy, schemaVersion)
			}
			if err := meta.Put(keySummary, b.sum(bk).encode()); err != nil {
				return fmt.Errorf("open state file %s: put summary: %w", b.path, err)
			}
			if err := meta.Put(keyVersion, []byte(schemaVersion)); err != nil {
				return fmt.Errorf("open state file %s: put version: %w", b.path, err)
			}
			return nil
		})
	})
}

// rewriteLegacy re-encodes every schema 2 record with a checksum. A
// record that does not decode fails the open: it cannot be told apart
// from damage.
func (b *Bolt) rewriteLegacy(bk *bolt.Bucket) error {
	var recs []offload.StoredFlow
	err := bk.ForEach(func(k, v []byte) error {
		sf, _, err := decodeRecord(k, v, true)
		if err != nil {
			return fmt.Errorf("open state file %s: flow %q: %w", b.path, k, err)
		}
		b.log.Debug("state record without checksum accepted", "file", b.path, "flow", string(k))
		recs = append(recs, sf)
		return nil
	})
	if err != nil {
		return err
	}
	b.log.Warn("state records without checksums (written by an older release) accepted and rewritten with checksums",
		"file", b.path, "records", len(recs))
	buf := make([]byte, 0, 128)
	for _, sf := range recs {
		key := []byte(sf.Flow.ID)
		buf = appendRecord(buf[:0:0], key, sf.Generation, sf.Flow)
		if err := bk.Put(key, buf); err != nil {
			return fmt.Errorf("open state file %s: rewrite flow %s: %w", b.path, sf.Flow.ID, err)
		}
	}
	return nil
}

// sum computes the summary of bk's records.
func (b *Bolt) sum(bk *bolt.Bucket) summary {
	var s summary
	bk.ForEach(func(_, v []byte) error {
		s.count++
		s.xor ^= storedCRC(v)
		return nil
	})
	return s
}

// update runs fn in a write transaction, with the summary read before and
// written after it.
func (b *Bolt) update(op string, fn func(bk *bolt.Bucket, s *summary) error) error {
	return guard(op, b.path, func() error {
		return b.db.Update(func(tx *bolt.Tx) error {
			meta := tx.Bucket(bucketMeta)
			s, err := decodeSummary(meta.Get(keySummary))
			if err != nil {
				return err
			}
			bk := tx.Bucket(bucketFlows)
			bk.FillPercent = fillPercent
			if err := fn(bk, &s); err != nil {
				return err
			}
			return meta.Put(keySummary, s.encode())
		})
	})
}

// Save upserts flows in one transaction. A flow given twice is stored as
// its later version. An error (a full disk, say) leaves the file as it
// was: none of flows is stored.
func (b *Bolt) Save(flows []offload.StoredFlow) error {
	// Keys in order: bbolt then inserts near the previous key instead of
	// shifting a leaf's entries for every put.
	order := make([]int32, len(flows))
	size := 0
	for i, f := range flows {
		order[i] = int32(i)
		size += 2*len(f.Flow.ID) + recHdrSize + 10 + 64
	}
	slices.SortStableFunc(order, func(x, y int32) int { return strings.Compare(flows[x].Flow.ID, flows[y].Flow.ID) })
	err := b.update("save", func(bk *bolt.Bucket, s *summary) error {
		// bbolt keeps keys and values until the transaction ends: encode
		// them into one buffer. When append moves it, the slices already
		// handed over keep the old array alive and unchanged.
		buf := make([]byte, 0, size)
		for _, i := range order {
			f := flows[i]
			start := len(buf)
			buf = append(buf, f.Flow.ID...)
			key := buf[start:len(buf):len(buf)]
			start = len(buf)
			buf = appendRecord(buf, key, f.Generation, f.Flow)
			rec := buf[start:len(buf):len(buf)]
			if old := bk.Get(key); old != nil {
				s.count--
				s.xor ^= storedCRC(old)
			}
			if err := bk.Put(key, rec); err != nil {
				return fmt.Errorf("put flow %s: %w", f.Flow.ID, err)
			}
			s.count++
			s.xor ^= storedCRC(rec)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("save %d flows to %s: %w", len(flows), b.path, err)
	}
	return nil
}

// Delete removes flows by ID; unknown IDs are ignored.
func (b *Bolt) Delete(ids []string) error {
	err := b.update("delete", func(bk *bolt.Bucket, s *summary) error {
		for _, id := range ids {
			old := bk.Get([]byte(id))
			if old == nil {
				continue
			}
			s.count--
			s.xor ^= storedCRC(old)
			if err := bk.Delete([]byte(id)); err != nil {
				return fmt.Errorf("delete flow %s: %w", id, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete %d flows from %s: %w", len(ids), b.path, err)
	}
	return nil
}

// Load returns every stored flow, in ID order. Any damaged record, or
// records missing or extra against the file's summary, fail the load
// (wrapping ErrDamaged): a partial state would make restore delete the
// rules of the flows it lacks. `offloadd state repair` keeps the good ones.
func (b *Bolt) Load() ([]offload.StoredFlow, error) {
	rep, err := b.scan()
	if err != nil {
		return nil, fmt.Errorf("load state from %s: %w", b.path, err)
	}
	if len(rep.Damaged) > 0 {
		d := rep.Damaged[0]
		return nil, fmt.Errorf("load state from %s: flow %q: %w (%d damaged records; see offloadd state check)", b.path, d.Key, d.Err, len(rep.Damaged))
	}
	if rep.SummaryErr != nil {
		return nil, fmt.Errorf("load state from %s: %w", b.path, rep.SummaryErr)
	}
	return rep.Flows, nil
}

// Close closes the file.
func (b *Bolt) Close() error { return b.db.Close() }
