package vfmgr

import "errors"

// Sentinel errors, wrapped with the operation and object.
var (
	// ErrNotFound: no such PF, VF, pool or allocation.
	ErrNotFound = errors.New("not found")
	// ErrInvalid: a request or setting is malformed.
	ErrInvalid = errors.New("invalid")
	// ErrUnsupported: the driver cannot do what was asked.
	ErrUnsupported = errors.New("not supported")
	// ErrNotApplied: the device accepted a change but reading it back shows
	// the old value (a fixed feature, a driver ignoring a setting).
	ErrNotApplied = errors.New("change not applied")
	// ErrExhausted: a pool has no free VF.
	ErrExhausted = errors.New("pool exhausted")
	// ErrConflict: the owner already holds a VF from another pool.
	ErrConflict = errors.New("conflict")
)
