//go:build !linux

package main

import (
	"context"

	"github.com/offloadd/offloadd/nic"
)

// run needs Linux: tc flower, network namespaces and rtnetlink.
func run(context.Context, config) (*Report, error) { return nil, nic.ErrNotImplemented }
