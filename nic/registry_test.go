package nic_test

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/offload/flow"
)

func TestNewRegistry(t *testing.T) {
	r := nic.NewRegistry()
	assert.Equal(t, []string{"generic", "ice-e810", "mlx5-bf2", "mlx5-cx5", "mlx5-cx6dx", "nfp-agilio-cx"}, r.Names())
	for _, want := range nic.Builtin() {
		got, ok := r.Lookup(want.Name)
		require.True(t, ok, want.Name)
		assert.Equal(t, want.Name, got.Name)
		assert.Equal(t, want.Notes, got.Notes)
		assert.Len(t, got.Rules, len(want.Rules))
	}
	_, ok := r.Lookup("mlx5")
	assert.False(t, ok)
}

func TestRegistryForDevice(t *testing.T) {
	tests := []struct {
		name                   string
		driver, vendor, device string
		want                   string
	}{
		{"ConnectX-6 Dx", "mlx5_core", "15b3", "101d", nic.ProfileMLX5ConnectX6Dx},
		{"ConnectX-5", "mlx5_core", "15b3", "1017", nic.ProfileMLX5ConnectX5},
		{"ConnectX-5 Ex", "mlx5_core", "15b3", "1019", nic.ProfileMLX5ConnectX5},
		{"BlueField-2, sysfs spelling", "mlx5_core", "0x15b3", "0xA2D6", nic.ProfileMLX5BlueField2},
		{"Agilio CX", "nfp", "19ee", "4000", nic.ProfileNFPAgilioCX},
		{"E810-XXV", "ice", "8086", "159b", nic.ProfileICEE810},
		{"E810-C", "ice", "8086", "1593", nic.ProfileICEE810},
		{"PCI ID wins over driver", "vfio-pci", "15b3", "101d", nic.ProfileMLX5ConnectX6Dx},
		{"unknown mlx5 device: driver default", "mlx5_core", "15b3", "1021", nic.ProfileMLX5ConnectX6Dx},
		{"unknown ice device: driver default", "ice", "8086", "188a", nic.ProfileICEE810},
		{"unknown driver", "bnxt_en", "14e4", "1750", nic.ProfileGeneric},
		{"nothing known", "", "", "", nic.ProfileGeneric},
	}
	r := nic.NewRegistry()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := r.ForDevice(tc.driver, tc.vendor, tc.device)
			require.NotNil(t, p)
			assert.Equal(t, tc.want, p.Name)
		})
	}
}

func TestRegistryRegister(t *testing.T) {
	r := nic.NewRegistry()

	custom := nic.Generic()
	custom.Name, custom.Driver, custom.PCIVendor, custom.PCIDevices = "bnxt-p2100", "bnxt_en", "0x14E4", []string{"1750"}
	require.NoError(t, r.Register(custom))
	assert.Equal(t, "bnxt-p2100", r.ForDevice("bnxt_en", "14e4", "1750").Name)
	assert.Equal(t, "bnxt-p2100", r.ForDevice("bnxt_en", "14e4", "16d7").Name, "first profile of a driver is its default")

	second := nic.Generic()
	second.Name, second.Driver = "bnxt-other", "bnxt_en"
	require.NoError(t, r.Register(second))
	assert.Equal(t, "bnxt-p2100", r.ForDevice("bnxt_en", "", "").Name)

	dup := nic.Generic()
	err := r.Register(dup)
	require.ErrorIs(t, err, nic.ErrExists)
	assert.Contains(t, err.Error(), `"generic"`)

	claim := nic.Generic()
	claim.Name, claim.PCIVendor, claim.PCIDevices = "claims-cx6dx", "15B3", []string{"0x101D"}
	err = r.Register(claim)
	require.ErrorIs(t, err, nic.ErrExists)
	assert.Contains(t, err.Error(), "mlx5-cx6dx")
	_, ok := r.Lookup("claims-cx6dx")
	assert.False(t, ok, "a refused profile is not registered")

	require.Error(t, r.Register(nil))
	require.Error(t, r.Register(&nic.Profile{}))
	require.Error(t, r.Register(&nic.Profile{Name: "no-vendor", PCIDevices: []string{"1234"}}))
}

// TestRegistryCopies: what the registry hands out, and what it was given,
// can change without changing the registry.
func TestRegistryCopies(t *testing.T) {
	r := &nic.Registry{}
	mine := nic.MLX5ConnectX5()
	require.NoError(t, r.Register(mine))
	mine.HWTableSize, mine.Notes[0], mine.PCIDevices[0] = 1, "changed", "ffff"
	mine.Rules = nil

	got, ok := r.Lookup(nic.ProfileMLX5ConnectX5)
	require.True(t, ok)
	assert.Equal(t, 4<<20, got.HWTableSize)
	assert.NotEqual(t, "changed", got.Notes[0])
	assert.Equal(t, nic.ProfileMLX5ConnectX5, r.ForDevice("", "15b3", "1017").Name)
	assert.NotEmpty(t, got.Rules)

	got.HWTableSize, got.Notes[0], got.MaxChain = 64, "changed", 0
	again, _ := r.Lookup(nic.ProfileMLX5ConnectX5)
	assert.Equal(t, 4<<20, again.HWTableSize)
	assert.NotEqual(t, "changed", again.Notes[0])
	assert.Equal(t, uint32(3), again.MaxChain)

	fd := r.ForDevice("mlx5_core", "", "")
	fd.Rules = fd.Rules[:0]
	again, _ = r.Lookup(nic.ProfileMLX5ConnectX5)
	assert.NotEmpty(t, again.Rules)
}

// TestRegistryZeroValue: an empty registry still answers ForDevice with
// the generic profile.
func TestRegistryZeroValue(t *testing.T) {
	var r nic.Registry
	assert.Empty(t, r.Names())
	_, ok := r.Lookup(nic.ProfileGeneric)
	assert.False(t, ok)
	p := r.ForDevice("mlx5_core", "15b3", "101d")
	require.NotNil(t, p)
	assert.Equal(t, nic.ProfileGeneric, p.Name)
}

// TestRegistryConcurrent is meant for -race: lookups and registrations
// from many goroutines.
func TestRegistryConcurrent(t *testing.T) {
	r := nic.NewRegistry()
	f := acl()
	flow.Normalize(f)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			p := nic.Generic()
			p.Name = "custom-" + string(rune('a'+i))
			assert.NoError(t, r.Register(p))
			for range 50 {
				q := r.ForDevice("mlx5_core", "15b3", "101d")
				assert.Nil(t, q.Check(f, portKinds))
				q.HWTableSize = i
				_ = r.Names()
			}
		})
	}
	wg.Wait()
	assert.Len(t, r.Names(), 6+8)
}
