package emulated

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/offload/flow"
)

// Fault makes a plane refuse the flows it matches, on add and replace,
// with Errno and Message as a driver's extended ack would.
type Fault struct {
	// Name identifies the fault for RemoveFault.
	Name  string
	Plane flow.Plane
	Match FaultMatch
	// Errno is what the refusal carries: EOPNOTSUPP, ENOSPC, EIO, ...
	Errno   syscall.Errno
	Message string
	// Count is how many flows the fault refuses before it expires; 0 means forever.
	Count int
}

// FaultMatch selects flows; every field that is set must match, and the
// zero FaultMatch matches every flow.
type FaultMatch struct {
	// Port is the flow's ingress port.
	Port string
	// IDPrefix is a prefix of the flow's ID.
	IDPrefix string
	// Chain is the flow's chain.
	Chain *uint32
	// ActionKind is an action the flow has (0: any).
	ActionKind flow.ActionKind
}

func (m *FaultMatch) matches(f *flow.Flow) bool {
	if m.Port != "" && f.Port != m.Port {
		return false
	}
	if m.IDPrefix != "" && !strings.HasPrefix(f.ID, m.IDPrefix) {
		return false
	}
	if m.Chain != nil && f.Chain != *m.Chain {
		return false
	}
	return m.ActionKind == 0 || f.ActionKinds().Has(m.ActionKind)
}

// activeFault is a fault with its remaining count.
type activeFault struct {
	Fault
	left int // remaining refusals when Count > 0
}

func (f Fault) check() error {
	switch {
	case f.Name == "":
		return fmt.Errorf("fault has no name")
	case f.Plane != flow.Hardware && f.Plane != flow.Software:
		return fmt.Errorf("fault %q: unknown plane %d", f.Name, f.Plane)
	case f.Errno == 0:
		return fmt.Errorf("fault %q: errno must not be 0", f.Name)
	case f.Count < 0:
		return fmt.Errorf("fault %q: count %d is negative", f.Name, f.Count)
	}
	return nil
}

// AddFault starts refusing flows that match f. A fault with the same name
// is an error wrapping nic.ErrExists.
func (d *Device) AddFault(f Fault) error {
	if err := f.check(); err != nil {
		return fmt.Errorf("add fault: %w", err)
	}
	if f.Match.Chain != nil {
		c := *f.Match.Chain
		f.Match.Chain = &c
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return fmt.Errorf("add fault %q: %w", f.Name, nic.ErrClosed)
	}
	for _, a := range d.faults {
		if a.Name == f.Name {
			return fmt.Errorf("add fault %q: %w", f.Name, nic.ErrExists)
		}
	}
	d.faults = append(d.faults, &activeFault{Fault: f, left: f.Count})
	return nil
}

// RemoveFault stops a fault; an unknown name is an error wrapping nic.ErrNotFound.
func (d *Device) RemoveFault(name string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, a := range d.faults {
		if a.Name == name {
			d.faults = append(d.faults[:i], d.faults[i+1:]...)
			return nil
		}
	}
	return fmt.Errorf("remove fault %q: %w", name, nic.ErrNotFound)
}

// Faults lists the active faults in the order they are checked; Count is
// what remains of a counted fault.
func (d *Device) Faults() []Fault {
	d.mu.RLock()
	defer d.mu.RUnlock()
	out := make([]Fault, len(d.faults))
	for i, a := range d.faults {
		out[i] = a.Fault
		if a.Count > 0 {
			out[i].Count = a.left
		}
	}
	return out
}

// SetLatency adds l to every hardware Program call from now on (0 removes it).
func (d *Device) SetLatency(l time.Duration) {
	d.latency.Store(int64(max(l, 0)))
}

// faultFor returns the refusal of the first fault matching f on plane and
// uses up one of its count. Called with d.mu held for writing.
func (d *Device) faultFor(plane flow.Plane, f *flow.Flow) error {
	for i, a := range d.faults {
		if a.Plane != plane || !a.Match.matches(f) {
			continue
		}
		if a.Count > 0 {
			a.left--
			if a.left == 0 {
				d.faults = append(d.faults[:i], d.faults[i+1:]...)
			}
		}
		return nic.Refusal(a.Errno, a.Message)
	}
	return nil
}

// fault converts a spec, reporting problems under path.
func (s FaultSpec) fault(path string) (Fault, []error) {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: %s", path, field, fmt.Sprintf(format, args...)))
	}
	f := Fault{Name: s.Name, Message: s.Message, Count: s.Count,
		Match: FaultMatch{Port: s.Match.Port, IDPrefix: s.Match.IDPrefix, Chain: s.Match.Chain}}
	if s.Name == "" {
		add("name", "must not be empty")
	}
	switch s.Plane {
	case "", "hardware":
		f.Plane = flow.Hardware
	case "software":
		f.Plane = flow.Software
	default:
		add("plane", "%q is not hardware or software", s.Plane)
	}
	if s.Match.Action != "" {
		k, ok := parseActionKind(s.Match.Action)
		if !ok {
			add("match.action", "unknown action kind %q", s.Match.Action)
		}
		f.Match.ActionKind = k
	}
	if s.Errno == "" {
		add("errno", "must not be empty")
	} else if e, ok := parseErrno(s.Errno); !ok {
		add("errno", "unknown errno %q", s.Errno)
	} else {
		f.Errno = e
	}
	if s.Count < 0 {
		add("count", "%d is negative", s.Count)
	}
	return f, errs
}

// Fault converts the spec to a Fault.
func (s FaultSpec) Fault() (Fault, error) {
	f, errs := s.fault("fault")
	if len(errs) > 0 {
		return Fault{}, errs[0]
	}
	return f, nil
}

func parseActionKind(s string) (flow.ActionKind, bool) {
	for k := flow.ActDrop; k <= flow.ActPolice; k++ {
		if k.String() == s {
			return k, true
		}
	}
	return 0, false
}

// errnoNames are the errnos a fault names; others are given as numbers.
var errnoNames = map[string]syscall.Errno{
	"EOPNOTSUPP": syscall.EOPNOTSUPP,
	"ENOSPC":     syscall.ENOSPC,
	"EINVAL":     syscall.EINVAL,
	"EIO":        syscall.EIO,
	"ENOMEM":     syscall.ENOMEM,
	"ENOBUFS":    syscall.ENOBUFS,
	"EBUSY":      syscall.EBUSY,
	"EAGAIN":     syscall.EAGAIN,
	"E2BIG":      syscall.E2BIG,
	"ERANGE":     syscall.ERANGE,
	"ENODEV":     syscall.ENODEV,
	"ENOENT":     syscall.ENOENT,
	"EEXIST":     syscall.EEXIST,
	"EPERM":      syscall.EPERM,
	"ETIMEDOUT":  syscall.ETIMEDOUT,
	"EMSGSIZE":   syscall.EMSGSIZE,
}

func parseErrno(s string) (syscall.Errno, bool) {
	if e, ok := errnoNames[strings.ToUpper(s)]; ok {
		return e, true
	}
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, false
	}
	return syscall.Errno(n), true
}
