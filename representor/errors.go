package representor

import "errors"

// ErrNotFound: no such PF, VF or port.
var ErrNotFound = errors.New("not found")
