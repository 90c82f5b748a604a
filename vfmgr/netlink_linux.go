package vfmgr

import (
	"fmt"
	"net"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
)

// Netlink configures VFs through their PF with rtnetlink (IFLA_VFINFO_LIST).
type Netlink struct {
	mu sync.Mutex
	h  *netlink.Handle
}

var _ VFConfigurer = (*Netlink)(nil)

// NewNetlink opens an rtnetlink socket in ns (netns.None(): the caller's).
func NewNetlink(ns netns.NsHandle) (*Netlink, error) {
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, fmt.Errorf("open rtnetlink socket: %w", err)
	}
	return &Netlink{h: h}, nil
}

// Close releases the socket.
func (n *Netlink) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.h.Close()
	return nil
}

// VFState reads VF vf from the PF's IFLA_VFINFO_LIST.
// Equivalent to: ip link show dev PF
func (n *Netlink) VFState(pf string, vf int) (VFState, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	link, err := n.h.LinkByName(pf)
	if err != nil {
		return VFState{}, fmt.Errorf("get link %s: %w", pf, err)
	}
	for _, info := range link.Attrs().Vfs {
		if info.ID == vf {
			return vfState(info), nil
		}
	}
	return VFState{}, fmt.Errorf("vf %d of %s: %w", vf, pf, ErrNotFound)
}

func vfState(info netlink.VfInfo) VFState {
	s := VFState{
		VLAN:     VLAN{ID: info.Vlan, QoS: info.Qos, Proto: uint16(info.VlanProto)},
		Trust:    info.Trust != 0,
		SpoofChk: info.Spoofchk,
		Rate:     Rate{MinMbps: info.MinTxRate, MaxMbps: info.MaxTxRate},
	}
	if s.VLAN.ID == 0 && s.VLAN.QoS == 0 {
		s.VLAN.Proto = 0
	}
	if len(info.Mac) >= 6 {
		s.MAC = net.HardwareAddr(info.Mac[:6]).String()
	}
	switch info.LinkState {
	case nl.IFLA_VF_LINK_STATE_ENABLE:
		s.LinkState = LinkEnable
	case nl.IFLA_VF_LINK_STATE_DISABLE:
		s.LinkState = LinkDisable
	default:
		s.LinkState = LinkAuto
	}
	return s
}

// SetVF applies the set fields of s, one request each.
// Equivalent to: ip link set dev PF vf N mac M vlan V qos Q [proto 802.1ad]
// min_tx_rate A max_tx_rate B spoofchk on|off trust on|off state auto|enable|disable
func (n *Netlink) SetVF(pf string, vf int, s VFSettings) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	link, err := n.h.LinkByName(pf)
	if err != nil {
		return fmt.Errorf("get link %s: %w", pf, err)
	}
	if s.MAC != "" {
		hw, err := net.ParseMAC(s.MAC)
		if err != nil {
			return fmt.Errorf("set vf %d mac on %s: %w", vf, pf, err)
		}
		if err := n.h.LinkSetVfHardwareAddr(link, vf, hw); err != nil {
			return fmt.Errorf("set vf %d mac %s on %s: %w", vf, s.MAC, pf, err)
		}
	}
	if v := s.VLAN; v != nil {
		if v.proto() == 0x8100 {
			err = n.h.LinkSetVfVlanQos(link, vf, v.ID, v.QoS)
		} else {
			err = n.h.LinkSetVfVlanQosProto(link, vf, v.ID, v.QoS, int(v.proto()))
		}
		if err != nil {
			return fmt.Errorf("set vf %d vlan %d qos %d on %s: %w", vf, v.ID, v.QoS, pf, err)
		}
	}
	if r := s.Rate; r != nil {
		if err := n.h.LinkSetVfRate(link, vf, int(r.MinMbps), int(r.MaxMbps)); err != nil {
			return fmt.Errorf("set vf %d min_tx_rate %d max_tx_rate %d on %s: %w", vf, r.MinMbps, r.MaxMbps, pf, err)
		}
	}
	if s.SpoofChk != nil {
		if err := n.h.LinkSetVfSpoofchk(link, vf, *s.SpoofChk); err != nil {
			return fmt.Errorf("set vf %d spoofchk %s on %s: %w", vf, onOff(*s.SpoofChk), pf, err)
		}
	}
	if s.Trust != nil {
		if err := n.h.LinkSetVfTrust(link, vf, *s.Trust); err != nil {
			return fmt.Errorf("set vf %d trust %s on %s: %w", vf, onOff(*s.Trust), pf, err)
		}
	}
	if s.LinkState != "" {
		state := uint32(nl.IFLA_VF_LINK_STATE_AUTO)
		switch s.LinkState {
		case LinkEnable:
			state = nl.IFLA_VF_LINK_STATE_ENABLE
		case LinkDisable:
			state = nl.IFLA_VF_LINK_STATE_DISABLE
		}
		if err := n.h.LinkSetVfState(link, vf, state); err != nil {
			return fmt.Errorf("set vf %d state %s on %s: %w", vf, s.LinkState, pf, err)
		}
	}
	return nil
}
