package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offloadd/offloadd/offload"
	"github.com/offloadd/offloadd/offload/flow"
)

// damage is one way to break a state file.
type damage struct {
	name  string
	apply func(good []byte) []byte
}

func truncateTo(n int) func([]byte) []byte {
	return func(b []byte) []byte { return b[:min(n, len(b))] }
}

func zeroAt(off, n int) func([]byte) []byte {
	return func(b []byte) []byte {
		clear(b[min(off, len(b)):min(off+n, len(b))])
		return b
	}
}

func flipAt(off, n int) func([]byte) []byte {
	return func(b []byte) []byte {
		for i := off; i < off+n && i < len(b); i++ {
			b[i] ^= 0xff
		}
		return b
	}
}

// corpus builds the damaged variants of good: truncations, zeroed 4 KiB
// and 64 KiB ranges, 1- and 3-byte flips across the file, in the meta
// pages and inside records, an empty file, garbage and a wrong magic.
func corpus(good []byte, recordOffsets []int) []damage {
	size := len(good)
	var ds []damage
	add := func(name string, f func([]byte) []byte) { ds = append(ds, damage{name, f}) }
	add("empty", truncateTo(0))
	for _, n := range []int{100, 4095, 4096, 8191, 8192, 12288, size / 4, size/2 + 1000, size / 2, 3 * size / 4, size - 4096, size - 1} {
		add(fmt.Sprintf("truncate to %d", n), truncateTo(n))
	}
	for off := 0; off < size; off += 4096 * 3 {
		add(fmt.Sprintf("zero 4KiB at %d", off), zeroAt(off, 4096))
	}
	for off := 0; off < size; off += 32 * 1024 {
		add(fmt.Sprintf("zero 64KiB at %d", off), zeroAt(off, 64*1024))
	}
	// Meta pages: every field of both.
	for _, page := range []int{0, 4096} {
		for _, f := range []int{0, 8, 12, 16, 20, 32, 40, 48, 56, 64, 72} {
			add(fmt.Sprintf("flip 1 byte at %d (meta page %d +%d)", page+f, page/4096, f), flipAt(page+f, 1))
		}
	}
	rng := rand.New(rand.NewPCG(13, 41))
	for off := 8192; off < size; off += 1531 {
		add(fmt.Sprintf("flip 1 byte at %d", off), flipAt(off, 1))
	}
	for range 60 {
		off := rng.IntN(size - 3)
		add(fmt.Sprintf("flip 3 bytes at %d", off), flipAt(off, 3))
	}
	for i, off := range recordOffsets {
		add(fmt.Sprintf("flip 1 byte in record %d at %d", i, off), flipAt(off, 1))
		add(fmt.Sprintf("flip 3 bytes in record %d at %d", i, off+5), flipAt(off+5, 3))
	}
	add("garbage", func(b []byte) []byte {
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	})
	add("short garbage", func([]byte) []byte { return []byte("this is not a bbolt file\n") })
	add("wrong magic", func(b []byte) []byte {
		binary.LittleEndian.PutUint32(b[metaOffset:], 0xdeadbeef)
		binary.LittleEndian.PutUint32(b[4096+metaOffset:], 0xdeadbeef)
		return b
	})
	return ds
}

// outcome of opening and loading one damaged file.
type outcome int

const (
	refusedOpen outcome = iota
	refusedLoad
	identical
	changed
)

// openAndLoad opens and loads path; a panic escaping the store fails the
// test.
func openAndLoad(t *testing.T, path string, want []offload.StoredFlow) (out outcome, err error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("%s: panic: %v", path, r)
		}
	}()
	b, err := Open(path)
	if err != nil {
		return refusedOpen, err
	}
	defer b.Close()
	got, err := b.Load()
	if err != nil {
		return refusedLoad, err
	}
	if len(got) != len(want) {
		return changed, fmt.Errorf("%d flows, want %d", len(got), len(want))
	}
	byID := make(map[string]offload.StoredFlow, len(want))
	for _, sf := range want {
		byID[sf.Flow.ID] = sf
	}
	for _, sf := range got {
		w, ok := byID[sf.Flow.ID]
		if !ok || sf.Generation != w.Generation || !sf.Flow.Equal(w.Flow) {
			return changed, fmt.Errorf("flow %s changed", sf.Flow.ID)
		}
	}
	return identical, nil
}

