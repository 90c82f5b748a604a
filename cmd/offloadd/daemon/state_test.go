package daemon

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/offloadd/offloadd/offload/store"
)

// TestDamagedStateFileStopsTheDaemon: an empty state file (as a crash
// during provisioning or a bad copy leaves) is not "no flows": the daemon
// refuses to start and says how to inspect and repair it. A state
// directory with no file is a first start.
func TestDamagedStateFileStopsTheDaemon(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.Socket = filepath.Join(dir, "offloadd.sock")
	cfg.StateDir = filepath.Join(dir, "state")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	d, err := New(cfg, log)
	require.NoError(t, err, "first start")
	d.Shutdown(t.Context())

	path := filepath.Join(cfg.StateDir, store.FileName)
	require.NoError(t, os.Truncate(path, 0))
	_, err = New(cfg, log)
	require.ErrorIs(t, err, store.ErrDamaged)
	require.ErrorContains(t, err, "offloadd state repair "+path)
}
