package vfmgr

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/representor/sysfstest"
)

// twoNICs is a host with a ConnectX-6 Dx PF (4 VFs, VF 3 on vfio-pci) in
// switchdev mode and an E810 PF (2 VFs) in legacy mode.
func twoNICs(t *testing.T) *fakeHost {
	h := newFakeHost(t)
	h.addPF(mlxPF, "enp8s0f0np0", "mlx5_core", "mlx5_core", 8, nic.EswitchSwitchdev)
	h.setNumVFs(mlxPF, 4)
	h.addPF(icePF, "ens1f0np0", "ice", "iavf", 8, nic.EswitchLegacy)
	h.setNumVFs(icePF, 2)
	h.tree.Write(sysfstest.PCIPath(sysfstest.VFAddress(icePF, 0), "vendor"), "0x8086")
	h.tree.Write(sysfstest.PCIPath(sysfstest.VFAddress(icePF, 1), "vendor"), "0x8086")
	require.NoError(t, NewSysfsPCI(h).BindDriver(sysfstest.VFAddress(mlxPF, 3), "vfio-pci"))
	h.takeOps()
	return h
}

func poolPCIs(p Pool) []string {
	var out []string
	for _, vf := range p.VFs {
		out = append(out, vf.PCI)
	}
	return out
}

func TestBuildPools(t *testing.T) {
	h := twoNICs(t)
	snap := scan(t, h)
	tests := []struct {
		name string
		sel  []Selector
		want []string
	}{
		{"everything", []Selector{{}}, []string{"0000:08:00.2", "0000:08:00.3", "0000:08:00.4", "0000:08:00.5", "0000:3b:00.2", "0000:3b:00.3"}},
		{"vendor, case-insensitive", []Selector{{Vendors: []string{"8086"}}}, []string{"0000:3b:00.2", "0000:3b:00.3"}},
		{"driver", []Selector{{Drivers: []string{"vfio-pci"}}}, []string{"0000:08:00.5"}},
		{"pf name with VF ranges", []Selector{{PFNames: []FunctionSelector{{Name: "enp8s0f0np0", VFs: IndexSet{{0, 0}, {2, 3}}}}}},
			[]string{"0000:08:00.2", "0000:08:00.4", "0000:08:00.5"}},
		{"root device", []Selector{{RootDevices: []FunctionSelector{{Name: icePF}}}}, []string{"0000:3b:00.2", "0000:3b:00.3"}},
		{"PCI address", []Selector{{PCIAddresses: []string{"0000:08:00.3"}}}, []string{"0000:08:00.3"}},
		{"all fields must match", []Selector{{Vendors: []string{"15b3"}, Drivers: []string{"iavf"}}}, nil},
		{"alternatives add up", []Selector{{Drivers: []string{"vfio-pci"}}, {Drivers: []string{"iavf"}}},
			[]string{"0000:08:00.5", "0000:3b:00.2", "0000:3b:00.3"}},
		{"link type", []Selector{{LinkTypes: []string{"infiniband"}}}, nil},
		{"rdma", []Selector{{IsRDMA: true}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pools := BuildPools(&DevicePluginConfig{Resources: []ResourceConfig{{Prefix: "p", Name: "n", Selectors: tt.sel}}}, snap)
			require.Len(t, pools, 1)
			assert.Equal(t, "p/n", pools[0].Name)
			assert.Equal(t, tt.want, poolPCIs(pools[0]))
		})
	}

	pools := BuildPools(&DevicePluginConfig{Resources: []ResourceConfig{{Prefix: "p", Name: "n",
		Selectors: []Selector{{PCIAddresses: []string{"0000:08:00.2"}}, {NeedVhostNet: true, Drivers: []string{"none"}}}}}}, snap)
	assert.True(t, pools[0].NeedVhostNet)
	assert.Equal(t, PoolVF{PF: "enp8s0f0np0", PFPCI: mlxPF, Index: 0, PCI: "0000:08:00.2", Driver: "mlx5_core",
		Netdev: "enp8s0f0np0v0", Representor: "enp8s0f0npf0vf0"}, pools[0].VFs[0])
	assert.Nil(t, BuildPools(nil, snap))
}
