// Package store persists the engine's desired state in a bbolt file, so a
// restarted daemon knows its flows and can adopt what the kernel still holds.
package store
