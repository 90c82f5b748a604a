package vfmgr

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFileStore(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "allocations.json")
	s := NewFileStore(path)
	got, err := s.Load()
	require.NoError(t, err)
	assert.Empty(t, got, "a missing file is an empty store")

	allocs := []Allocation{
		{Owner: "vm-b", Pool: "intel.com/x", PF: "p0", PFPCI: mlxPF, VF: 1, VFPCI: "0000:08:00.3",
			Settings: VFSettings{MAC: "02:00:00:00:00:02", Trust: Bool(true)}, Driver: "vfio-pci",
			Original: VFState{MAC: "00:00:00:00:00:00", SpoofChk: true, LinkState: LinkAuto}, OriginalDriver: "mlx5_core"},
		{Owner: "vm-a", Pool: "intel.com/x", PF: "p0", PFPCI: mlxPF, VF: 0, VFPCI: "0000:08:00.2"},
	}
	require.NoError(t, s.Save(allocs))
	got, err = s.Load()
	require.NoError(t, err)
	assert.Equal(t, []Allocation{allocs[1], allocs[0]}, got, "saved sorted by owner")

	require.NoError(t, s.Save(nil))
	got, err = s.Load()
	require.NoError(t, err)
	assert.Empty(t, got)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no temporary files left behind")

	require.NoError(t, os.WriteFile(path, []byte(`{"version":2,"allocations":[]}`), 0o600))
	_, err = s.Load()
	assert.ErrorIs(t, err, ErrInvalid)
	require.NoError(t, os.WriteFile(path, []byte(`{`), 0o600))
	_, err = s.Load()
	assert.ErrorContains(t, err, "load allocations from "+path)

	err = NewFileStore(filepath.Join(dir, "missing", "a.json")).Save(allocs)
	assert.ErrorContains(t, err, "save allocations to")
}
