// Command kernel measures the Linux backend inside the kernel VM
// (hack/bench-kernel.sh boots it): how fast flower rules get into a real
// 6.1 kernel through offloadd's codec and transport compared with
// `tc -b`, vishvananda/netlink and the kernel floor (pre-encoded messages
// written with no other user-space work), and how long a restarted daemon
// takes to dump and adopt its installed rules without changing any.
//
// All rules are skip_hw: the VM has veths, not an offloading NIC. The
// VM runs under TCG, so absolute rates are slow; the ratios between runs
// of one VM boot are the figures to read. Results go to stdout as one
// table and to a JSON file.
//
//	kernel [-sizes 10000,50000] [-repeat 5] [-devs 4] [-restart 10000] [-out kernel.json]
package main
