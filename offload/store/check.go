package store

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/offloadd/offloadd/offload"
)

// FileName is the state file's name in a state directory.
const FileName = "state.db"

// Damaged is a record that fails its checks.
type Damaged struct {
	Key string
	Err error
}

// Report is what a scan of the flows found.
type Report struct {
	// Flows are the good records, in ID order.
	Flows []offload.StoredFlow
	// Legacy counts good records without a checksum (schema 2).
	Legacy int
	// Damaged are the records that fail their checks.
	Damaged []Damaged
	// SummaryErr says the records found disagree with the file's
	// summary: records are missing or extra, or the summary is damaged.
	SummaryErr error
}

// OK reports whether the scan found no damage.
func (r *Report) OK() bool { return len(r.Damaged) == 0 && r.SummaryErr == nil }

// scan reads every record. On an error (a page bbolt cannot read) the
// report holds what was read before it.
func (b *Bolt) scan() (*Report, error) {
	rep := &Report{}
	err := guard("read state file", b.path, func() error {
		return b.db.View(func(tx *bolt.Tx) error {
			meta, bk := tx.Bucket(bucketMeta), tx.Bucket(bucketFlows)
			if meta == nil || bk == nil {
				return fmt.Errorf("%w: no %s or %s bucket", ErrDamaged, bucketMeta, bucketFlows)
			}
			ver := string(meta.Get(keyVersion))
			if ver != schemaVersion && ver != schemaLegacy {
				return fmt.Errorf("%w: schema version %q, this build reads %q and %q", ErrDamaged, ver, schemaLegacy, schemaVersion)
			}
			var got summary
			err := bk.ForEach(func(k, v []byte) error {
				got.count++
				got.xor ^= storedCRC(v)
				sf, legacy, err := decodeRecord(k, v, ver == schemaLegacy)
				if err != nil {
					rep.Damaged = append(rep.Damaged, Damaged{Key: string(k), Err: err})
					return nil
				}
				if legacy {
					rep.Legacy++
				}
				rep.Flows = append(rep.Flows, sf)
				return nil
			})
			if err != nil || ver == schemaLegacy {
				return err
			}
			want, err := decodeSummary(meta.Get(keySummary))
			switch {
			case err != nil:
				rep.SummaryErr = err
			case want != got:
				rep.SummaryErr = fmt.Errorf("%w: %d records (checksum XOR 0x%08x), the file's summary says %d (0x%08x): records are missing or extra",
					ErrDamaged, got.count, got.xor, want.count, want.xor)
			}
			return nil
		})
	})
	return rep, err
}

// statePath returns the state file of a state directory, or path itself.
func statePath(path string) string {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return filepath.Join(path, FileName)
	}
	return path
}

// Check reads the state file (or the state file in a state directory)
// without writing it. The error says the file cannot be read at all;
// damaged records are in the report.
// Run it with the daemon stopped: the daemon holds the file's lock.
func Check(path string) (*Report, error) {
	path = statePath(path)
	b, err := OpenWith(path, Options{ReadOnly: true, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, err
	}
	defer b.Close()
	return b.scan()
}

// Backup writes a consistent copy of the state file src to dst (a file,
// or a directory to put state.db in) from one read transaction, syncs it,
// and checks the copy. It refuses a damaged src.
func Backup(src, dst string) (*Report, error) {
	src = statePath(src)
	dst = statePath(dst)
	b, err := OpenWith(src, Options{ReadOnly: true, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, err
	}
	defer b.Close()
	rep, err := b.scan()
	if err != nil {
		return nil, fmt.Errorf("back up %s: %w", src, err)
	}
	if !rep.OK() {
		return rep, fmt.Errorf("back up %s: %w: %d damaged records; run offloadd state repair", src, ErrDamaged, len(rep.Damaged))
	}
	tmp := dst + ".tmp"
	err = guard("back up state file", src, func() error {
		return b.db.View(func(tx *bolt.Tx) error { return writeFile(tmp, tx) })
	})
	if err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("back up %s to %s: %w", src, dst, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("back up %s to %s: %w", src, dst, err)
	}
	cp, err := Check(dst)
	if err != nil {
		return nil, fmt.Errorf("back up %s: check the copy: %w", src, err)
	}
	if !cp.OK() || len(cp.Flows) != len(rep.Flows) {
		return cp, fmt.Errorf("back up %s: the copy %s: %w", src, dst, ErrDamaged)
	}
	return cp, nil
}

// writeFile writes the transaction's view of the file to path, synced.
func writeFile(path string, tx *bolt.Tx) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := tx.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// RepairResult says what Repair kept and dropped.
type RepairResult struct {
	Kept    int
	Dropped []Damaged
	// Unread says the walk stopped at an unreadable page: records after
	// the last one listed may be lost without their keys being known.
	Unread error
	// SummaryErr is the summary mismatch of the damaged file, if any.
	SummaryErr error
	// Original is where the damaged file was moved; empty when the file
	// was sound and left as it was.
	Original string
}

// Repair replaces the state file at path with a new one holding its good
// records, and keeps the original as path.damaged-<UTC time>. A sound
// file is left as it is. A file bbolt cannot open at all is not repaired
// (restore it from a backup).
func Repair(path string, now time.Time) (*RepairResult, error) {
	path = statePath(path)
	if rep, err := Check(path); err == nil && rep.OK() {
		return &RepairResult{Kept: len(rep.Flows)}, nil // sound: left as it is
	}
	b, err := OpenWith(path, Options{ReadOnly: true, salvage: true, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, fmt.Errorf("repair %s: %w", path, err)
	}
	rep, walkErr := b.scan()
	b.Close()
	res := &RepairResult{Kept: len(rep.Flows), Dropped: rep.Damaged, Unread: walkErr, SummaryErr: rep.SummaryErr}
	tmp := path + ".repair"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("repair %s: %w", path, err)
	}
	nb, err := OpenWith(tmp, Options{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, fmt.Errorf("repair %s: %w", path, err)
	}
	if len(rep.Flows) > 0 {
		err = nb.Save(rep.Flows)
	}
	if cerr := nb.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("repair %s: write %s: %w", path, tmp, err)
	}
	res.Original = fmt.Sprintf("%s.damaged-%s", path, now.UTC().Format("20060102T150405Z"))
	if err := os.Rename(path, res.Original); err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("repair %s: keep the original: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, fmt.Errorf("repair %s: %w (the original is %s, the repaired file %s)", path, err, res.Original, tmp)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return res, nil
}
