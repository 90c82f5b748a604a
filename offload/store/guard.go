package store

import (
	"fmt"
	"runtime/debug"
)

// guard runs fn, which uses bbolt, and turns a panic into an error. bbolt
// panics on some damaged pages ("invalid freelist page", "invalid page
// type"), and reading a mapped page past the end of a truncated file
// faults; with SetPanicOnFault that fault is a panic too, not a crash.
// bbolt rolls the transaction back while the panic unwinds.
func guard(op, path string, fn func() error) (err error) {
	prev := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(prev)
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s %s: %w: bbolt: %v", op, path, ErrDamaged, r)
		}
	}()
	return fn()
}
