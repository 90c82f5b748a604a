// Package kvmselftest proves the kernel-VM test tier works: its tests run
// only inside the VM that hack/kernel-vm/test.sh boots (OFFLOADD_KERNEL=1)
// and check that the kernel there has tc flower, act_ct and conntrack, and
// that iproute2 reports software-only rules and refuses skip_sw on veth the
// way the Linux backend expects. The package has no non-test code.
package kvmselftest
