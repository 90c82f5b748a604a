package vfmgr

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestVFSettingsValidate(t *testing.T) {
	tests := []struct {
		name string
		s    VFSettings
		want string // "" valid
	}{
		{"empty", VFSettings{}, ""},
		{"full", VFSettings{MAC: "02:00:00:00:00:01", VLAN: &VLAN{ID: 4094, QoS: 7, Proto: 0x88a8}, Trust: Bool(true),
			SpoofChk: Bool(false), LinkState: LinkDisable, Rate: &Rate{MinMbps: 10, MaxMbps: 10}}, ""},
		{"zero MAC clears", VFSettings{MAC: "00:00:00:00:00:00"}, ""},
		{"bad MAC", VFSettings{MAC: "02:00:00:00:01"}, "mac: invalid"},
		{"long MAC", VFSettings{MAC: "00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01"}, "mac: invalid"},
		{"multicast MAC", VFSettings{MAC: "01:00:5e:00:00:01"}, "multicast"},
		{"VLAN too high", VFSettings{VLAN: &VLAN{ID: 4095}}, "vlan.id"},
		{"QoS too high", VFSettings{VLAN: &VLAN{ID: 1, QoS: 8}}, "vlan.qos"},
		{"QoS without VLAN", VFSettings{VLAN: &VLAN{QoS: 2}}, "needs a VLAN ID"},
		{"bad proto", VFSettings{VLAN: &VLAN{ID: 1, Proto: 0x0800}}, "vlan.proto"},
		{"bad link state", VFSettings{LinkState: "up"}, "linkState"},
		{"min above max", VFSettings{Rate: &Rate{MinMbps: 20, MaxMbps: 10}}, "rate"},
		{"min without max", VFSettings{Rate: &Rate{MinMbps: 20}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.s.Validate()
			if tt.want == "" {
				assert.NoError(t, err)
				return
			}
			assert.ErrorIs(t, err, ErrInvalid)
			assert.ErrorContains(t, err, tt.want)
		})
	}
}

func TestVFSettingsDeltaApply(t *testing.T) {
	cur := VFState{MAC: "02:00:00:00:00:01", VLAN: VLAN{ID: 10, Proto: 0x8100}, SpoofChk: true, LinkState: LinkAuto}
	tests := []struct {
		name string
		s    VFSettings
		want VFSettings
	}{
		{"nothing", VFSettings{}, VFSettings{}},
		{"same values, other spelling", VFSettings{MAC: "02:00:00:00:00:01", VLAN: &VLAN{ID: 10}, SpoofChk: Bool(true), LinkState: LinkAuto, Rate: &Rate{}}, VFSettings{}},
		{"MAC case", VFSettings{MAC: "02:00:00:00:00:0A"}, VFSettings{MAC: "02:00:00:00:00:0A"}},
		{"VLAN proto", VFSettings{VLAN: &VLAN{ID: 10, Proto: 0x88a8}}, VFSettings{VLAN: &VLAN{ID: 10, Proto: 0x88a8}}},
		{"some", VFSettings{Trust: Bool(true), SpoofChk: Bool(true), Rate: &Rate{MaxMbps: 5}},
			VFSettings{Trust: Bool(true), Rate: &Rate{MaxMbps: 5}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := tt.s.Delta(cur)
			assert.Equal(t, tt.want, d)
			assert.True(t, tt.s.Delta(tt.s.Apply(cur)).IsZero(), "applying s leaves no delta")
		})
	}
	// A state's own settings restore it exactly.
	changed := VFSettings{MAC: "02:00:00:00:00:99", Trust: Bool(true), Rate: &Rate{MaxMbps: 100}}.Apply(cur)
	assert.Equal(t, cur, cur.Settings().Apply(changed))
	// VLAN 0 with any proto is "no VLAN".
	assert.True(t, VFSettings{VLAN: &VLAN{}}.Delta(VFState{VLAN: VLAN{Proto: 0x88a8}}).IsZero())
}

func TestVFSettingsJSON(t *testing.T) {
	s := VFSettings{MAC: "02:00:00:00:00:01", VLAN: &VLAN{ID: 5}, Trust: Bool(false), LinkState: LinkEnable}
	b, err := json.Marshal(s)
	require.NoError(t, err)
	assert.JSONEq(t, `{"mac":"02:00:00:00:00:01","vlan":{"id":5},"trust":false,"linkState":"enable"}`, string(b))
	var back VFSettings
	require.NoError(t, json.Unmarshal(b, &back))
	assert.Equal(t, s, back)
	assert.Equal(t, "mac 02:00:00:00:00:01 vlan 5 qos 0 trust off state enable", s.String())
}
