package vfmgr

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// PCI changes SR-IOV PCI state: VF counts and driver binding.
// Addresses are PCI addresses ("0000:08:00.0").
type PCI interface {
	// NumVFs returns the PF's current VF count.
	NumVFs(pf string) (int, error)
	// SetNumVFs sets the PF's VF count; a no-op when it already is n.
	SetNumVFs(pf string, n int) error
	// Driver returns the device's bound driver, "" when unbound.
	Driver(dev string) (string, error)
	// BindDriver binds the device to driver ("" unbinds it); a no-op when
	// it is bound to driver already.
	BindDriver(dev, driver string) error
}

// AttrFS reads and writes sysfs attributes by path relative to the sysfs
// root ("bus/pci/devices/0000:08:00.0/sriov_numvfs").
type AttrFS interface {
	// ReadAttr returns the attribute's content without surrounding space.
	ReadAttr(rel string) (string, error)
	// WriteAttr writes value to the attribute in one write.
	WriteAttr(rel, value string) error
	// ReadLink returns the target of a symlink.
	ReadLink(rel string) (string, error)
}

// DirFS is an AttrFS on the directory Root ("/sys", or a fake tree).
type DirFS struct {
	Root string
}

var _ AttrFS = DirFS{}

// ReadAttr reads Root/rel.
func (d DirFS) ReadAttr(rel string) (string, error) {
	b, err := os.ReadFile(filepath.Join(d.Root, rel))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// WriteAttr writes value to Root/rel like the shell's "echo value > file".
func (d DirFS) WriteAttr(rel, value string) error {
	f, err := os.OpenFile(filepath.Join(d.Root, rel), os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, werr := f.WriteString(value)
	cerr := f.Close()
	if werr != nil {
		return werr
	}
	return cerr
}

// ReadLink reads the symlink Root/rel.
func (d DirFS) ReadLink(rel string) (string, error) {
	return os.Readlink(filepath.Join(d.Root, rel))
}

// SysfsPCI implements PCI with sysfs writes.
type SysfsPCI struct {
	fs AttrFS
}

var _ PCI = (*SysfsPCI)(nil)

// NewSysfsPCI returns a PCI that writes through fs (DirFS{Root: "/sys"} on a host).
func NewSysfsPCI(fs AttrFS) *SysfsPCI { return &SysfsPCI{fs: fs} }

func devPath(dev string, elem ...string) string {
	return filepath.Join(append([]string{"bus/pci/devices", dev}, elem...)...)
}

// NumVFs reads sriov_numvfs.
func (p *SysfsPCI) NumVFs(pf string) (int, error) {
	return p.readInt(devPath(pf, "sriov_numvfs"))
}

// SetNumVFs writes 0 and then n to sriov_numvfs: the kernel refuses to
// change a non-zero count directly (EBUSY, "%d VFs already enabled").
// Equivalent to: echo 0 > sriov_numvfs; echo n > sriov_numvfs
func (p *SysfsPCI) SetNumVFs(pf string, n int) error {
	total, err := p.readInt(devPath(pf, "sriov_totalvfs"))
	if err != nil {
		return fmt.Errorf("set numvfs of %s to %d: %w", pf, n, err)
	}
	if n < 0 || n > total {
		return fmt.Errorf("set numvfs of %s to %d: %w: the PF supports 0-%d", pf, n, ErrInvalid, total)
	}
	cur, err := p.NumVFs(pf)
	if err != nil {
		return fmt.Errorf("set numvfs of %s to %d: %w", pf, n, err)
	}
	if cur == n {
		return nil
	}
	path := devPath(pf, "sriov_numvfs")
	if cur != 0 {
		if err := p.fs.WriteAttr(path, "0"); err != nil {
			return fmt.Errorf("set numvfs of %s to 0: %w", pf, err)
		}
	}
	if n > 0 {
		if err := p.fs.WriteAttr(path, strconv.Itoa(n)); err != nil {
			return fmt.Errorf("set numvfs of %s to %d: %w", pf, n, err)
		}
	}
	return nil
}

// Driver reads the device's driver link.
func (p *SysfsPCI) Driver(dev string) (string, error) {
	t, err := p.fs.ReadLink(devPath(dev, "driver"))
	if errors.Is(err, fs.ErrNotExist) {
		if !p.exists(dev) {
			return "", fmt.Errorf("driver of %s: %w", dev, ErrNotFound)
		}
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("driver of %s: %w", dev, err)
	}
	return filepath.Base(t), nil
}

// exists reports whether the device directory is there (ReadAttr of a
// directory fails with something other than ErrNotExist).
func (p *SysfsPCI) exists(dev string) bool {
	_, err := p.fs.ReadAttr(devPath(dev))
	return !errors.Is(err, fs.ErrNotExist)
}

// BindDriver unbinds dev from its driver, then binds it to driver through
// driver_override and drivers_probe, and clears driver_override again so
// the binding holds but later probes pick the default driver.
// Equivalent to:
//
//	echo DEV > /sys/bus/pci/drivers/OLD/unbind
//	echo DRIVER > /sys/bus/pci/devices/DEV/driver_override
//	echo DEV > /sys/bus/pci/drivers_probe
//	echo > /sys/bus/pci/devices/DEV/driver_override
func (p *SysfsPCI) BindDriver(dev, driver string) error {
	cur, err := p.Driver(dev)
	if err != nil {
		return fmt.Errorf("bind %s to %q: %w", dev, driver, err)
	}
	if cur == driver {
		return nil
	}
	if cur != "" {
		if err := p.fs.WriteAttr(filepath.Join("bus/pci/drivers", cur, "unbind"), dev); err != nil {
			return fmt.Errorf("unbind %s from %s: %w", dev, cur, err)
		}
	}
	if driver == "" {
		return nil
	}
	override := devPath(dev, "driver_override")
	if err := p.fs.WriteAttr(override, driver); err != nil {
		return fmt.Errorf("set driver_override of %s to %s: %w", dev, driver, err)
	}
	probeErr := p.fs.WriteAttr("bus/pci/drivers_probe", dev)
	if err := p.fs.WriteAttr(override, "\n"); err != nil {
		return fmt.Errorf("clear driver_override of %s: %w", dev, err)
	}
	if probeErr != nil {
		return fmt.Errorf("probe %s with driver %s: %w", dev, driver, probeErr)
	}
	got, err := p.Driver(dev)
	if err != nil {
		return fmt.Errorf("bind %s to %s: %w", dev, driver, err)
	}
	if got != driver {
		return fmt.Errorf("bind %s to %s: %w: bound to %q after probing (driver not loaded?)", dev, driver, ErrNotApplied, got)
	}
	return nil
}

func (p *SysfsPCI) readInt(rel string) (int, error) {
	v, err := p.fs.ReadAttr(rel)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, fmt.Errorf("read %s: %w", rel, ErrNotFound)
		}
		return 0, fmt.Errorf("read %s: %w", rel, err)
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", rel, err)
	}
	return n, nil
}
