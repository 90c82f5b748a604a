package vfmgr

import (
	"context"
	"errors"
	"math/rand/v2"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offloadd/offloadd/nic"
)

const (
	mlxPF = "0000:08:00.0"
	icePF = "0000:3b:00.0"
	nfpPF = "0000:5e:00.0"
)

func intp(n int) *int                          { return &n }
func modep(m nic.EswitchMode) *nic.EswitchMode { return &m }

func TestConfigurePFOrder(t *testing.T) {
	tests := []struct {
		name     string
		driver   string
		startVFs int
		want     PFConfig
		ops      []string
	}{
		{
			name:   "mlx5 legacy to switchdev: VFs first, unbound during the change",
			driver: "mlx5_core", startVFs: 0,
			want: PFConfig{NumVFs: intp(2), Eswitch: modep(nic.EswitchSwitchdev), HWTCOffload: true},
			ops: []string{
				"numvfs 0000:08:00.0 2",
				"unbind 0000:08:00.2 from mlx5_core",
				"unbind 0000:08:00.3 from mlx5_core",
				"eswitch 0000:08:00.0 switchdev",
				"bind 0000:08:00.2 to mlx5_core",
				"bind 0000:08:00.3 to mlx5_core",
				"feature enp8s0f0np0 hw-tc-offload on",
			},
		},
		{
			name:   "mlx5 changing the VF count with the mode",
			driver: "mlx5_core", startVFs: 1,
			want: PFConfig{NumVFs: intp(2), Eswitch: modep(nic.EswitchSwitchdev)},
			ops: []string{
				"numvfs 0000:08:00.0 0",
				"numvfs 0000:08:00.0 2",
				"unbind 0000:08:00.2 from mlx5_core",
				"unbind 0000:08:00.3 from mlx5_core",
				"eswitch 0000:08:00.0 switchdev",
				"bind 0000:08:00.2 to mlx5_core",
				"bind 0000:08:00.3 to mlx5_core",
			},
		},
		{
			name:   "ice: mode first with no VFs, then the VFs",
			driver: "ice", startVFs: 2,
			want: PFConfig{Eswitch: modep(nic.EswitchSwitchdev)},
			ops: []string{
				"numvfs 0000:3b:00.0 0",
				"eswitch 0000:3b:00.0 switchdev",
				"numvfs 0000:3b:00.0 2",
			},
		},
		{
			name:   "only the VF count",
			driver: "ice", startVFs: 2,
			want: PFConfig{NumVFs: intp(3)},
			ops:  []string{"numvfs 0000:3b:00.0 0", "numvfs 0000:3b:00.0 3"},
		},
		{
			name:   "already there",
			driver: "mlx5_core", startVFs: 2,
			want: PFConfig{NumVFs: intp(2), Eswitch: modep(nic.EswitchLegacy)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newFakeHost(t)
			pci := mlxPF
			h.addPF(mlxPF, "enp8s0f0np0", "mlx5_core", "mlx5_core", 8, nic.EswitchLegacy)
			if tt.driver == "ice" {
				pci = icePF
				h.addPF(icePF, "ens1f0np0", "ice", "iavf", 8, nic.EswitchLegacy)
			}
			h.setNumVFs(pci, tt.startVFs)
			m := h.manager(t)
			require.NoError(t, m.ConfigurePF(context.Background(), pci, tt.want))
			assert.Equal(t, tt.ops, h.takeOps())

			// Applying the same config again changes nothing.
			require.NoError(t, m.ConfigurePF(context.Background(), pci, tt.want))
			assert.Empty(t, h.takeOps())
		})
	}
}

