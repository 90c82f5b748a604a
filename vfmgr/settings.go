package vfmgr

import (
	"fmt"
	"net"
	"strings"
)

// LinkState is a VF's administrative link state as the PF sets it.
type LinkState string

// VF link states (IFLA_VF_LINK_STATE_AUTO, _ENABLE, _DISABLE).
const (
	LinkAuto    LinkState = "auto"
	LinkEnable  LinkState = "enable"
	LinkDisable LinkState = "disable"
)

// VLAN is a VF's port VLAN. ID 0 with QoS 0 means none.
type VLAN struct {
	ID  int `json:"id"`
	QoS int `json:"qos,omitempty"`
	// Proto is the TPID: 0 or 0x8100 for 802.1Q, 0x88a8 for 802.1ad.
	Proto uint16 `json:"proto,omitempty"`
}

func (v VLAN) proto() uint16 {
	if v.Proto == 0 {
		return 0x8100
	}
	return v.Proto
}

func (v VLAN) equal(o VLAN) bool {
	return v.ID == o.ID && v.QoS == o.QoS && (v.ID == 0 && v.QoS == 0 || v.proto() == o.proto())
}

// Rate is a VF's transmit rate limits in Mbit/s; 0 means no limit.
type Rate struct {
	MinMbps uint32 `json:"minMbps,omitempty"`
	MaxMbps uint32 `json:"maxMbps,omitempty"`
}

// VFSettings are changes to a VF; a zero field leaves that setting alone.
type VFSettings struct {
	// MAC in colon form; "00:00:00:00:00:00" clears it.
	MAC       string    `json:"mac,omitempty"`
	VLAN      *VLAN     `json:"vlan,omitempty"`
	Trust     *bool     `json:"trust,omitempty"`
	SpoofChk  *bool     `json:"spoofchk,omitempty"`
	LinkState LinkState `json:"linkState,omitempty"`
	Rate      *Rate     `json:"rate,omitempty"`
}

// VFState is a VF's full configuration as read from its PF.
type VFState struct {
	MAC       string    `json:"mac"`
	VLAN      VLAN      `json:"vlan"`
	Trust     bool      `json:"trust"`
	SpoofChk  bool      `json:"spoofchk"`
	LinkState LinkState `json:"linkState"`
	Rate      Rate      `json:"rate"`
}

// Settings returns the settings that bring a VF back to s.
func (s VFState) Settings() VFSettings {
	vlan, rate := s.VLAN, s.Rate
	trust, spoof := s.Trust, s.SpoofChk
	return VFSettings{MAC: s.MAC, VLAN: &vlan, Trust: &trust, SpoofChk: &spoof, LinkState: s.LinkState, Rate: &rate}
}

// IsZero reports whether s changes nothing.
func (s VFSettings) IsZero() bool {
	return s.MAC == "" && s.VLAN == nil && s.Trust == nil && s.SpoofChk == nil && s.LinkState == "" && s.Rate == nil
}

// Validate checks every set field; errors name the field.
func (s VFSettings) Validate() error {
	if s.MAC != "" {
		hw, err := net.ParseMAC(s.MAC)
		if err != nil || len(hw) != 6 {
			return fmt.Errorf("mac: %w: %q is not an Ethernet address", ErrInvalid, s.MAC)
		}
		if hw[0]&1 != 0 {
			return fmt.Errorf("mac: %w: %s is a multicast address", ErrInvalid, s.MAC)
		}
	}
	if v := s.VLAN; v != nil {
		if v.ID < 0 || v.ID > 4094 {
			return fmt.Errorf("vlan.id: %w: %d is outside 0-4094", ErrInvalid, v.ID)
		}
		if v.QoS < 0 || v.QoS > 7 {
			return fmt.Errorf("vlan.qos: %w: %d is outside 0-7", ErrInvalid, v.QoS)
		}
		if v.QoS != 0 && v.ID == 0 {
			return fmt.Errorf("vlan.qos: %w: a priority needs a VLAN ID", ErrInvalid)
		}
		if p := v.proto(); p != 0x8100 && p != 0x88a8 {
			return fmt.Errorf("vlan.proto: %w: %#04x is neither 0x8100 nor 0x88a8", ErrInvalid, v.Proto)
		}
	}
	switch s.LinkState {
	case "", LinkAuto, LinkEnable, LinkDisable:
	default:
		return fmt.Errorf("linkState: %w: %q is not auto, enable or disable", ErrInvalid, s.LinkState)
	}
	if r := s.Rate; r != nil && r.MaxMbps != 0 && r.MinMbps > r.MaxMbps {
		return fmt.Errorf("rate: %w: min %d above max %d Mbit/s", ErrInvalid, r.MinMbps, r.MaxMbps)
	}
	return nil
}

// Delta returns the part of s that differs from cur.
func (s VFSettings) Delta(cur VFState) VFSettings {
	var d VFSettings
	if s.MAC != "" && !sameMAC(s.MAC, cur.MAC) {
		d.MAC = s.MAC
	}
	if s.VLAN != nil && !s.VLAN.equal(cur.VLAN) {
		v := *s.VLAN
		d.VLAN = &v
	}
	if s.Trust != nil && *s.Trust != cur.Trust {
		d.Trust = s.Trust
	}
	if s.SpoofChk != nil && *s.SpoofChk != cur.SpoofChk {
		d.SpoofChk = s.SpoofChk
	}
	if s.LinkState != "" && s.LinkState != cur.LinkState {
		d.LinkState = s.LinkState
	}
	if s.Rate != nil && *s.Rate != cur.Rate {
		r := *s.Rate
		d.Rate = &r
	}
	return d
}

// Apply returns cur with s applied.
func (s VFSettings) Apply(cur VFState) VFState {
	if s.MAC != "" {
		cur.MAC = strings.ToLower(s.MAC)
	}
	if s.VLAN != nil {
		cur.VLAN = *s.VLAN
	}
	if s.Trust != nil {
		cur.Trust = *s.Trust
	}
	if s.SpoofChk != nil {
		cur.SpoofChk = *s.SpoofChk
	}
	if s.LinkState != "" {
		cur.LinkState = s.LinkState
	}
	if s.Rate != nil {
		cur.Rate = *s.Rate
	}
	return cur
}

// String lists the set fields in apply order, for logs and errors.
func (s VFSettings) String() string {
	var parts []string
	if s.MAC != "" {
		parts = append(parts, "mac "+s.MAC)
	}
	if v := s.VLAN; v != nil {
		p := fmt.Sprintf("vlan %d qos %d", v.ID, v.QoS)
		if v.proto() != 0x8100 {
			p += " proto 802.1ad"
		}
		parts = append(parts, p)
	}
	if r := s.Rate; r != nil {
		parts = append(parts, fmt.Sprintf("min_tx_rate %d max_tx_rate %d", r.MinMbps, r.MaxMbps))
	}
	if s.SpoofChk != nil {
		parts = append(parts, "spoofchk "+onOff(*s.SpoofChk))
	}
	if s.Trust != nil {
		parts = append(parts, "trust "+onOff(*s.Trust))
	}
	if s.LinkState != "" {
		parts = append(parts, "state "+string(s.LinkState))
	}
	return strings.Join(parts, " ")
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func sameMAC(a, b string) bool {
	x, err1 := net.ParseMAC(a)
	y, err2 := net.ParseMAC(b)
	if err1 != nil || err2 != nil {
		return strings.EqualFold(a, b)
	}
	return x.String() == y.String()
}

// Bool returns a pointer to b, for VFSettings literals.
func Bool(b bool) *bool { return &b }
