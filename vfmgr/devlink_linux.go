package vfmgr

import (
	"fmt"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/representor"
)

// Devlink reads and sets PCI devices' eswitch modes over devlink.
type Devlink struct {
	mu sync.Mutex
	h  *netlink.Handle
}

var _ EswitchSetter = (*Devlink)(nil)

// NewDevlink opens a devlink socket in ns (netns.None(): the caller's).
func NewDevlink(ns netns.NsHandle) (*Devlink, error) {
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_GENERIC)
	if err != nil {
		return nil, fmt.Errorf("open devlink socket: %w", err)
	}
	return &Devlink{h: h}, nil
}

// Close releases the socket.
func (d *Devlink) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.h.Close()
	return nil
}

// EswitchMode reads the mode of pci/<pfPCI>.
// Equivalent to: devlink dev eswitch show pci/PF
func (d *Devlink) EswitchMode(pfPCI string) (nic.EswitchMode, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	dev, err := d.h.DevLinkGetDeviceByName("pci", pfPCI)
	if err != nil {
		return 0, fmt.Errorf("get devlink device pci/%s: %w", pfPCI, err)
	}
	m, err := representor.ParseEswitchMode(dev.Attrs.Eswitch.Mode)
	if err != nil {
		return 0, fmt.Errorf("eswitch mode of pci/%s: %w", pfPCI, err)
	}
	return m, nil
}

// SetEswitchMode sets the mode of pci/<pfPCI>.
// Equivalent to: devlink dev eswitch set pci/PF mode legacy|switchdev
func (d *Devlink) SetEswitchMode(pfPCI string, mode nic.EswitchMode) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	dev, err := d.h.DevLinkGetDeviceByName("pci", pfPCI)
	if err != nil {
		return fmt.Errorf("get devlink device pci/%s: %w", pfPCI, err)
	}
	if err := d.h.DevLinkSetEswitchMode(dev, mode.String()); err != nil {
		return fmt.Errorf("set eswitch mode of pci/%s to %s: %w", pfPCI, mode, err)
	}
	return nil
}