// Every transition between (VF count, mode) states ends in the same state as
// a host set up there directly, for each driver's order.
func TestConfigurePFTransitions(t *testing.T) {
	for _, driver := range []string{"mlx5_core", "ice"} {
		t.Run(driver, func(t *testing.T) {
			vfDriver := map[string]string{"mlx5_core": "mlx5_core", "ice": "iavf"}[driver]
			h := newFakeHost(t)
			h.addPF(mlxPF, "enp8s0f0np0", driver, vfDriver, 8, nic.EswitchLegacy)
			m := h.manager(t)
			type state struct {
				n    int
				mode nic.EswitchMode
			}
			expected := map[state]string{}
			rng := rand.New(rand.NewPCG(1, 2))
			for step := range 30 {
				n := rng.IntN(4)
				mode := nic.EswitchMode(rng.IntN(2))
				require.NoError(t, m.ConfigurePF(context.Background(), "enp8s0f0np0",
					PFConfig{NumVFs: intp(n), Eswitch: modep(mode)}), "step %d", step)

				if _, ok := expected[state{n, mode}]; !ok {
					want := newFakeHost(t)
					want.addPF(mlxPF, "enp8s0f0np0", driver, vfDriver, 8, mode)
					want.setNumVFs(mlxPF, n)
					expected[state{n, mode}] = want.render()
				}
				require.Equal(t, expected[state{n, mode}], h.render(), "step %d: %d VFs %s", step, n, mode)
			}
		})
	}
}

func TestConfigurePFFailures(t *testing.T) {
	t.Run("mode change failing rebinds the VFs", func(t *testing.T) {
		h := newFakeHost(t)
		h.addPF(mlxPF, "enp8s0f0np0", "mlx5_core", "mlx5_core", 8, nic.EswitchLegacy)
		h.setNumVFs(mlxPF, 2)
		before := h.render()
		h.failMode = syscall.EIO
		err := h.manager(t).ConfigurePF(context.Background(), mlxPF, PFConfig{Eswitch: modep(nic.EswitchSwitchdev)})
		assert.ErrorIs(t, err, syscall.EIO)
		assert.ErrorContains(t, err, "configure pf 0000:08:00.0: set eswitch mode switchdev: step set-mode")
		assert.Equal(t, []string{
			"unbind 0000:08:00.2 from mlx5_core", "unbind 0000:08:00.3 from mlx5_core",
			"bind 0000:08:00.2 to mlx5_core", "bind 0000:08:00.3 to mlx5_core",
		}, h.takeOps())
		assert.Equal(t, before, h.render())
	})
	t.Run("the generic order is wrong for mlx5", func(t *testing.T) {
		h := newFakeHost(t)
		h.addPF(mlxPF, "enp8s0f0np0", "mlx5_core", "mlx5_core", 8, nic.EswitchLegacy)
		h.setNumVFs(mlxPF, 2)
		m, err := NewManager(ManagerConfig{Discover: h.scanner(), PCI: NewSysfsPCI(h), VFs: h, Features: h, Eswitch: h,
			Orders: []EswitchOrder{}, Logger: quiet})
		require.NoError(t, err)
		err = m.ConfigurePF(context.Background(), mlxPF, PFConfig{Eswitch: modep(nic.EswitchSwitchdev)})
		assert.ErrorIs(t, err, syscall.EOPNOTSUPP)
	})
	t.Run("nfp has switchdev only", func(t *testing.T) {
		h := newFakeHost(t)
		h.addPF(nfpPF, "ens2np0", "nfp", "nfp_netvf", 8, nic.EswitchSwitchdev)
		m := h.manager(t)
		err := m.ConfigurePF(context.Background(), nfpPF, PFConfig{Eswitch: modep(nic.EswitchLegacy)})
		assert.ErrorIs(t, err, ErrUnsupported)
		assert.ErrorContains(t, err, "driver nfp has switchdev mode only")
		require.NoError(t, m.ConfigurePF(context.Background(), nfpPF, PFConfig{Eswitch: modep(nic.EswitchSwitchdev), NumVFs: intp(2)}))
		assert.Equal(t, []string{"numvfs 0000:5e:00.0 2"}, h.takeOps())
	})
	t.Run("unknown PF", func(t *testing.T) {
		h := newFakeHost(t)
		err := h.manager(t).ConfigurePF(context.Background(), "eth9", PFConfig{})
		assert.ErrorIs(t, err, ErrNotFound)
	})
	t.Run("too many VFs", func(t *testing.T) {
		h := newFakeHost(t)
		h.addPF(mlxPF, "enp8s0f0np0", "mlx5_core", "mlx5_core", 8, nic.EswitchLegacy)
		err := h.manager(t).ConfigurePF(context.Background(), mlxPF, PFConfig{NumVFs: intp(9)})
		assert.ErrorIs(t, err, ErrInvalid)
		assert.Empty(t, h.takeOps())
	})
	t.Run("eswitch unreadable", func(t *testing.T) {
		h := newFakeHost(t)
		h.addPF(mlxPF, "enp8s0f0np0", "mlx5_core", "mlx5_core", 8, nic.EswitchLegacy)
		h.eswitchRead = syscall.ENODEV
		err := h.manager(t).ConfigurePF(context.Background(), mlxPF, PFConfig{Eswitch: modep(nic.EswitchSwitchdev)})
		assert.ErrorIs(t, err, syscall.ENODEV)
		// Leaving the mode alone does not need devlink.
		require.NoError(t, h.manager(t).ConfigurePF(context.Background(), mlxPF, PFConfig{NumVFs: intp(1)}))
	})
	t.Run("canceled", func(t *testing.T) {
		h := newFakeHost(t)
		h.addPF(mlxPF, "enp8s0f0np0", "mlx5_core", "mlx5_core", 8, nic.EswitchLegacy)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := h.manager(t).ConfigurePF(ctx, mlxPF, PFConfig{Eswitch: modep(nic.EswitchSwitchdev)})
		assert.ErrorIs(t, err, context.Canceled)
	})
}

