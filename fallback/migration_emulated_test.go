package fallback

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	ct "github.com/offloadd/offloadd/nic/emulated/datapath/conntrack"
	"github.com/offloadd/offloadd/offload"
	"github.com/offloadd/offloadd/offload/flow"
)

// TestEmulatedConnsCarryEstablishedConnections opens a TCP connection in one
// emulated table, moves it with Dump and Upsert, and checks that the other
// table admits its next segment as established, without a SYN.
func TestEmulatedConnsCarryEstablishedConnections(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	now := t0
	clock := func() time.Time { return now }
	client, server := netip.MustParseAddr("10.0.0.3"), netip.MustParseAddr("10.0.1.7")
	orig := ct.Tuple{Src: client, Dst: server, Proto: ct.ProtoTCP, SrcPort: 40000, DstPort: 80}
	seg := func(tu ct.Tuple, flags uint8) ct.Request {
		return ct.Request{Zone: 5, Packet: ct.Packet{Tuple: tu, TCPFlags: flags}, Commit: true, Mark: flow.Masked32{Value: 42, Mask: ^uint32(0)}, Offload: true}
	}
	src := ct.New(ct.DefaultTimeouts())
	for _, s := range []ct.Request{seg(orig, ct.TCPSyn), seg(orig.Reverse(), ct.TCPSyn|ct.TCPAck), seg(orig, ct.TCPAck)} {
		now = now.Add(time.Millisecond)
		src.Track(s, now)
	}
	udpTuple := ct.Tuple{Src: client, Dst: server, Proto: ct.ProtoUDP, SrcPort: 5353, DstPort: 53}
	src.Track(ct.Request{Zone: 9, Packet: ct.Packet{Tuple: udpTuple}, Commit: true}, now)

	from := NewEmulatedConns(src, clock)
	es, err := from.Dump(ctx, []uint16{5})
	require.NoError(t, err)
	require.Len(t, es, 1)
	e := es[0]
	assert.Equal(t, "zone 5 tcp 10.0.0.3:40000 > 10.0.1.7:80 ESTABLISHED", e.String())
	assert.Equal(t, ConnSeenReply|ConnAssured|ConnConfirmed, e.Status, "the offloaded bit stays behind")
	assert.Equal(t, uint32(42), e.Mark)
	assert.Equal(t, 5*24*time.Hour, e.Timeout)

	dstTable := ct.New(ct.DefaultTimeouts())
	to := NewEmulatedConns(dstTable, clock)
	prevs, err := to.Upsert(ctx, es)
	require.NoError(t, err)
	assert.Equal(t, []ConnPrev{{Done: true}}, prevs)
	res := dstTable.Track(ct.Request{Zone: 5, Packet: ct.Packet{Tuple: orig, TCPFlags: ct.TCPAck | ct.TCPPsh}}, now)
	assert.Equal(t, flow.CTTracked|flow.CTEstablished, res.State, res.Note)
	res = dstTable.Track(ct.Request{Zone: 5, Packet: ct.Packet{Tuple: orig.Reverse(), TCPFlags: ct.TCPAck}}, now)
	assert.Equal(t, flow.CTTracked|flow.CTEstablished|flow.CTReply, res.State, res.Note)
	assert.Equal(t, uint32(42), res.Mark)

	// An update reports what it replaced; a refused entry is not written.
	upd := e
	upd.Mark = 7
	bad := e
	bad.Orig.SrcPort, bad.Timeout = 1, 0
	prevs, err = to.Upsert(ctx, []ConnEntry{upd, bad})
	require.Error(t, err)
	assert.ErrorContains(t, err, "timeout must be positive")
	require.Len(t, prevs, 2)
	assert.True(t, prevs[0].Done && prevs[0].Existed)
	assert.Equal(t, uint32(42), prevs[0].Entry.Mark)
	assert.False(t, prevs[1].Done)

	require.NoError(t, to.Delete(ctx, []ConnKey{e.Key(), bad.Key()}))
	left, err := to.Dump(ctx, []uint16{5})
	require.NoError(t, err)
	assert.Empty(t, left)
}

// TestMigrationImportConntrackFailure checks that a failed conntrack import
// leaves the migration importable again and abortable.
func TestMigrationImportConntrackFailure(t *testing.T) {
	ctx := context.Background()
	src, dst := pair(t)
	_, err := dst.mig.Prepare(ctx, PrepareRequest{ID: "m1", SourcePort: "pf0vf3"})
	require.NoError(t, err)
	_, err = src.mig.Drain(ctx, DrainRequest{ID: "m1", Port: "pf0vf3"})
	require.NoError(t, err)
	b, err := src.mig.Export(ctx, ExportRequest{ID: "m1"})
	require.NoError(t, err)
	dst.conns.fail = assert.AnError
	_, err = dst.mig.Import(ctx, ImportRequest{ID: "m1", Bundle: b})
	require.ErrorIs(t, err, assert.AnError)
	m, err := dst.mig.Get("m1")
	require.NoError(t, err)
	assert.Equal(t, StepPrepared, m.Step)
	dst.conns.fail = nil
	imp, err := dst.mig.Import(ctx, ImportRequest{ID: "m1", Bundle: b})
	require.NoError(t, err)
	assert.Equal(t, 5, imp.Unchanged, "the flows were installed by the failed attempt")
	assert.Equal(t, 2, imp.ConnsCreated)
}

// TestMigrationCommitFailureIsFinishedNotUndone checks that once Commit has
// started removing the source's state, Abort refuses and Commit completes.
func TestMigrationCommitFailureIsFinishedNotUndone(t *testing.T) {
	ctx := context.Background()
	src, _ := pair(t)
	_, err := src.mig.Drain(ctx, DrainRequest{ID: "m1", Port: "pf0vf3"})
	require.NoError(t, err)
	_, err = src.mig.Export(ctx, ExportRequest{ID: "m1"})
	require.NoError(t, err)
	src.conns.fail = assert.AnError
	_, err = src.mig.Commit(ctx, "m1")
	require.ErrorIs(t, err, assert.AnError)
	_, err = src.mig.Abort(ctx, "m1")
	require.ErrorIs(t, err, ErrStep)
	assert.ErrorContains(t, err, "repeat Commit")
	src.conns.fail = nil
	res, err := src.mig.Commit(ctx, "m1")
	require.NoError(t, err)
	assert.Equal(t, CommitResult{FlowsRemoved: 5, ConnsRemoved: 2, VFReleased: true}, res)
	assert.Len(t, src.eng.List(offload.Filter{}), 1)
}
