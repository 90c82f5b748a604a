package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offloadd/offloadd/offload"
	"github.com/offloadd/offloadd/offload/flow"
	"github.com/offloadd/offloadd/offload/store"
)

// TestStateCommands runs offloadd state check, backup and repair on a
// state directory whose file has one damaged record.
func TestStateCommands(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, store.FileName)
	st, err := store.Open(path)
	require.NoError(t, err)
	var flows []offload.StoredFlow
	for i := range 50 {
		flows = append(flows, offload.StoredFlow{Generation: 1, Flow: &flow.Flow{ID: fmt.Sprintf("acl-%02d", i),
			Port: fmt.Sprintf("port-of-acl-%02d", i), Priority: 1, Actions: []flow.Action{{Kind: flow.ActDrop}}}})
	}
	require.NoError(t, st.Save(flows))
	require.NoError(t, st.Close())

	var out bytes.Buffer
	require.NoError(t, runState([]string{"check", dir}, &out))
	assert.Contains(t, out.String(), "50 records ok (0 without checksum, from an older release), 0 damaged")

	out.Reset()
	require.NoError(t, runState([]string{"repair", dir}, &out))
	assert.Contains(t, out.String(), "50 records ok, nothing to repair")
	kept, err := filepath.Glob(path + ".damaged-*")
	require.NoError(t, err)
	assert.Empty(t, kept, "a sound file is left alone")

	backup := filepath.Join(t.TempDir(), "backup.db")
	out.Reset()
	require.NoError(t, runState([]string{"backup", dir, backup}, &out))
	assert.Equal(t, fmt.Sprintf("backed up 50 flows from %s to %s\n", dir, backup), out.String())

	// Damage the record of acl-07: its port name is only in its record.
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	port := []byte("port-of-acl-07")
	require.True(t, bytes.Contains(data, port))
	data = bytes.ReplaceAll(data, port, []byte("port-of-acl-17"))
	require.NoError(t, os.WriteFile(path, data, 0o600))

	out.Reset()
	err = runState([]string{"check", path}, &out)
	require.ErrorIs(t, err, errDamaged)
	assert.Contains(t, out.String(), "49 records ok")
	assert.Contains(t, out.String(), `damaged flow "acl-07": state damaged: checksum`)
	require.Error(t, runState([]string{"backup", path, backup + "2"}, &out), "no backup of a damaged file")

	out.Reset()
	require.NoError(t, runState([]string{"repair", path}, &out))
	assert.Contains(t, out.String(), "kept 49 records, dropped 1")
	assert.Contains(t, out.String(), `damaged flow "acl-07"`)
	kept, err = filepath.Glob(path + ".damaged-*")
	require.NoError(t, err)
	require.Len(t, kept, 1)
	assert.Contains(t, out.String(), "the original is kept as "+kept[0])

	out.Reset()
	require.NoError(t, runState([]string{"check", dir}, &out))
	assert.Contains(t, out.String(), "49 records ok")

	require.ErrorContains(t, runState([]string{"frobnicate", dir}, &out), "usage")
	require.ErrorContains(t, runState([]string{"backup", dir}, &out), "usage")
}

// TestHelpShowsStateCommands: offloadd --help lists the subcommands and
// the daemon's flags.
func TestHelpShowsStateCommands(t *testing.T) {
	var out bytes.Buffer
	_, err := parseConfigOut([]string{"--help"}, &out)
	require.ErrorIs(t, err, pflag.ErrHelp)
	assert.Contains(t, out.String(), "offloadd state check DIR|FILE")
	assert.Contains(t, out.String(), "offloadd state backup SRC DST")
	assert.Contains(t, out.String(), "offloadd state repair")
	assert.Contains(t, out.String(), "--state-dir")
}
