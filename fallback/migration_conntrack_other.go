//go:build !linux

package fallback

import (
	"context"
	"fmt"

	"github.com/offloadd/offloadd/nic"
)

// KernelConntrack is the Linux kernel's conntrack table; other platforms
// have none.
type KernelConntrack struct{}

var _ ConnTable = (*KernelConntrack)(nil)

// NewKernelConntrack fails with nic.ErrNotImplemented.
func NewKernelConntrack(int) (*KernelConntrack, error) {
	return nil, fmt.Errorf("dial ctnetlink: %w", nic.ErrNotImplemented)
}

// Close does nothing.
func (k *KernelConntrack) Close() error { return nil }

// Dump fails with nic.ErrNotImplemented.
func (k *KernelConntrack) Dump(context.Context, []uint16) ([]ConnEntry, error) {
	return nil, fmt.Errorf("dump conntrack: %w", nic.ErrNotImplemented)
}

// Upsert fails with nic.ErrNotImplemented.
func (k *KernelConntrack) Upsert(_ context.Context, es []ConnEntry) ([]ConnPrev, error) {
	return make([]ConnPrev, len(es)), fmt.Errorf("import conntrack entries: %w", nic.ErrNotImplemented)
}

// Delete fails with nic.ErrNotImplemented.
func (k *KernelConntrack) Delete(context.Context, []ConnKey) error {
	return fmt.Errorf("delete conntrack entries: %w", nic.ErrNotImplemented)
}
