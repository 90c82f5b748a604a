package representor

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestParsePortName(t *testing.T) {
	tests := []struct {
		in   string
		want PortName
	}{
		{"p0", PortName{Kind: NamePhysical, Controller: -1, Num: 0}},
		{"p12", PortName{Kind: NamePhysical, Controller: -1, Num: 12}},
		{"pf0", PortName{Kind: NamePF, Controller: -1, PF: 0}},
		{"c1pf0", PortName{Kind: NamePF, Controller: 1, PF: 0}},
		{"pf0vf3", PortName{Kind: NameVF, Controller: -1, PF: 0, Num: 3}},
		{"pf1vf127", PortName{Kind: NameVF, Controller: -1, PF: 1, Num: 127}},
		{"c1pf0vf3", PortName{Kind: NameVF, Controller: 1, PF: 0, Num: 3}},
		{"pf0sf88", PortName{Kind: NameSF, Controller: -1, PF: 0, Num: 88}},
		{"c2pf1sf4", PortName{Kind: NameSF, Controller: 2, PF: 1, Num: 4}},
		{"", PortName{Kind: NameNone, Controller: -1}},
		{"3", PortName{Kind: NameNone, Controller: -1}},
		{"pf0vf", PortName{Kind: NameNone, Controller: -1}},
		{"p0vf1", PortName{Kind: NameNone, Controller: -1}},
		{"pf0hpf", PortName{Kind: NameNone, Controller: -1}},
		{"p99999999999999999999", PortName{Kind: NameNone, Controller: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			assert.Equal(t, tt.want, ParsePortName(tt.in))
		})
	}
}

func TestParseEswitchMode(t *testing.T) {
	m, err := ParseEswitchMode("switchdev")
	assert.NoError(t, err)
	assert.Equal(t, "switchdev", m.String())
	m, err = ParseEswitchMode("legacy")
	assert.NoError(t, err)
	assert.Equal(t, "legacy", m.String())
	_, err = ParseEswitchMode("")
	assert.Error(t, err)
	_, err = ParseEswitchMode("switchdev_inline")
	assert.ErrorContains(t, err, "switchdev_inline")
}
