package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/offloadd/offloadd/internal/nsthread"
	"github.com/offloadd/offloadd/nic/linux/rtnl"
	"github.com/offloadd/offloadd/nic/linux/tcflower"
)

// bed is a fresh network namespace with devs veth pairs (rep0/rep0p, …),
// a clsact qdisc on each repN and a VXLAN device in external mode: one
// measurement's devices.
type bed struct {
	name    string // the namespace's name, for tc -n
	ns      netns.NsHandle
	h       *netlink.Handle
	devs    []string
	ifindex map[string]int32
}

var bedSeq atomic.Int32

// newBed creates the namespace and its devices.
// Equivalent to: ip netns add NAME; ip -n NAME link add repK type veth
// peer name repKp; tc -n NAME qdisc add dev repK clsact; ip -n NAME link
// add vxlan0 type vxlan external dstport 4789.
func newBed(devs int) (_ *bed, err error) {
	b := &bed{name: fmt.Sprintf("kbench-%d-%d", os.Getpid(), bedSeq.Add(1)), ifindex: map[string]int32{}}
	if b.ns, err = newNamedNetns(b.name); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			b.close()
		}
	}()
	if b.h, err = netlink.NewHandleAt(b.ns); err != nil {
		return nil, fmt.Errorf("open netlink handle in netns %s: %w", b.name, err)
	}
	for k := range devs {
		name := devName(k)
		v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name, TxQLen: 1000}, PeerName: name + "p"}
		if err := b.h.LinkAdd(v); err != nil {
			return nil, fmt.Errorf("add veth %s in netns %s: %w", name, b.name, err)
		}
		for _, n := range []string{name, name + "p"} {
			if err := b.up(n); err != nil {
				return nil, err
			}
		}
		q := &netlink.GenericQdisc{QdiscType: "clsact", QdiscAttrs: netlink.QdiscAttrs{LinkIndex: int(b.ifindex[name]),
			Parent: netlink.HANDLE_CLSACT, Handle: netlink.MakeHandle(0xffff, 0)}}
		if err := b.h.QdiscAdd(q); err != nil {
			return nil, fmt.Errorf("add clsact qdisc on %s: %w", name, err)
		}
		b.devs = append(b.devs, name)
	}
	vx := &netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: tunnelDev}, FlowBased: true, Port: vxlanPort}
	if err := b.h.LinkAdd(vx); err != nil {
		return nil, fmt.Errorf("add vxlan device %s: %w", tunnelDev, err)
	}
	if err := b.up(tunnelDev); err != nil {
		return nil, err
	}
	return b, nil
}

func (b *bed) up(name string) error {
	l, err := b.h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("look up link %s in netns %s: %w", name, b.name, err)
	}
	if err := b.h.LinkSetUp(l); err != nil {
		return fmt.Errorf("set link %s up: %w", name, err)
	}
	b.ifindex[name] = int32(l.Attrs().Index)
	return nil
}

// resolve maps a port name to its ifindex (tcflower.Params.Resolve).
func (b *bed) resolve(port string) (int32, error) {
	if i, ok := b.ifindex[port]; ok {
		return i, nil
	}
	return 0, fmt.Errorf("no link %s in netns %s", port, b.name)
}

// portName maps an ifindex of the bed back to its name (tcflower.NameFunc).
func (b *bed) portName(ifindex int32) string {
	for n, i := range b.ifindex {
		if i == ifindex {
			return n
		}
	}
	return ""
}

// count dumps every device's filters and returns how many flower filters
// carry an action list (the dump also lists one empty filter head per
// chain and priority).
func (b *bed) count(ctx context.Context) (int, error) {
	c, err := rtnl.Dial(b.ns)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	n := 0
	var enc tcflower.Encoder
	for _, d := range b.devs {
		enc.Reset()
		msgs, err := c.Dump(ctx, tcflower.RTMGetTFilter, enc.Dump(b.ifindex[d], 0))
		if err != nil {
			return 0, fmt.Errorf("dump filters of %s: %w", d, err)
		}
		for _, m := range msgs {
			f, err := tcflower.Decode(m, nil)
			if err != nil {
				return 0, fmt.Errorf("decode a filter of %s: %w", d, err)
			}
			if f.Flow != nil && len(f.Flow.Actions) > 0 {
				n++
			}
		}
	}
	return n, nil
}

// close deletes the devices (and with them every filter), then the
// namespace. The kernel frees filters in RCU callbacks and work items
// after this returns; settle waits for them.
func (b *bed) close() {
	if b.h != nil {
		for _, n := range append(append([]string(nil), b.devs...), tunnelDev) {
			if l, err := b.h.LinkByName(n); err == nil {
				_ = b.h.LinkDel(l)
			}
		}
		b.h.Close()
	}
	if b.ns.IsOpen() {
		b.ns.Close()
	}
	_ = netns.DeleteNamed(b.name)
}

// newNamedNetns creates a named namespace (so tc -n can enter it)
// without moving the caller's threads into it.
func newNamedNetns(name string) (netns.NsHandle, error) {
	ns := netns.None()
	err := nsthread.Do(func() error {
		var err error
		ns, err = netns.NewNamed(name)
		return err
	})
	if err != nil {
		if ns.IsOpen() {
			ns.Close()
			_ = netns.DeleteNamed(name)
		}
		return netns.None(), fmt.Errorf("create netns %s: %w", name, err)
	}
	return ns, nil
}

// settle waits until the machine is idle: the kernel frees deleted
// filters and devices in the background, and that work must not be
// timed as part of the next run. It returns how long it waited.
func settle(max time.Duration) (time.Duration, error) {
	runtime.GC()
	start := time.Now()
	quiet := 0
	prev, err := cpuTimes()
	if err != nil {
		return 0, err
	}
	for time.Since(start) < max {
		time.Sleep(100 * time.Millisecond)
		cur, err := cpuTimes()
		if err != nil {
			return 0, err
		}
		busy, total := cur.busy-prev.busy, cur.total-prev.total
		prev = cur
		// Under 5% of all CPUs busy, twice in a row.
		if total > 0 && busy*20 < total {
			quiet++
			if quiet == 2 {
				return time.Since(start), nil
			}
			continue
		}
		quiet = 0
	}
	return time.Since(start), nil
}

type cpuStat struct{ busy, total uint64 }

// cpuTimes reads the all-CPU line of /proc/stat.
func cpuTimes() (cpuStat, error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuStat{}, fmt.Errorf("read /proc/stat: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 || fields[0] != "cpu" {
			continue
		}
		// user nice system idle iowait irq softirq steal; guest time
		// (fields 9 and 10) is already counted in user.
		var s cpuStat
		for i, f := range fields[1:min(len(fields), 9)] {
			v, err := strconv.ParseUint(f, 10, 64)
			if err != nil {
				return cpuStat{}, fmt.Errorf("parse /proc/stat cpu field %d: %w", i+1, err)
			}
			s.total += v
			if i != 3 && i != 4 {
				s.busy += v
			}
		}
		return s, nil
	}
	return cpuStat{}, errors.New("no cpu line in /proc/stat")
}
