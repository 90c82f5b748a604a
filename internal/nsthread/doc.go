// Package nsthread runs code on an OS thread of its own that the code may
// move into another network namespace, as opening a socket or creating a
// namespace there needs, without moving any other goroutine's thread.
package nsthread
