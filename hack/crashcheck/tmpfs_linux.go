package main

import (
	"fmt"
	"syscall"
)

// mountTmpfs mounts a tmpfs of size on dir and returns its unmount.
func mountTmpfs(dir, size string) (func(), error) {
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0700"); err != nil {
		return nil, fmt.Errorf("mount a %s tmpfs on %s (needs root): %w", size, dir, err)
	}
	return func() { syscall.Unmount(dir, 0) }, nil
}
