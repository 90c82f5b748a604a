package store

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/offloadd/offloadd/offload"
	"github.com/offloadd/offloadd/offload/flow"
)

var (
	bucketFlows = []byte("flows")
	bucketMeta  = []byte("meta")
	keyVersion  = []byte("version")
)

// fillPercent packs pages fuller than bbolt's default of half: flows are
// mostly added, and IDs from one controller tend to share a prefix.
const fillPercent = 0.8

// schemaVersion is bumped when the record format changes incompatibly.
// Version 2 records: uvarint generation, then flow.AppendBinary.
const schemaVersion = "2"

// Bolt is an offload.Store in a bbolt file.
type Bolt struct {
	db *bolt.DB
}

var _ offload.Store = (*Bolt)(nil)

// Open opens (creating if needed) the state file at path.
func Open(path string) (*Bolt, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open state file %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		if v := meta.Get(keyVersion); v != nil && string(v) != schemaVersion {
			return fmt.Errorf("state schema version %q, this build reads %q", v, schemaVersion)
		}
		if err := meta.Put(keyVersion, []byte(schemaVersion)); err != nil {
			return err
		}
		_, err = tx.CreateBucketIfNotExists(bucketFlows)
		return err
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open state file %s: %w", path, err)
	}
	return &Bolt{db: db}, nil
}

// Save upserts flows in one transaction. A flow given twice is stored as
// its later version.
func (b *Bolt) Save(flows []offload.StoredFlow) error {
	// Keys in order: bbolt then inserts near the previous key instead of
	// shifting a leaf's entries for every put.
	order := make([]int32, len(flows))
	size := 0
	for i, f := range flows {
		order[i] = int32(i)
		size += 2*len(f.Flow.ID) + binary.MaxVarintLen64 + 64
	}
	slices.SortStableFunc(order, func(x, y int32) int { return strings.Compare(flows[x].Flow.ID, flows[y].Flow.ID) })
	err := b.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucketFlows)
		bk.FillPercent = fillPercent
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
			buf = flow.AppendBinary(binary.AppendUvarint(buf, f.Generation), f.Flow)
			if err := bk.Put(key, buf[start:len(buf):len(buf)]); err != nil {
				return fmt.Errorf("put flow %s: %w", f.Flow.ID, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("save %d flows: %w", len(flows), err)
	}
	return nil
}

// Delete removes flows by ID; unknown IDs are ignored.
func (b *Bolt) Delete(ids []string) error {
	err := b.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucketFlows)
		for _, id := range ids {
			if err := bk.Delete([]byte(id)); err != nil {
				return fmt.Errorf("delete flow %s: %w", id, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete %d flows: %w", len(ids), err)
	}
	return nil
}

// Load returns every stored flow, in ID order.
func (b *Bolt) Load() ([]offload.StoredFlow, error) {
	var out []offload.StoredFlow
	err := b.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketFlows).ForEach(func(k, v []byte) error {
			gen, n := binary.Uvarint(v)
			if n <= 0 {
				return fmt.Errorf("decode flow %s: bad generation", k)
			}
			f, err := flow.DecodeBinary(v[n:])
			if err != nil {
				return fmt.Errorf("decode flow %s: %w", k, err)
			}
			if f.ID != string(k) {
				return fmt.Errorf("decode flow %s: record names flow %s", k, f.ID)
			}
			out = append(out, offload.StoredFlow{Flow: f, Generation: gen})
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("load state: %w", err)
	}
	return out, nil
}

// Close closes the file.
func (b *Bolt) Close() error { return b.db.Close() }
