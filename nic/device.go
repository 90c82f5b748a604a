package nic

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/offloadd/offloadd/offload/flow"
)

// PortKind says what a port is on a switchdev NIC.
type PortKind uint8

const (
	// PortUplink is the physical port's representor (p0).
	PortUplink PortKind = iota + 1
	// PortRepresentor is a VF representor (pf0vf3) on the host side of the eswitch.
	PortRepresentor
	// PortVF is a VF netdev, the VM/container side of a representor.
	PortVF
	// PortTunnel is a tunnel device (VXLAN in external mode).
	PortTunnel
)

var portKindNames = [...]string{"", "uplink", "representor", "vf", "tunnel"}

func (k PortKind) String() string {
	if int(k) < len(portKindNames) && k != 0 {
		return portKindNames[k]
	}
	return "unknown"
}

// Port is one netdev the device knows about.
type Port struct {
	Name string
	Kind PortKind
	// PhysPortName is the switchdev name: "p0" for an uplink, "pf0vf3" for a representor.
	PhysPortName string
	// SwitchID is shared by the uplink and the representors of one eswitch.
	SwitchID string
	PF       int
	// VF is the VF index, -1 for ports that are not VF-related.
	VF int
	// PCIAddress of the PF (uplink) or VF (vf, representor's VF).
	PCIAddress string
	MAC        [6]byte
	MTU        int
	Up         bool
	// Peer: a representor's VF netdev, a VF's representor ("" if none).
	Peer string
	// TunnelDstPort is the UDP port of a tunnel device.
	TunnelDstPort uint16
}

// EswitchMode is the devlink eswitch mode of a PF.
type EswitchMode uint8

const (
	EswitchLegacy EswitchMode = iota
	EswitchSwitchdev
)

func (m EswitchMode) String() string {
	if m == EswitchSwitchdev {
		return "switchdev"
	}
	return "legacy"
}

// Info describes a device.
type Info struct {
	// Name is the PF netdev of the first port ("p0" when emulated).
	Name            string
	Driver          string // kernel driver: mlx5_core, nfp, ice, ...
	Model           string // "ConnectX-6 Dx"
	Profile         string // capability profile name
	PCIAddress      string
	FirmwareVersion string
	SwitchID        string
	Emulated        bool
	EswitchMode     EswitchMode
	NumVFs          int
	TotalVFs        int
}

// OpKind is a plane operation.
type OpKind uint8

const (
	// OpAdd installs a flow that the plane does not hold.
	OpAdd OpKind = iota + 1
	// OpReplace swaps the plane's copy of a flow for a new version in place.
	OpReplace
	// OpDelete removes the plane's copy of a flow (Flow.ID and Flow.Port are enough).
	OpDelete
)

func (k OpKind) String() string {
	switch k {
	case OpAdd:
		return "add"
	case OpReplace:
		return "replace"
	case OpDelete:
		return "delete"
	}
	return "unknown"
}

// Op is one change to one plane.
type Op struct {
	Kind OpKind
	Flow *flow.Flow
}

// Counters are a flow's statistics in one plane.
type Counters struct {
	Packets  uint64
	Bytes    uint64
	LastUsed time.Time // zero when never hit
}

// Installed is a flow as a plane holds it.
type Installed struct {
	Flow *flow.Flow
	// Plane is where the copy was put: flow.Hardware (skip_sw),
	// flow.Software (skip_hw) or flow.Both (no skip flag).
	Plane flow.Plane
	// InHW is what the device says about where the copy runs (tc in_hw).
	InHW bool
	// InHWCount is the number of hardware devices holding it (tc in_hw_count).
	InHWCount uint32
	// Counters are the copy's hits in its plane; for a flow.Both copy,
	// its hits in software.
	Counters Counters
	// HWCounters are a flow.Both copy's hits in hardware (tc's "Sent
	// hardware"); zero for other copies.
	HWCounters Counters
	// Handle is the backend's identity of the copy (tc filter handle).
	Handle uint32
}

// Adopter is a Device that must be told which flow IDs its installed
// copies may carry before Flows reports them under those IDs (a restart:
// the Linux backend maps tc cookies back to IDs).
type Adopter interface {
	Adopt(ids []string)
}

// AllFlowsReader is a Device that reads every plane in one pass (one dump
// of the kernel's filters instead of three). Use ReadAllFlows.
type AllFlowsReader interface {
	// AllFlows returns what Flows returns for the hardware, software and
	// both planes together; Installed.Plane tells them apart.
	AllFlows(ctx context.Context) ([]Installed, error)
}

// InstallPlanes are the planes a copy can be put in, in the order
// ReadAllFlows reads them.
var InstallPlanes = [...]flow.Plane{flow.Hardware, flow.Software, flow.Both}

