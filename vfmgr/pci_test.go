package vfmgr

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/representor/sysfstest"
)

func TestSysfsPCISetNumVFs(t *testing.T) {
	tests := []struct {
		name     string
		from, to int
		ops      []string
		wantErr  error
	}{
		{"create", 0, 3, []string{"numvfs 0000:08:00.0 3"}, nil},
		{"change goes through zero", 2, 4, []string{"numvfs 0000:08:00.0 0", "numvfs 0000:08:00.0 4"}, nil},
		{"remove", 2, 0, []string{"numvfs 0000:08:00.0 0"}, nil},
		{"same", 2, 2, nil, nil},
		{"above total", 0, 9, nil, ErrInvalid},
		{"negative", 0, -1, nil, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newFakeHost(t)
			h.addPF(mlxPF, "enp8s0f0np0", "mlx5_core", "mlx5_core", 8, nic.EswitchLegacy)
			h.setNumVFs(mlxPF, tt.from)
			p := NewSysfsPCI(h)
			err := p.SetNumVFs(mlxPF, tt.to)
			if tt.wantErr != nil {
				assert.ErrorIs(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.ops, h.takeOps())
			n, err := p.NumVFs(mlxPF)
			require.NoError(t, err)
			assert.Equal(t, tt.to, n)
		})
	}
	_, err := NewSysfsPCI(newFakeHost(t)).NumVFs("0000:00:00.0")
	assert.ErrorIs(t, err, ErrNotFound)
}

func TestSysfsPCIBindDriver(t *testing.T) {
	vf := sysfstest.VFAddress(mlxPF, 1)
	tests := []struct {
		name       string
		driver     string
		ops        []string
		wantDriver string
		wantErr    error
	}{
		{"to vfio-pci", "vfio-pci", []string{"unbind 0000:08:00.3 from mlx5_core", "bind 0000:08:00.3 to vfio-pci"}, "vfio-pci", nil},
		{"already bound", "mlx5_core", nil, "mlx5_core", nil},
		{"unbind", "", []string{"unbind 0000:08:00.3 from mlx5_core"}, "", nil},
		{"driver not loaded", "igb_uio", []string{"unbind 0000:08:00.3 from mlx5_core"}, "", ErrNotApplied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newFakeHost(t)
			h.addPF(mlxPF, "enp8s0f0np0", "mlx5_core", "mlx5_core", 8, nic.EswitchLegacy)
			h.setNumVFs(mlxPF, 2)
			p := NewSysfsPCI(h)
			err := p.BindDriver(vf, tt.driver)
			if tt.wantErr != nil {
				assert.ErrorIs(t, err, tt.wantErr)
			} else {
				assert.NoError(t, err)
			}
			assert.Equal(t, tt.ops, h.takeOps())
			got, err := p.Driver(vf)
			require.NoError(t, err)
			assert.Equal(t, tt.wantDriver, got)
			override, err := h.ReadAttr(sysfstest.PCIPath(vf, "driver_override"))
			require.NoError(t, err)
			assert.Equal(t, "(null)", override, "driver_override is cleared after probing")
		})
	}

	t.Run("back to the default driver", func(t *testing.T) {
		h := newFakeHost(t)
		h.addPF(mlxPF, "enp8s0f0np0", "mlx5_core", "mlx5_core", 8, nic.EswitchLegacy)
		h.setNumVFs(mlxPF, 2)
		before := h.render()
		p := NewSysfsPCI(h)
		require.NoError(t, p.BindDriver(vf, "vfio-pci"))
		assert.Contains(t, h.render(), "vf 0000:08:00.3 pf=0000:08:00.0 index=1 driver=vfio-pci netdev=- ")
		require.NoError(t, p.BindDriver(vf, "mlx5_core"))
		assert.Equal(t, before, h.render())
	})
	t.Run("no such device", func(t *testing.T) {
		p := NewSysfsPCI(newFakeHost(t))
		_, err := p.Driver("0000:09:00.0")
		assert.ErrorIs(t, err, ErrNotFound)
		assert.ErrorIs(t, p.BindDriver("0000:09:00.0", "vfio-pci"), ErrNotFound)
	})
}

func TestDirFS(t *testing.T) {
	tr := sysfstest.New(t)
	tr.Write("bus/pci/devices/x/attr", "old value")
	fs := DirFS{Root: tr.Root}
	require.NoError(t, fs.WriteAttr("bus/pci/devices/x/attr", "1"))
	v, err := fs.ReadAttr("bus/pci/devices/x/attr")
	require.NoError(t, err)
	assert.Equal(t, "1", v, "the write truncates like echo >")
	assert.Error(t, fs.WriteAttr("bus/pci/devices/x/missing", "1"), "sysfs attributes are never created")
	tr.Symlink("bus/pci/devices/x/driver", "../../drivers/mlx5_core")
	l, err := fs.ReadLink("bus/pci/devices/x/driver")
	require.NoError(t, err)
	assert.Equal(t, "../../drivers/mlx5_core", l)
}