func TestEnableHWTCOffload(t *testing.T) {
	tests := []struct {
		name    string
		feature *Feature // nil: the device lacks it
		ignore  bool
		wantErr error
		ops     []string
	}{
		{name: "turned on", feature: &Feature{Changeable: true}, ops: []string{"feature enp8s0f0np0 hw-tc-offload on"}},
		{name: "already on", feature: &Feature{Changeable: true, Active: true}},
		{name: "fixed off", feature: &Feature{}, wantErr: ErrUnsupported},
		{name: "accepted but unchanged", feature: &Feature{Changeable: true}, ignore: true, wantErr: ErrNotApplied},
		{name: "missing", wantErr: ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newFakeHost(t)
			h.addPF(mlxPF, "enp8s0f0np0", "mlx5_core", "mlx5_core", 8, nic.EswitchSwitchdev)
			delete(h.features["enp8s0f0np0"], HWTCOffload)
			if tt.feature != nil {
				h.features["enp8s0f0np0"][HWTCOffload] = *tt.feature
			}
			h.ignoreFeat = tt.ignore
			err := h.manager(t).EnableHWTCOffload("enp8s0f0np0")
			if tt.wantErr != nil {
				assert.ErrorIs(t, err, tt.wantErr)
				assert.ErrorContains(t, err, "enable hw-tc-offload on enp8s0f0np0")
			} else {
				assert.NoError(t, err)
			}
			assert.Equal(t, tt.ops, h.takeOps())
		})
	}
}

