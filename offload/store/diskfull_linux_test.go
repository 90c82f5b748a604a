package store

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/offloadd/offloadd/offload"
)

// smallTmpfs mounts a tmpfs of size under a temporary directory and
// unmounts it when the test ends. It needs root.
func smallTmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
	dir := t.TempDir()
	require.NoError(t, syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size), "mount tmpfs on %s", dir)
	t.Cleanup(func() { require.NoError(t, syscall.Unmount(dir, 0)) })
	return dir
}

// TestPrivilegedSaveDiskFull fills a 2 MiB tmpfs under the state file:
// Save fails with ENOSPC and stores nothing of its batch, the records
// committed before are still there (in this process and after a reopen),
// and Save works again once space is freed.
func TestPrivilegedSaveDiskFull(t *testing.T) {
	dir := smallTmpfs(t, "2m")
	filler := filepath.Join(dir, "filler")
	require.NoError(t, os.WriteFile(filler, make([]byte, 1<<20), 0o600))
	path := filepath.Join(dir, "state.db")
	b, err := Open(path)
	require.NoError(t, err)

	all := testFlows(20000)
	var committed []offload.StoredFlow
	var saveErr error
	const batch = 200
	for i := 0; i+batch <= len(all); i += batch {
		if saveErr = b.Save(all[i : i+batch]); saveErr != nil {
			break
		}
		committed = all[:i+batch]
	}
	require.ErrorIs(t, saveErr, syscall.ENOSPC, "20000 flows do not fit in 1 MiB")
	require.ErrorContains(t, saveErr, fmt.Sprintf("save %d flows to %s", batch, path))
	require.NotEmpty(t, committed)
	t.Logf("disk full after %d flows: %v", len(committed), saveErr)

	got, err := b.Load()
	require.NoError(t, err, "the store reads after a failed save")
	requireSameFlows(t, committed, got)
	require.Error(t, b.Save(all[len(committed):len(committed)+batch]), "still full")
	require.NoError(t, b.Close())

	b, err = Open(path)
	require.NoError(t, err, "the file is sound after failed saves")
	got, err = b.Load()
	require.NoError(t, err)
	requireSameFlows(t, committed, got)

	require.NoError(t, os.Remove(filler))
	next := all[len(committed) : len(committed)+batch]
	require.NoError(t, b.Save(next), "space is back")
	got, err = b.Load()
	require.NoError(t, err)
	requireSameFlows(t, all[:len(committed)+batch], got)
	require.NoError(t, b.Close())
}