// ReadAllFlows returns d's copies in every plane, in one pass when d can.
func ReadAllFlows(ctx context.Context, d Device) ([]Installed, error) {
	if r, ok := d.(AllFlowsReader); ok {
		return r.AllFlows(ctx)
	}
	var out []Installed
	for _, p := range InstallPlanes {
		in, err := d.Flows(ctx, p)
		if err != nil {
			return nil, fmt.Errorf("read %s plane: %w", p, err)
		}
		out = append(out, in...)
	}
	return out, nil
}

// Device is one SmartNIC (one PF and its eswitch) as the engine programs it.
// Implementations are safe for concurrent use.
type Device interface {
	Info() Info
	// Profile is the capability profile of the device's driver and model.
	Profile() *Profile
	Ports() []Port
	SetEswitchMode(ctx context.Context, mode EswitchMode) error

	// Program applies ops to one plane in order and returns one error per op
	// (nil on success). An op that fails leaves that flow's copy as it was.
	// Hardware refusals are *RefusedError. In flow.Both, an add or replace
	// that software took and hardware refused succeeds as far as the copy
	// goes: its error is a *NotInHWError saying why hardware did not take
	// it (tc's not_in_hw with the driver's extack). The device may keep
	// op.Flow: callers must not modify a flow once they have passed it.
	Program(ctx context.Context, plane flow.Plane, ops []Op) []error
	// Flows lists what a plane holds, read back from the device. The flows
	// may be shared with the device: callers must not modify them.
	Flows(ctx context.Context, plane flow.Plane) ([]Installed, error)
	// Capacity reports used and total entries of the hardware table (total 0: unknown).
	Capacity() (used, total int)
	// Events delivers port and capacity changes; it is closed by Close.
	Events() <-chan Event
	Close() error
}

// EventKind names a device event.
type EventKind uint8

const (
	// EventPortAdded: a port appeared (VF created, representor registered).
	EventPortAdded EventKind = iota + 1
	// EventPortRemoved: a port vanished.
	EventPortRemoved
	// EventPortChanged: a port's attributes changed.
	EventPortChanged
	// EventCapacityFreed: hardware entries became free.
	EventCapacityFreed
)

// Event is a change the device reports.
type Event struct {
	Kind EventKind
	Port Port
}

// RefusalKind classifies why a plane refused a flow.
type RefusalKind uint8

const (
	// RefusedUnsupported: the device cannot offload something in the flow (EOPNOTSUPP).
	RefusedUnsupported RefusalKind = iota + 1
	// RefusedNoSpace: the table is full (ENOSPC).
	RefusedNoSpace
	// RefusedDevice: any other device error.
	RefusedDevice
)

func (k RefusalKind) String() string {
	switch k {
	case RefusedUnsupported:
		return "unsupported"
	case RefusedNoSpace:
		return "no-space"
	case RefusedDevice:
		return "device-error"
	}
	return "unknown"
}

// RefusedError is a plane's refusal of a flow, with the device's own words
// (the kernel's extended ack) when it gave any.
type RefusedError struct {
	Kind    RefusalKind
	Errno   syscall.Errno
	Message string
}

func (e *RefusedError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = e.Kind.String()
	}
	if e.Errno != 0 {
		return fmt.Sprintf("%s (%s)", msg, e.Errno.Error())
	}
	return msg
}

// Unwrap lets errors.Is match the errno.
func (e *RefusedError) Unwrap() error {
	if e.Errno == 0 {
		return nil
	}
	return e.Errno
}

// NotInHWError is the answer to a flow.Both add or replace that is
// installed in software but not in hardware: the copy exists, runs in
// software, and Refusal says why hardware did not take it.
type NotInHWError struct {
	Refusal *RefusedError
}

func (e *NotInHWError) Error() string {
	return "installed in software, not in hardware: " + e.Refusal.Error()
}

// Unwrap gives the refusal.
func (e *NotInHWError) Unwrap() error { return e.Refusal }

// NotInHW reports whether err says a flow.Both copy is installed in
// software only, and returns the refusal.
func NotInHW(err error) (*RefusedError, bool) {
	var n *NotInHWError
	if errors.As(err, &n) {
		return n.Refusal, true
	}
	return nil, false
}

// Refusal converts an errno and extack message into a *RefusedError.
func Refusal(errno syscall.Errno, msg string) *RefusedError {
	k := RefusedDevice
	switch errno {
	case syscall.EOPNOTSUPP:
		k = RefusedUnsupported
	case syscall.ENOSPC:
		k = RefusedNoSpace
	}
	return &RefusedError{Kind: k, Errno: errno, Message: msg}
}

// Sentinel errors.
var (
	// ErrNotFound: no such flow or port.
	ErrNotFound = errors.New("not found")
	// ErrExists: the plane already holds a flow with this ID.
	ErrExists = errors.New("already exists")
	// ErrNotImplemented: the backend does not run on this platform.
	ErrNotImplemented = errors.New("not implemented on this platform")
	// ErrClosed: the device was closed.
	ErrClosed = errors.New("device closed")
)
