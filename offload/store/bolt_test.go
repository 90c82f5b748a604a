package store

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offloadd/offloadd/offload"
	"github.com/offloadd/offloadd/offload/flow"
)

func TestBoltRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	b, err := Open(path)
	require.NoError(t, err)
	f1 := &flow.Flow{ID: "acl-1", Port: "pf0vf0", Priority: 10,
		Match: flow.Match{EthType: flow.EthTypeIPv4, IPDst: netip.MustParsePrefix("10.0.0.0/24"),
			IPProto: flow.ProtoTCP, DstPort: flow.Masked16{Value: 22, Mask: 0xffff}, VLANID: flow.Some[uint16](7)},
		Actions: []flow.Action{{Kind: flow.ActTunnelEncap, Encap: &flow.TunnelEncap{VNI: 42,
			Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr("192.0.2.2")}},
			{Kind: flow.ActRedirect, Port: "vxlan0"}}}
	f2 := &flow.Flow{ID: "drop", Port: "p0", Priority: 1, Actions: []flow.Action{{Kind: flow.ActDrop}}}
	require.NoError(t, b.Save([]offload.StoredFlow{{Flow: f1, Generation: 3}, {Flow: f2, Generation: 1}}))
	require.NoError(t, b.Delete([]string{"drop", "missing"}))
	require.NoError(t, b.Close())

	b, err = Open(path)
	require.NoError(t, err)
	defer b.Close()
	got, err := b.Load()
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, uint64(3), got[0].Generation)
	require.True(t, got[0].Flow.Equal(f1), "loaded %+v", got[0].Flow)
}

// TestBoltSaveBatch saves many flows in one call, out of key order and
// with repeats: every flow is stored once, as its last version.
func TestBoltSaveBatch(t *testing.T) {
	b, err := Open(filepath.Join(t.TempDir(), "state.db"))
	require.NoError(t, err)
	defer b.Close()
	var batch []offload.StoredFlow
	want := map[string]uint64{}
	for i := range 3000 {
		id := fmt.Sprintf("%s-%05d", []string{"encap", "acl", "vlan"}[i%3], (i*7919)%3000)
		if i%10 == 0 {
			id = "shared" // saved 300 times: the last generation wins
		}
		gen := uint64(i + 1)
		batch = append(batch, offload.StoredFlow{Generation: gen,
			Flow: &flow.Flow{ID: id, Port: "pf0vf0", Priority: uint16(i%100 + 1), Actions: []flow.Action{{Kind: flow.ActDrop}}}})
		want[id] = gen
	}
	require.NoError(t, b.Save(batch))
	got, err := b.Load()
	require.NoError(t, err)
	require.Len(t, got, len(want))
	for i, sf := range got {
		require.Equal(t, want[sf.Flow.ID], sf.Generation, sf.Flow.ID)
		if i > 0 {
			require.Less(t, got[i-1].Flow.ID, sf.Flow.ID, "Load returns ID order")
		}
	}
}

// requireSameFlows fails unless got holds exactly want's flows and
// generations (in ID order, as Load returns them).
func requireSameFlows(t *testing.T, want, got []offload.StoredFlow) {
	t.Helper()
	require.Equal(t, len(want), len(got), "flow count")
	byID := make(map[string]offload.StoredFlow, len(want))
	for _, sf := range want {
		byID[sf.Flow.ID] = sf
	}
	for _, sf := range got {
		w, ok := byID[sf.Flow.ID]
		require.True(t, ok, "unexpected flow %s", sf.Flow.ID)
		require.Equal(t, w.Generation, sf.Generation, sf.Flow.ID)
		require.True(t, w.Flow.Equal(sf.Flow), "flow %s: want %+v, got %+v", sf.Flow.ID, w.Flow, sf.Flow)
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(dst, b, 0o600))
}

// TestBoltReadsSchema2 opens a file written by the release before record
// checksums (testdata/state-v2.db, testFlows(300)): a check reads it as
// it is, an open for writing accepts its records with a log line and
// rewrites them with checksums.
func TestBoltReadsSchema2(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	copyFile(t, "testdata/state-v2.db", path)
	want := testFlows(300)

	rep, err := Check(path)
	require.NoError(t, err)
	require.True(t, rep.OK())
	assert.Equal(t, 300, rep.Legacy)
	requireSameFlows(t, want, rep.Flows)

	var logs bytes.Buffer
	b, err := OpenWith(path, Options{Log: slog.New(slog.NewTextHandler(&logs, nil))})
	require.NoError(t, err)
	assert.Contains(t, logs.String(), "without checksums")
	assert.Contains(t, logs.String(), "records=300")
	got, err := b.Load()
	require.NoError(t, err)
	requireSameFlows(t, want, got)
	require.NoError(t, b.Close())

	rep, err = Check(path)
	require.NoError(t, err)
	require.True(t, rep.OK())
	assert.Zero(t, rep.Legacy, "rewritten with checksums")
	requireSameFlows(t, want, rep.Flows)
}

