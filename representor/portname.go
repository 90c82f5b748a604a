package representor

import (
	"regexp"
	"strconv"
)

// PortNameKind is what a switchdev phys_port_name names.
type PortNameKind uint8

const (
	// NameNone: no port name or one this package does not understand.
	NameNone PortNameKind = iota
	// NamePhysical: the uplink of a physical port ("p0").
	NamePhysical
	// NamePF: a PF representor ("pf0", "c1pf0"), seen on DPUs for host PFs.
	NamePF
	// NameVF: a VF representor ("pf0vf3", "c1pf0vf3").
	NameVF
	// NameSF: a subfunction representor ("pf0sf3", "c1pf0sf3").
	NameSF
)

var portNameKinds = [...]string{"none", "physical", "pf", "vf", "sf"}

func (k PortNameKind) String() string {
	if int(k) < len(portNameKinds) {
		return portNameKinds[k]
	}
	return "unknown"
}

// PortName is a parsed phys_port_name. The formats are the kernel's
// devlink_compat_phys_port_name_get / __devlink_port_phys_port_name_get:
// "p<port>", "[c<ctrl>]pf<pf>", "[c<ctrl>]pf<pf>vf<vf>", "[c<ctrl>]pf<pf>sf<sf>".
// The pre-devlink mlx5 form (a bare VF number) is not recognised.
type PortName struct {
	Kind PortNameKind
	// Controller is the external controller number, -1 when absent (local).
	Controller int
	// PF is the PF number of pf/vf/sf names.
	PF int
	// Num is the physical port (NamePhysical), VF index (NameVF) or SF number (NameSF).
	Num int
}

var (
	physPortNameRe = regexp.MustCompile(`^p(\d+)$`)
	pfPortNameRe   = regexp.MustCompile(`^(?:c(\d+))?pf(\d+)$`)
	fnPortNameRe   = regexp.MustCompile(`^(?:c(\d+))?pf(\d+)(vf|sf)(\d+)$`)
)

// ParsePortName parses a phys_port_name; unknown forms give Kind NameNone.
func ParsePortName(s string) PortName {
	none := PortName{Kind: NameNone, Controller: -1}
	if m := physPortNameRe.FindStringSubmatch(s); m != nil {
		n, ok := atoi(m[1])
		if !ok {
			return none
		}
		return PortName{Kind: NamePhysical, Controller: -1, Num: n}
	}
	if m := pfPortNameRe.FindStringSubmatch(s); m != nil {
		c, pf, ok := controllerAndPF(m[1], m[2])
		if !ok {
			return none
		}
		return PortName{Kind: NamePF, Controller: c, PF: pf}
	}
	if m := fnPortNameRe.FindStringSubmatch(s); m != nil {
		c, pf, ok := controllerAndPF(m[1], m[2])
		n, ok2 := atoi(m[4])
		if !ok || !ok2 {
			return none
		}
		kind := NameVF
		if m[3] == "sf" {
			kind = NameSF
		}
		return PortName{Kind: kind, Controller: c, PF: pf, Num: n}
	}
	return none
}

func controllerAndPF(c, pf string) (int, int, bool) {
	ctrl := -1
	if c != "" {
		n, ok := atoi(c)
		if !ok {
			return 0, 0, false
		}
		ctrl = n
	}
	p, ok := atoi(pf)
	return ctrl, p, ok
}

func atoi(s string) (int, bool) {
	n, err := strconv.Atoi(s)
	return n, err == nil && n >= 0
}
