package store

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"testing"

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
