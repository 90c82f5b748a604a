package linux

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/offloadd/offloadd/nic"
)

// ensureVXLAN creates the tunnel device in external mode unless a link
// of that name exists. Equivalent to: ip link add NAME type vxlan external
// dstport PORT; ip link set NAME up.
func (d *Device) ensureVXLAN(t TunnelConfig) error {
	if _, err := d.h.LinkByName(t.Name); err == nil {
		return nil
	} else if !errors.As(err, new(netlink.LinkNotFoundError)) {
		return fmt.Errorf("look up tunnel device %s: %w", t.Name, err)
	}
	vx := &netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: t.Name}, FlowBased: true, Port: int(t.DstPort)}
	if err := d.h.LinkAdd(vx); err != nil {
		return fmt.Errorf("create vxlan device %s dstport %d: %w", t.Name, t.DstPort, err)
	}
	if err := d.h.LinkSetUp(vx); err != nil {
		return fmt.Errorf("set vxlan device %s up: %w", t.Name, err)
	}
	return nil
}

// withLink fills a port's attributes from its link.
func withLink(p nic.Port, l netlink.Link) nic.Port {
	a := l.Attrs()
	if len(a.HardwareAddr) == 6 {
		copy(p.MAC[:], a.HardwareAddr)
	}
	p.MTU = a.MTU
	p.Up = a.Flags&net.FlagUp != 0
	return p
}

// syncPortsLocked makes d.ports the wanted ports whose links exist and
// returns the events that change implies. d.mu must be held.
func (d *Device) syncPortsLocked() []nic.Event {
	var evs []nic.Event
	for name, want := range d.wanted {
		l, err := d.h.LinkByName(name)
		old, had := d.ports[name]
		if err != nil {
			if had {
				delete(d.ports, name)
				d.dropLinkLocked(name)
				evs = append(evs, nic.Event{Kind: nic.EventPortRemoved, Port: old})
			}
			continue
		}
		p := withLink(want, l)
		idx := int32(l.Attrs().Index)
		if cur, ok := d.ifindex[name]; ok && cur != idx {
			d.dropLinkLocked(name) // the link was recreated under the same name
		}
		d.ifindex[name], d.names[idx] = idx, name
		d.ports[name] = p
		switch {
		case !had:
			evs = append(evs, nic.Event{Kind: nic.EventPortAdded, Port: p})
		case old != p:
			evs = append(evs, nic.Event{Kind: nic.EventPortChanged, Port: p})
		}
	}
	for name, old := range d.ports {
		if _, ok := d.wanted[name]; !ok {
			delete(d.ports, name)
			d.dropLinkLocked(name)
			evs = append(evs, nic.Event{Kind: nic.EventPortRemoved, Port: old})
		}
	}
	return evs
}

// dropLinkLocked forgets what the device cached about a link name.
func (d *Device) dropLinkLocked(name string) {
	if i, ok := d.ifindex[name]; ok {
		delete(d.names, i)
		delete(d.qdisc, i)
		delete(d.ifindex, name)
	}
}

// subscribe starts following link updates in the device's namespace;
// watch turns them into port events until Close.
func (d *Device) subscribe() (<-chan netlink.LinkUpdate, error) {
	ch := make(chan netlink.LinkUpdate, 64)
	opts := netlink.LinkSubscribeOptions{ErrorCallback: func(err error) {
		select {
		case <-d.done:
			return // Close closed the socket: the receive error is expected
		default:
		}
		d.log.Warn("link watch", "err", err)
	}}
	if d.ns.IsOpen() {
		ns := d.ns
		opts.Namespace = &ns
	}
	if err := netlink.LinkSubscribeWithOptions(ch, d.done, opts); err != nil {
		return nil, fmt.Errorf("subscribe to link updates: %w", err)
	}
	return ch, nil
}

func (d *Device) watch(ch <-chan netlink.LinkUpdate) {
	defer d.wg.Done()
	for {
		select {
		case <-d.done:
			return
		case u, ok := <-ch:
			if !ok {
				return
			}
			d.onLink(u)
		}
	}
}

// refresh re-reads the configured ports when Config.RefreshPorts is set.
func (d *Device) refresh() {
	if d.cfg.RefreshPorts == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), refreshTimeout)
	ports, err := d.cfg.RefreshPorts(ctx)
	cancel()
	if err != nil {
		d.log.Warn("refresh ports", "err", err)
		return
	}
	d.mu.Lock()
	d.setWantedLocked(ports)
	d.mu.Unlock()
}

func (d *Device) onLink(u netlink.LinkUpdate) {
	d.refresh()
	d.mu.Lock()
	if u.Header.Type == unix.RTM_DELLINK {
		if n, ok := d.names[int32(u.Index)]; ok {
			d.dropLinkLocked(n)
		}
	}
	evs := d.syncPortsLocked()
	d.mu.Unlock()
	for _, ev := range evs {
		select {
		case d.events <- ev:
		default:
			d.log.Warn("events channel full; dropping a port event", "port", ev.Port.Name, "kind", ev.Kind)
		}
	}
}

// setWantedLocked replaces the configured ports, keeping the uplink and
// the tunnel device.
func (d *Device) setWantedLocked(ports []nic.Port) {
	keep := map[string]nic.Port{}
	if up, ok := d.wanted[d.cfg.Uplink]; ok {
		keep[d.cfg.Uplink] = up
	}
	if d.tun != nil {
		keep[d.tun.Name] = d.wanted[d.tun.Name]
	}
	for _, p := range ports {
		keep[p.Name] = p
	}
	d.wanted = keep
}

const refreshTimeout = 10 * time.Second