// TestDamagedStateCorpus damages a good file of 300 flows in a few
// hundred ways. Each variant is refused (by Open or Load, with
// ErrDamaged unless the file is not a state file at all) or loads exactly
// the original flows: no panic, no silent change.
func TestDamagedStateCorpus(t *testing.T) {
	dir := t.TempDir()
	goodPath := filepath.Join(dir, "good.db")
	want := writeState(t, goodPath, 300)
	good, err := os.ReadFile(goodPath)
	require.NoError(t, err)
	var recs []int
	for i := 0; i < len(want); i += 23 {
		sf := want[i]
		if at := indexRecord(good, sf); at >= 0 {
			recs = append(recs, at+recHdrSize+3)
		}
	}
	require.NotEmpty(t, recs)

	ds := corpus(good, recs)
	require.GreaterOrEqual(t, len(ds), 41)
	counts := map[outcome]int{}
	reasons := map[string]int{}
	repaired, keptTotal := 0, 0
	// Every version of every flow the file ever held: a repaired file
	// may hold the transaction before the last (a damaged meta page), but
	// never a flow it was not given.
	versions := map[string]bool{}
	for _, sf := range append(testFlows(300), want...) {
		versions[flowKey(sf)] = true
	}
	checkRefused := 0
	for i, d := range ds {
		path := filepath.Join(dir, fmt.Sprintf("v%03d.db", i))
		require.NoError(t, os.WriteFile(path, d.apply(append([]byte(nil), good...)), 0o600))
		out, err := openAndLoad(t, path, want)
		if out == refusedOpen || out == refusedLoad {
			reasons[reason(err)]++
		}
		counts[out]++
		if out == changed {
			t.Errorf("%s: silent change: %v", d.name, err)
			continue
		}
		if out != identical {
			require.ErrorIs(t, err, ErrDamaged, d.name)
		}
		// offloadd state check agrees: it fails or reports damage exactly
		// when the load was refused.
		rep, cerr := Check(path)
		bad := cerr != nil || !rep.OK()
		if out == identical {
			require.False(t, bad, "%s: check reports damage on a file that loads: %v", d.name, cerr)
		} else {
			require.True(t, bad, "%s: check passes a file that does not load (%v)", d.name, err)
			checkRefused++
			kept, ok := repairAndLoad(t, path, d.name, versions)
			if ok {
				repaired++
				keptTotal += kept
			}
		}
		os.Remove(path)
	}
	t.Logf("offloadd state repair: %d of %d refused files repaired, keeping %d of their %d flows; the rest need a backup",
		repaired, checkRefused, keptTotal, repaired*len(want))
	t.Logf("damaged variants: %d; refused at open: %d, refused at load: %d, loaded identical: %d, silently changed: %d; state check flagged %d",
		len(ds), counts[refusedOpen], counts[refusedLoad], counts[identical], counts[changed], checkRefused)
	t.Logf("refused because: %v", reasons)
	require.Zero(t, counts[changed])
}

// reason names the check that refused a file, for the figures in
// docs/reliability.md.
func reason(err error) string {
	for _, r := range []struct{ substr, name string }{
		{"0 bytes", "empty file"},
		{"meta page", "meta page checksum"},
		{"truncated", "shorter than its pages"},
		{"bbolt:", "bbolt panic recovered"},
		{"file size too small", "shorter than its pages"},
		{"records are missing", "record count/summary"},
		{"summary", "record count/summary"},
		{"checksum 0x", "record checksum"},
		{"without checksum", "record checksum"},
		{"check state file", "bbolt page check"},
	} {
		if strings.Contains(err.Error(), r.substr) {
			return r.name
		}
	}
	return "other: " + err.Error()
}

// indexRecord returns the offset of the last copy of sf's record in file
// (others may be stale copies in free pages), or -1.
func indexRecord(file []byte, sf offload.StoredFlow) int {
	rec := appendRecord(nil, []byte(sf.Flow.ID), sf.Generation, sf.Flow)
	last := -1
	for off := 0; ; {
		at := bytes.Index(file[off:], rec)
		if at < 0 {
			return last
		}
		last = off + at
		off += at + 1
	}
}

// TestOpenRecoversBboltPanic: bbolt panics loading the freelist of this
// truncated file when it opens it for writing (the daemon crashed on it).
// The store turns that into an error; Open never gets there because it
// checks the file read-only first.
func TestOpenRecoversBboltPanic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.db")
	writeState(t, path, 300)
	require.NoError(t, os.Truncate(path, 12288))
	other := filepath.Join(dir, "copy.db")
	copyFile(t, path, other)
	_, err := openBolt(path, false, nil)
	require.ErrorIs(t, err, ErrDamaged)
	require.ErrorContains(t, err, "bbolt: invalid freelist page")
	// That panic leaks bbolt's mapping, and with it the lock: open a copy.
	_, err = Open(other)
	require.ErrorIs(t, err, ErrDamaged)
	require.NotContains(t, err.Error(), "bbolt:")
}

func flowKey(sf offload.StoredFlow) string {
	return fmt.Sprintf("%s %d %x", sf.Flow.ID, sf.Generation, flow.AppendBinary(nil, sf.Flow))
}

// repairAndLoad runs Repair on a copy of a refused file: it fails, or the
// result opens and loads cleanly with flows that were all given to the
// file once. It returns the flows kept.
func repairAndLoad(t *testing.T, path, name string, versions map[string]bool) (int, bool) {
	t.Helper()
	cp := path + ".repair-test"
	copyFile(t, path, cp)
	defer func() {
		matches, _ := filepath.Glob(cp + "*")
		for _, m := range matches {
			os.Remove(m)
		}
	}()
	res, err := Repair(cp, time.Unix(0, 0))
	if err != nil {
		return 0, false
	}
	b, err := Open(cp)
	require.NoError(t, err, "%s: the repaired file opens", name)
	defer b.Close()
	got, err := b.Load()
	require.NoError(t, err, "%s: the repaired file loads", name)
	require.Len(t, got, res.Kept, name)
	for _, sf := range got {
		require.True(t, versions[flowKey(sf)], "%s: repair produced flow %s that was never saved", name, sf.Flow.ID)
	}
	return len(got), true
}
