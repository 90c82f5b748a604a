package vfmgr

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const sampleDPConfig = `{
  "resourceList": [
    {
      "resourceName": "cx6_switchdev",
      "resourcePrefix": "nvidia.com",
      "deviceType": "netDevice",
      "selectors": {
        "vendors": ["15B3"],
        "devices": ["101e"],
        "drivers": ["mlx5_core"],
        "pfNames": ["enp8s0f0np0#0-1,5"],
        "rootDevices": ["0000:08:00.0"],
        "linkTypes": ["ether"],
        "IsRdma": true,
        "needVhostNet": true
      }
    },
    {
      "resourceName": "dpdk",
      "selectors": [
        {"drivers": ["vfio-pci"]},
        {"pciAddresses": ["0000:08:00.7"]}
      ]
    },
    {
      "resourceName": "qat",
      "deviceType": "accelerator",
      "selectors": {"vendors": ["8086"]}
    },
    {
      "resourceName": "any",
      "excludeTopology": true,
      "selectors": {}
    }
  ]
}`

func TestParseDevicePluginConfig(t *testing.T) {
	cfg, warnings, err := ParseDevicePluginConfig([]byte(sampleDPConfig))
	require.NoError(t, err)
	want := &DevicePluginConfig{Resources: []ResourceConfig{
		{Prefix: "nvidia.com", Name: "cx6_switchdev", Selectors: []Selector{{
			Vendors: []string{"15b3"}, Devices: []string{"101e"}, Drivers: []string{"mlx5_core"},
			PFNames:     []FunctionSelector{{Name: "enp8s0f0np0", VFs: IndexSet{{0, 1}, {5, 5}}}},
			RootDevices: []FunctionSelector{{Name: "0000:08:00.0"}},
			LinkTypes:   []string{"ether"}, IsRDMA: true, NeedVhostNet: true,
		}}},
		{Prefix: "intel.com", Name: "dpdk", Selectors: []Selector{
			{Drivers: []string{"vfio-pci"}},
			{PCIAddresses: []string{"0000:08:00.7"}},
		}},
		{Prefix: "intel.com", Name: "any", Selectors: []Selector{{}}},
	}}
	assert.Equal(t, want, cfg)
	assert.Equal(t, []string{
		"resourceList[2]: deviceType accelerator is not a VF pool; skipped",
		"resourceList[3].excludeTopology: ignored (NUMA topology is the kubelet's)",
	}, warnings)
	assert.Equal(t, "nvidia.com/cx6_switchdev", cfg.Resources[0].PoolName())

	path := filepath.Join(t.TempDir(), "config.json")
	require.NoError(t, os.WriteFile(path, []byte(sampleDPConfig), 0o644))
	loaded, _, err := LoadDevicePluginConfig(path)
	require.NoError(t, err)
	assert.Equal(t, cfg, loaded)
	_, _, err = LoadDevicePluginConfig(filepath.Join(t.TempDir(), "none.json"))
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func TestParseDevicePluginConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		json string
		want []string
	}{
		{"bad VF range", `{"resourceList":[{"resourceName":"a","selectors":{}},{"resourceName":"b","selectors":{"pfNames":["p0#5-1"]}}]}`,
			[]string{`resourceList[1].selectors.pfNames[0]: bad VF range "p0#5-1"`}},
		{"VF range forms", `{"resourceList":[{"resourceName":"a","selectors":{"pfNames":["p0#","p0#1-","p0#-1","p0#a","p0#1,,2","p0#0-3,9"],"rootDevices":["0000:08:00.0#x"]}}]}`,
			[]string{
				`resourceList[0].selectors.pfNames[0]: bad VF range "p0#"`,
				`resourceList[0].selectors.pfNames[1]: bad VF range "p0#1-"`,
				`resourceList[0].selectors.pfNames[2]: bad VF range "p0#-1"`,
				`resourceList[0].selectors.pfNames[3]: bad VF range "p0#a"`,
				`resourceList[0].selectors.pfNames[4]: bad VF range "p0#1,,2"`,
				`resourceList[0].selectors.rootDevices[0]: bad VF range "0000:08:00.0#x"`,
			}},
		{"values", `{"resourceList":[{"resourceName":"a","selectors":[{"vendors":["15b"],"devices":["xyzw"],"pciAddresses":["08:00.2"],"rootDevices":["enp8s0f0"],"pfNames":["a very long interface name"],"linkTypes":["eth er"]}]}]}`,
			[]string{
				`resourceList[0].selectors[0].devices[0]: "xyzw" is not a 4-digit hex PCI device ID`,
				`resourceList[0].selectors[0].linkTypes[0]: "eth er" is not a link type (ether, infiniband)`,
				`resourceList[0].selectors[0].pciAddresses[0]: "08:00.2" is not a PCI address (0000:08:00.2)`,
				`resourceList[0].selectors[0].pfNames[0]: "a very long interface name" is not a PF netdev name`,
				`resourceList[0].selectors[0].rootDevices[0]: "enp8s0f0" is not a PF PCI address`,
				`resourceList[0].selectors[0].vendors[0]: "15b" is not a 4-digit hex PCI vendor ID`,
			}},
		{"types", `{"resourceList":[{"resourceName":5,"selectors":{"vendors":"15b3","isRdma":"yes"}}]}`,
			[]string{
				`resourceList[0].resourceName: want a string`,
				`resourceList[0].selectors.isRdma: want true or false`,
				`resourceList[0].selectors.vendors: want a list of strings`,
			}},
		{"unknown and unsupported fields", `{"resourceList":[{"resourceName":"a","sriovMode":true,"selectors":{"ddpProfiles":["gtp"],"vendor":["15b3"]}}],"extra":1}`,
			[]string{
				`extra: unknown field`,
				`resourceList[0].sriovMode: unknown field`,
				`resourceList[0].selectors.ddpProfiles: not supported by offloadd`,
				`resourceList[0].selectors.vendor: unknown field`,
			}},
		{"names", `{"resourceList":[{"resourceName":"my-pool","resourcePrefix":"a/b","selectors":{}},{"selectors":{}},{"resourceName":"x","selectors":{}},{"resourceName":"x","selectors":{}},{"resourceName":"","selectors":{}}]}`,
			[]string{
				`resourceList[0].resourceName: "my-pool" is not [a-zA-Z0-9_]+`,
				`resourceList[0].resourcePrefix: "a/b" must not contain '/' or spaces`,
				`resourceList[1].resourceName: required`,
				`resourceList[3].resourceName: duplicate resource "intel.com/x" (also resourceList[2])`,
				`resourceList[4].resourceName: "" is not [a-zA-Z0-9_]+`,
			}},
		{"selectors shape", `{"resourceList":[{"resourceName":"a"},{"resourceName":"b","selectors":[]},{"resourceName":"c","selectors":"all"},{"resourceName":"d","selectors":[1]}]}`,
			[]string{
				`resourceList[0].selectors: required`,
				`resourceList[1].selectors: empty list`,
				`resourceList[2].selectors: want an object`,
				`resourceList[3].selectors[0]: want an object`,
			}},
		{"device type", `{"resourceList":[{"resourceName":"a","deviceType":"gpu","selectors":{}}]}`,
			[]string{`resourceList[0].deviceType: "gpu" is not netDevice, accelerator or auxNetDevice`}},
		{"duplicate key", `{"resourceList":[{"resourceName":"a","selectors":{"isRdma":true,"IsRdma":false}}]}`,
			[]string{`resourceList[0].selectors.isRdma: duplicate of field "IsRdma"`}},
		{"top level", `{"resources":[]}`, []string{`resources: unknown field`, `resourceList: required`}},
		{"not a list", `{"resourceList":{}}`, []string{`resourceList: want a list`}},
		{"not JSON", `{"resourceList":[`, []string{`not JSON: unexpected end of JSON input`}},
		{"not an object", `[]`, []string{`want an object`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ParseDevicePluginConfig([]byte(tt.json))
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrInvalid)
			assert.Equal(t, tt.want, strings.Split(err.Error(), "\n"))
			var ce *ConfigError
			assert.True(t, errors.As(err, &ce))
		})
	}
}

func TestIndexSet(t *testing.T) {
	s, ok := parseIndexSet("1,3,5-9,23")
	require.True(t, ok)
	var in []int
	for i := range 30 {
		if s.Contains(i) {
			in = append(in, i)
		}
	}
	assert.Equal(t, []int{1, 3, 5, 6, 7, 8, 9, 23}, in)
}

func FuzzParseDevicePluginConfig(f *testing.F) {
	f.Add([]byte(sampleDPConfig))
	f.Add([]byte(`{"resourceList":[{"resourceName":"a","selectors":{"pfNames":["p0#1-3"]}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, _, err := ParseDevicePluginConfig(data)
		if err != nil {
			if cfg != nil {
				t.Fatal("config returned with an error")
			}
			return
		}
		for _, r := range cfg.Resources {
			if r.Name == "" || r.Prefix == "" || len(r.Selectors) == 0 {
				t.Fatalf("accepted incomplete resource %+v", r)
			}
			for _, s := range r.Selectors {
				for _, fs := range append(s.PFNames, s.RootDevices...) {
					for _, rg := range fs.VFs {
						if rg.First < 0 || rg.Last < rg.First {
							t.Fatalf("accepted bad range %+v", rg)
						}
					}
				}
			}
		}
	})
}