// TestBoltEmptyFile: no file is a first start with no flows; an empty
// file is damage, never "no flows".
func TestBoltEmptyFile(t *testing.T) {
	dir := t.TempDir()
	b, err := Open(filepath.Join(dir, "new.db"))
	require.NoError(t, err)
	got, err := b.Load()
	require.NoError(t, err)
	assert.Empty(t, got)
	require.NoError(t, b.Close())

	empty := filepath.Join(dir, "empty.db")
	require.NoError(t, os.WriteFile(empty, nil, 0o600))
	_, err = Open(empty)
	require.ErrorIs(t, err, ErrDamaged)
	require.ErrorContains(t, err, "0 bytes")
	_, err = Check(empty)
	require.ErrorIs(t, err, ErrDamaged)
	st, err := os.Stat(empty)
	require.NoError(t, err)
	assert.Zero(t, st.Size(), "an open that fails leaves the file alone")
}

// writeState writes a state file whose last transactions update and
// delete flows, so it has freed pages and superseded records; it returns
// the flows it holds.
func writeState(t *testing.T, path string, n int) []offload.StoredFlow {
	t.Helper()
	b, err := Open(path)
	require.NoError(t, err)
	fl := testFlows(n)
	require.NoError(t, b.Save(fl[:n/2]))
	require.NoError(t, b.Save(fl[n/2:]))
	var del []string
	for i := 0; i < n; i += 10 {
		del = append(del, fl[i].Flow.ID)
	}
	require.NoError(t, b.Delete(del))
	var upd []offload.StoredFlow
	for i := 1; i < n; i += 10 {
		fl[i].Generation += 10
		upd = append(upd, fl[i])
	}
	require.NoError(t, b.Save(upd))
	require.NoError(t, b.Close())
	var want []offload.StoredFlow
	for i, sf := range fl {
		if i%10 != 0 {
			want = append(want, sf)
		}
	}
	return want
}

// TestBoltRecordDamage flips a byte inside one record: the checksum
// catches it, Load fails naming the flow, check lists it, and repair
// keeps every other flow and the original file.
func TestBoltRecordDamage(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.db")
	want := writeState(t, path, 300)
	victim := want[17]
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	rec := appendRecord(nil, []byte(victim.Flow.ID), victim.Generation, victim.Flow)
	// Copy-on-write leaves stale copies in free pages: damage them all.
	copies := 0
	for off := 0; ; {
		at := bytes.Index(data[off:], rec)
		if at < 0 {
			break
		}
		data[off+at+len(rec)-4] ^= 0x10
		off += at + len(rec)
		copies++
	}
	require.Positive(t, copies, "record of %s in the file", victim.Flow.ID)
	require.NoError(t, os.WriteFile(path, data, 0o600))

	b, err := Open(path)
	require.NoError(t, err, "the pages are sound")
	_, err = b.Load()
	require.ErrorIs(t, err, ErrDamaged)
	require.ErrorContains(t, err, victim.Flow.ID)
	require.NoError(t, b.Close())

	rep, err := Check(dir)
	require.NoError(t, err)
	require.Len(t, rep.Damaged, 1)
	assert.Equal(t, victim.Flow.ID, rep.Damaged[0].Key)
	assert.ErrorContains(t, rep.Damaged[0].Err, "checksum")
	assert.Len(t, rep.Flows, len(want)-1)

	now := time.Date(2026, 12, 3, 20, 0, 0, 0, time.UTC)
	res, err := Repair(path, now)
	require.NoError(t, err)
	assert.Equal(t, len(want)-1, res.Kept)
	require.Len(t, res.Dropped, 1)
	assert.Equal(t, victim.Flow.ID, res.Dropped[0].Key)
	assert.Equal(t, path+".damaged-20261203T200000Z", res.Original)
	orig, err := os.ReadFile(res.Original)
	require.NoError(t, err)
	assert.Equal(t, data, orig, "the original is kept as it was")

	b, err = Open(path)
	require.NoError(t, err)
	defer b.Close()
	got, err := b.Load()
	require.NoError(t, err)
	requireSameFlows(t, slices.Delete(slices.Clone(want), 17, 18), got)
}

// TestBoltBackup copies a state file and the copy loads the same flows.
func TestBoltBackup(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "state.db")
	want := writeState(t, src, 100)
	dst := filepath.Join(dir, "backup.db")
	rep, err := Backup(dir, dst)
	require.NoError(t, err)
	requireSameFlows(t, want, rep.Flows)
	b, err := Open(dst)
	require.NoError(t, err)
	defer b.Close()
	got, err := b.Load()
	require.NoError(t, err)
	requireSameFlows(t, want, got)
}
