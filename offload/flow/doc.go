// Package flow is offloadd's flow model: one rule with its ingress port,
// chain, priority, match keys and ordered actions, plus its validation.
//
// The same Flow compiles to a tc-flower filter for either plane (skip_sw for
// hardware, skip_hw for software) and is executed by the emulated NIC. The
// package has no dependencies so every other package can share it.
package flow
