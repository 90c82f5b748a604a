//go:build !linux

package representor

import (
	"fmt"

	"github.com/offloadd/offloadd/nic"
)

// findRepresentors returns nic.ErrNotImplemented: sriovnet builds on Linux only.
func (s *SysfsScanner) findRepresentors(*Snapshot, map[string]netdevInfo) error {
	return fmt.Errorf("find representors below %s: %w", s.root, nic.ErrNotImplemented)
}
