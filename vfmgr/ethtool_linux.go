package vfmgr

import (
	"fmt"
	"sync"

	"github.com/safchain/ethtool"
	"github.com/vishvananda/netns"

	"github.com/offloadd/offloadd/internal/nsthread"
)

// Ethtool reads and changes netdev features with the ethtool ioctl.
type Ethtool struct {
	mu sync.Mutex
	e  *ethtool.Ethtool
}

var _ FeatureSetter = (*Ethtool)(nil)

// NewEthtool opens an ethtool socket in ns (netns.None(): the caller's).
// The ioctl resolves device names in the socket's namespace, so the socket
// is created on a thread switched into ns (nsthread.In).
func NewEthtool(ns netns.NsHandle) (*Ethtool, error) {
	if !ns.IsOpen() {
		e, err := ethtool.NewEthtool()
		if err != nil {
			return nil, fmt.Errorf("open ethtool socket: %w", err)
		}
		return &Ethtool{e: e}, nil
	}
	var e *ethtool.Ethtool
	err := nsthread.In(ns, func() error {
		var err error
		e, err = ethtool.NewEthtool()
		return err
	})
	if err != nil {
		if e != nil {
			e.Close()
		}
		return nil, fmt.Errorf("open ethtool socket: %w", err)
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
