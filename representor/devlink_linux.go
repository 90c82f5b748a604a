package representor

import (
	"fmt"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/offloadd/offloadd/nic"
)

// Devlink reads eswitch modes over devlink generic netlink.
type Devlink struct {
	mu sync.Mutex
	h  *netlink.Handle
}

var (
	_ EswitchReader = (*Devlink)(nil)
	_ portLister    = (*Devlink)(nil)
)

// NewDevlink opens a devlink socket in the network namespace ns (use
// netns.None() for the caller's own). Devlink instances belong to a netns.
func NewDevlink(ns netns.NsHandle) (*Devlink, error) {
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_GENERIC)
	if err != nil {
		return nil, fmt.Errorf("open devlink socket: %w", err)
	}
	return &Devlink{h: h}, nil
}

// EswitchMode returns the eswitch mode of bus/device.
// Equivalent to: devlink dev eswitch show pci/0000:08:00.0
func (d *Devlink) EswitchMode(bus, device string) (nic.EswitchMode, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	dev, err := d.h.DevLinkGetDeviceByName(bus, device)
	if err != nil {
		return 0, fmt.Errorf("get devlink device %s/%s: %w", bus, device, err)
	}
	return ParseEswitchMode(dev.Attrs.Eswitch.Mode)
}

// Ports lists the devlink ports of every devlink instance in the
// namespace, which discovery hands to sriovnet to find representors.
// Equivalent to: devlink port show
func (d *Devlink) Ports() ([]*netlink.DevlinkPort, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	ports, err := d.h.DevLinkGetAllPortList()
	if err != nil {
		return nil, fmt.Errorf("list devlink ports: %w", err)
	}
	return ports, nil
}

// Close releases the socket.
func (d *Devlink) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.h.Close()
	return nil
}
