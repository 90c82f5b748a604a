// Package nic is offloadd's driver framework: the Device interface the
// engine programs (ports, planes, capacity, events), capability profiles per
// driver and model as data, and the registry that picks a profile for a
// kernel driver. Backends live below it: nic/emulated and nic/linux.
package nic
