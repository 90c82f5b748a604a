package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	emu := filepath.Join(dir, "emu.yaml")
	require.NoError(t, os.WriteFile(emu, []byte("profile: nfp-agilio-cx\nnumVFs: 4\nhwTableSize: 100\n"), 0o600))
	main := filepath.Join(dir, "offloadd.yaml")
	require.NoError(t, os.WriteFile(main, []byte("socket: /tmp/x.sock\nlogLevel: debug\nemulated: {profile: ice-e810}\n"), 0o600))

	tests := []struct {
		name  string
		args  []string
		check func(t *testing.T, cfgErr error, profile string, vfs, table int, sock, level string)
	}{
		{"defaults", nil, func(t *testing.T, err error, profile string, vfs, table int, sock, level string) {
			require.NoError(t, err)
			assert.Equal(t, "mlx5-cx6dx", profile)
			assert.Equal(t, 8, vfs)
			assert.Equal(t, "/run/offloadd/offloadd.sock", sock)
		}},
		{"config file", []string{"--config", main}, func(t *testing.T, err error, profile string, vfs, table int, sock, level string) {
			require.NoError(t, err)
			assert.Equal(t, "ice-e810", profile)
			assert.Equal(t, "/tmp/x.sock", sock)
			assert.Equal(t, "debug", level)
		}},
		{"emulated file over config, flags over both", []string{"--config", main, "--emulated-config", emu, "--emulated-num-vfs", "2", "--socket", "/tmp/y.sock"},
			func(t *testing.T, err error, profile string, vfs, table int, sock, level string) {
				require.NoError(t, err)
				assert.Equal(t, "nfp-agilio-cx", profile)
				assert.Equal(t, 2, vfs)
				assert.Equal(t, 100, table, "a flag not given keeps the file's value")
				assert.Equal(t, "/tmp/y.sock", sock)
			}},
		{"bad backend", []string{"--backend", "dpdk"}, func(t *testing.T, err error, _ string, _, _ int, _, _ string) {
			require.ErrorContains(t, err, `backend: "dpdk" is not emulated or linux`)
		}},
		{"bad emulated flag value", []string{"--emulated-eswitch-mode", "bridge"}, func(t *testing.T, err error, _ string, _, _ int, _, _ string) {
			require.ErrorContains(t, err, "eswitchMode")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parseConfig(tt.args)
			tt.check(t, err, cfg.Emulated.Profile, cfg.Emulated.NumVFs, cfg.Emulated.HWTableSize, cfg.Socket, cfg.LogLevel)
		})
	}
}