func TestApplyVF(t *testing.T) {
	newHost := func(t *testing.T) (*fakeHost, *Manager) {
		h := newFakeHost(t)
		h.addPF(mlxPF, "enp8s0f0np0", "mlx5_core", "mlx5_core", 8, nic.EswitchSwitchdev)
		h.setNumVFs(mlxPF, 2)
		return h, h.manager(t)
	}
	full := VFSettings{MAC: "02:AA:00:00:00:01", VLAN: &VLAN{ID: 100, QoS: 3}, Trust: Bool(true), SpoofChk: Bool(false),
		LinkState: LinkEnable, Rate: &Rate{MinMbps: 100, MaxMbps: 1000}}

	t.Run("only differences are sent, then nothing", func(t *testing.T) {
		h, m := newHost(t)
		require.NoError(t, m.ApplyVF("enp8s0f0np0", 1, full))
		assert.Equal(t, []string{"set enp8s0f0np0 vf 1 mac 02:AA:00:00:00:01 vlan 100 qos 3 min_tx_rate 100 max_tx_rate 1000 spoofchk off trust on state enable"}, h.takeOps())
		require.NoError(t, m.ApplyVF("enp8s0f0np0", 1, full))
		assert.Empty(t, h.takeOps())
		require.NoError(t, m.ApplyVF("enp8s0f0np0", 1, VFSettings{Trust: Bool(false), VLAN: &VLAN{ID: 100, QoS: 3, Proto: 0x8100}}))
		assert.Equal(t, []string{"set enp8s0f0np0 vf 1 trust off"}, h.takeOps())
		st, err := m.VFState("enp8s0f0np0", 1)
		require.NoError(t, err)
		assert.Equal(t, VFState{MAC: "02:aa:00:00:00:01", VLAN: VLAN{ID: 100, QoS: 3}, SpoofChk: false,
			LinkState: LinkEnable, Rate: Rate{MinMbps: 100, MaxMbps: 1000}}, st)
	})
	t.Run("ignored setting", func(t *testing.T) {
		h, m := newHost(t)
		h.ignoreSet["trust"] = true
		err := m.ApplyVF("enp8s0f0np0", 0, VFSettings{Trust: Bool(true), LinkState: LinkDisable})
		assert.ErrorIs(t, err, ErrNotApplied)
		assert.ErrorContains(t, err, "set pf enp8s0f0np0 vf 0: change not applied: trust on")
	})
	t.Run("refused setting", func(t *testing.T) {
		h, m := newHost(t)
		h.failSet["min_tx_rate"] = syscall.EOPNOTSUPP
		err := m.ApplyVF("enp8s0f0np0", 0, VFSettings{Rate: &Rate{MinMbps: 10}})
		assert.ErrorIs(t, err, syscall.EOPNOTSUPP)
		assert.ErrorContains(t, err, "set pf enp8s0f0np0 vf 0 min_tx_rate 10 max_tx_rate 0")
	})
	t.Run("invalid", func(t *testing.T) {
		_, m := newHost(t)
		err := m.ApplyVF("enp8s0f0np0", 0, VFSettings{VLAN: &VLAN{ID: 4095}})
		assert.ErrorIs(t, err, ErrInvalid)
		assert.ErrorContains(t, err, "vlan.id")
	})
	t.Run("no such VF", func(t *testing.T) {
		_, m := newHost(t)
		_, err := m.VFState("enp8s0f0np0", 5)
		assert.ErrorIs(t, err, ErrNotFound)
		err = m.ApplyVF("enp8s0f0np0", 5, full)
		assert.ErrorIs(t, err, ErrNotFound)
	})
}

func TestNewManagerRequiresAll(t *testing.T) {
	h := newFakeHost(t)
	full := ManagerConfig{Discover: h.scanner(), PCI: NewSysfsPCI(h), VFs: h, Features: h, Eswitch: h}
	for _, drop := range []func(*ManagerConfig){
		func(c *ManagerConfig) { c.Discover = nil },
		func(c *ManagerConfig) { c.PCI = nil },
		func(c *ManagerConfig) { c.VFs = nil },
		func(c *ManagerConfig) { c.Features = nil },
		func(c *ManagerConfig) { c.Eswitch = nil },
	} {
		c := full
		drop(&c)
		_, err := NewManager(c)
		assert.Error(t, err)
	}
	_, err := NewManager(full)
	assert.NoError(t, err)
	assert.True(t, errors.Is(findOrderErr(), ErrUnsupported))
}

// findOrderErr checks the order table through the public API: nfp is fixed.
func findOrderErr() error {
	o := findOrder(DefaultEswitchOrders, "nfp")
	if o.Fixed && o.FixedMode == nic.EswitchSwitchdev {
		return ErrUnsupported
	}
	return nil
}
