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

// TestParseConfigSecurity: --tcp needs TLS or an explicit --insecure-tcp;
// the security flags land in the config over the file's values.
func TestParseConfigSecurity(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "offloadd.yaml")
	require.NoError(t, os.WriteFile(file, []byte(`
tls: {cert: /etc/a.crt, key: /etc/a.key, clientCA: /etc/ca.crt}
policy:
- {identity: "spiffe://example.org/ctl", roles: [operator], idPrefixes: [tenant-a-]}
peers:
- {name: node-b, address: "10.0.0.2:50051", identity: "dns:node-b.example.org"}
`), 0o600))

	_, err := parseConfig([]string{"--tcp", "0.0.0.0:50051"})
	require.ErrorContains(t, err, "needs tls")
	cfg, err := parseConfig([]string{"--tcp", "127.0.0.1:0", "--insecure-tcp"})
	require.NoError(t, err)
	assert.True(t, cfg.InsecureTCP)
	assert.False(t, cfg.TCPHealth, "health off on TCP by default")
	assert.False(t, cfg.TCPReflection, "reflection off on TCP by default")

	cfg, err = parseConfig([]string{"--config", file, "--tcp", "127.0.0.1:0", "--tls-cert", "/x.crt", "--tcp-reflection", "--tcp-health",
		"--metrics", "127.0.0.1:0", "--metrics-tls", "--audit-log", "/var/log/offloadd-audit.json"})
	require.NoError(t, err)
	assert.Equal(t, "/x.crt", cfg.TLS.Cert)
	assert.Equal(t, "/etc/a.key", cfg.TLS.Key)
	assert.True(t, cfg.TCPReflection)
	assert.True(t, cfg.TCPHealth)
	assert.True(t, cfg.MetricsTLS)
	assert.Equal(t, "/var/log/offloadd-audit.json", cfg.AuditLog)
	require.Len(t, cfg.Policy, 1)
	assert.Equal(t, []string{"tenant-a-"}, cfg.Policy[0].IDPrefixes)
	require.Len(t, cfg.Peers, 1)
	assert.Equal(t, "node-b", cfg.Peers[0].Name)

	_, err = parseConfig([]string{"--config", file, "--tcp", "127.0.0.1:0", "--insecure-tcp"})
	require.ErrorContains(t, err, "insecureTCP: tls is configured")
	_, err = parseConfig([]string{"--tls-cert", "/x.crt"})
	require.ErrorContains(t, err, "needs cert, key and clientCA")
	_, err = parseConfig([]string{"--metrics", "127.0.0.1:0", "--metrics-tls"})
	require.ErrorContains(t, err, "metricsTLS: needs tls")
	bad := filepath.Join(dir, "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("policy: [{identity: root, roles: [admin]}]\n"), 0o600))
	_, err = parseConfig([]string{"--config", bad})
	require.ErrorContains(t, err, `identity "root"`)
	require.NoError(t, os.WriteFile(bad, []byte("peers: [{name: b, address: 'x:1', identity: 'dns:b'}]\n"), 0o600))
	_, err = parseConfig([]string{"--config", bad})
	require.ErrorContains(t, err, "peers need tls")
}
