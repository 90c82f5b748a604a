// Package fallback owns the software plane's policy: when flows spilled
// from hardware (table full, device error) are promoted back, and the
// live-migration handoff that drains a port's flows to software and moves
// them with their connection state to another node.
//
// It acts only through the engine (package offload), never on devices
// directly, so the engine's state stays the single truth.
package fallback
