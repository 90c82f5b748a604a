package emulated

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/offloadd/offloadd/nic"
)

// pciAddr is a PCI function address: domain:bus:device.function.
type pciAddr struct {
	domain uint16
	bus    uint8
	dev    uint8 // 0..31
	fn     uint8 // 0..7
}

func parsePCI(s string) (pciAddr, error) {
	var a pciAddr
	bad := fmt.Errorf("%q is not a PCI address like 0000:08:00.0", s)
	dom, rest, ok := strings.Cut(s, ":")
	if !ok || len(dom) != 4 {
		return a, bad
	}
	bus, rest, ok := strings.Cut(rest, ":")
	if !ok || len(bus) != 2 {
		return a, bad
	}
	dev, fn, ok := strings.Cut(rest, ".")
	if !ok || len(dev) != 2 || len(fn) != 1 {
		return a, bad
	}
	d, err1 := strconv.ParseUint(dom, 16, 16)
	b, err2 := strconv.ParseUint(bus, 16, 8)
	v, err3 := strconv.ParseUint(dev, 16, 8)
	f, err4 := strconv.ParseUint(fn, 16, 8)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil || v > 31 || f > 7 {
		return a, bad
	}
	return pciAddr{domain: uint16(d), bus: uint8(b), dev: uint8(v), fn: uint8(f)}, nil
}

// rid is the routing ID: bus, device and function in 16 bits.
func (a pciAddr) rid() uint16 { return uint16(a.bus)<<8 | uint16(a.dev)<<3 | uint16(a.fn) }

// plus returns the function n routing IDs further, as SR-IOV places VFs
// at First VF Offset + n * VF Stride from the PF. The caller keeps the
// result within the domain (Config.Validate checks it).
func (a pciAddr) plus(n int) pciAddr {
	r := int(a.rid()) + n
	return pciAddr{domain: a.domain, bus: uint8(r >> 8), dev: uint8(r>>3) & 31, fn: uint8(r) & 7}
}

func (a pciAddr) String() string {
	return fmt.Sprintf("%04x:%02x:%02x.%x", a.domain, a.bus, a.dev, a.fn)
}

// netdevName is systemd's predictable name for the function: enp8s0f0,
// or enP1p8s0f0 outside domain 0.
func (a pciAddr) netdevName() string {
	if a.domain != 0 {
		return fmt.Sprintf("enP%dp%ds%df%d", a.domain, a.bus, a.dev, a.fn)
	}
	return fmt.Sprintf("enp%ds%df%d", a.bus, a.dev, a.fn)
}

func uplinkName(pf int) string { return "p" + strconv.Itoa(pf) }

func repName(pf, vf int) string { return fmt.Sprintf("pf%dvf%d", pf, vf) }

// isRepName reports whether name has the representor form pf<N>vf<M>.
func isRepName(name string) bool {
	var pf, vf int
	n, err := fmt.Sscanf(name, "pf%dvf%d", &pf, &vf)
	return err == nil && n == 2 && name == repName(pf, vf)
}

// First VF Offset and VF Stride: VF n of PF 0 is at PF 0's routing ID +
// Ports + n, after the PFs, as on a multi-port ConnectX.
func vfPCI(pf0 pciAddr, ports, vf int) pciAddr { return pf0.plus(ports + vf) }

// MAC plan from the base MAC: uplink i is base+i, VF n is base+0x10000+n,
// representor n is base+0x20000+n, tunnel i is base+0x30000+i. Only the
// low 24 bits change, so the OUI stays.
const (
	macVFOffset     = 0x10000
	macRepOffset    = 0x20000
	macTunnelOffset = 0x30000
)

func macPlus(base [6]byte, n int) [6]byte {
	low := (uint32(base[3])<<16 | uint32(base[4])<<8 | uint32(base[5])) + uint32(n)
	m := base
	m[3], m[4], m[5] = byte(low>>16), byte(low>>8), byte(low)
	return m
}

// switchID is an EUI-64 made from the base MAC, the way drivers derive a
// phys_switch_id from the board's GUID.
func switchID(base [6]byte) string {
	return fmt.Sprintf("%02x%02x%02xfffe%02x%02x%02x", base[0]^2, base[1], base[2], base[3], base[4], base[5])
}

// firmwareFor returns a plausible firmware string for a driver.
func firmwareFor(driver string) string {
	switch driver {
	case "mlx5_core":
		return "22.39.1002 (MT_0000000359)"
	case "nfp":
		return "0.0.3.5 0.22 sriov-2.1.16 nic"
	case "ice":
		return "4.40 0x8001c7d6 1.3534.0"
	}
	return "emulated-1.0"
}

// portLess orders ports: uplinks, representors, VFs, tunnels; then by PF,
// VF and name.
func portLess(a, b *nic.Port) int {
	switch {
	case a.Kind != b.Kind:
		return int(a.Kind) - int(b.Kind)
	case a.PF != b.PF:
		return a.PF - b.PF
	case a.VF != b.VF:
		return a.VF - b.VF
	}
	return strings.Compare(a.Name, b.Name)
}
