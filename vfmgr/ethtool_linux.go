package vfmgr

import (
	"fmt"
	"runtime"
	"sync"

	"github.com/safchain/ethtool"
	"github.com/vishvananda/netns"
)

// Ethtool reads and changes netdev features with the ethtool ioctl.
type Ethtool struct {
	mu sync.Mutex
	e  *ethtool.Ethtool
}

var _ FeatureSetter = (*Ethtool)(nil)

// NewEthtool opens an ethtool socket in ns (netns.None(): the caller's).
// The ioctl resolves device names in the socket's namespace, so the socket
// is created on a thread switched into ns.
func NewEthtool(ns netns.NsHandle) (*Ethtool, error) {
	if !ns.IsOpen() {
		e, err := ethtool.NewEthtool()
		if err != nil {
			return nil, fmt.Errorf("open ethtool socket: %w", err)
		}
		return &Ethtool{e: e}, nil
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return nil, fmt.Errorf("open ethtool socket: get current netns: %w", err)
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		return nil, fmt.Errorf("open ethtool socket: enter netns: %w", err)
	}
	e, openErr := ethtool.NewEthtool()
	if err := netns.Set(orig); err != nil {
		// The thread is stuck in ns: leave it locked so no other goroutine runs there.
		runtime.LockOSThread()
		if e != nil {
			e.Close()
		}
		return nil, fmt.Errorf("open ethtool socket: leave netns: %w", err)
	}
	if openErr != nil {
		return nil, fmt.Errorf("open ethtool socket: %w", openErr)
	}
	return &Ethtool{e: e}, nil
}

// Close releases the socket.
func (t *Ethtool) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.e.Close()
	return nil
}

// Feature reads one feature.
// Equivalent to: ethtool -k DEV
func (t *Ethtool) Feature(dev, name string) (Feature, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	all, err := t.e.FeaturesWithState(dev)
	if err != nil {
		return Feature{}, fmt.Errorf("get features of %s: %w", dev, err)
	}
	st, ok := all[name]
	if !ok {
		return Feature{}, fmt.Errorf("feature %s of %s: %w", name, dev, ErrNotFound)
	}
	return Feature{Changeable: st.Available, Active: st.Active}, nil
}

// SetFeature requests a feature change. The ioctl succeeds even when the
// driver does not change the feature: read it back with Feature.
// Equivalent to: ethtool -K DEV NAME on|off
func (t *Ethtool) SetFeature(dev, name string, on bool) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.e.Change(dev, map[string]bool{name: on}); err != nil {
		return fmt.Errorf("set feature %s %s on %s: %w", name, onOff(on), dev, err)
	}
	return nil
}
