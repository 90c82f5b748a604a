// Package sysfstest builds fake sysfs trees for tests: SR-IOV PFs, VFs and
// representor netdevs laid out as the kernel lays them out, below a
// temporary root that representor.SysfsScanner and vfmgr read.
package sysfstest
