package datapath

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/nic/emulated"
	"github.com/offloadd/offloadd/nic/emulated/datapath/conntrack"
	"github.com/offloadd/offloadd/offload/flow"
)

// Device is what the datapath needs from the emulated NIC (*emulated.Device).
type Device interface {
	Port(name string) (nic.Port, bool)
	Ports() []nic.Port
	Profile() *nic.Profile
	// FlowTable is a plane's flows in tc order.
	FlowTable(plane flow.Plane) (*emulated.FlowTable, error)
	// TunnelPort is the tunnel device on a UDP port.
	TunnelPort(dstPort uint16) (nic.Port, bool)
	AddCounters(plane flow.Plane, id string, packets, bytes uint64, at time.Time) error
}

var _ Device = (*emulated.Device)(nil)

// Neighbour is an IP address's MAC, as in the kernel's neighbour table.
type Neighbour struct {
	IP  netip.Addr
	MAC [6]byte
	// Learned is set for entries learned from ARP or NDP; others are static.
	Learned bool
}

// Config tunes a Datapath. The zero value works.
type Config struct {
	// Now is the clock conntrack timeouts, police buckets, counters and
	// capture timestamps run on (default time.Now). Tests pass a ManualClock.
	Now func() time.Time
	// Neighbours are static entries for tunnel next hops.
	Neighbours []Neighbour
	// Gateways are next hops for tunnel destinations without a neighbour
	// entry: the first gateway of the destination's family is used.
	Gateways []netip.Addr
	// NoLearn stops learning neighbours from ARP and NDP frames that reach
	// an uplink's host stack (learning is on by default).
	NoLearn bool
	// LocalAddrs, when set, are the only outer destinations VXLAN frames
	// are decapsulated for; by default any destination is local.
	LocalAddrs []netip.Addr
	// HashSeed seeds the hash that picks VXLAN source ports (the kernel's
	// seed is random per boot).
	HashSeed uint32
	// CTTimeouts are conntrack's timeouts (default conntrack.DefaultTimeouts()).
	CTTimeouts *conntrack.Timeouts
	// MaxDepth bounds redirects to other ports' ingress per packet
	// (default 16); deeper packets are dropped as loops.
	MaxDepth int
	// MaxGotos bounds the gotos one packet takes on one port (default
	// 16, the kernel's max_reclassify_loop in __tcf_classify, which
	// shoots the packet that takes more: "reclassify loop"). Validation
	// refuses goto loops, so only tables programmed around it, or chains
	// deeper than the kernel runs, reach the limit.
	MaxGotos int
}

// PortStats are a port's packet counters in the datapath.
type PortStats struct {
	// RxPackets and RxBytes count frames classified at the port's ingress.
	RxPackets, RxBytes uint64
	// TxPackets and TxBytes count frames sent out of the port: to the wire
	// (uplink), to the VM (representor), into a tunnel (tunnel device).
	TxPackets, TxBytes uint64
	// Drops counts packets dropped while at the port.
	Drops uint64
	// Upcalls counts packets that missed every table at the port.
	Upcalls uint64
	// Delivered counts packets accepted up the port's netdev to the host stack.
	Delivered uint64
}

// Datapath runs packets through an emulated NIC's flow tables: hardware
// plane first, then software, like a switchdev NIC and the kernel. It is
// safe for concurrent use; packets are processed one at a time.
type Datapath struct {
	dev      Device
	now      func() time.Time
	seed     uint32
	learn    bool
	maxDepth int
	maxGotos int
	gateways []netip.Addr
	local    map[netip.Addr]bool
	uplink   string // PF 0's uplink: tunnel traffic leaves here
	ctHW     bool   // the profile offloads conntrack

	mu      sync.Mutex
	ct      *conntrack.Table
	neigh   map[netip.Addr]Neighbour
	buckets map[policeKey]*bucket
	stats   map[string]*PortStats
	planes  [2]*table
	ps      parser
	capture *Capture
}

// New builds a datapath over dev.
func New(dev Device, cfg Config) (*Datapath, error) {
	if dev == nil {
		return nil, errors.New("new datapath: no device")
	}
	dp := &Datapath{dev: dev, now: cfg.Now, seed: cfg.HashSeed, learn: !cfg.NoLearn, maxDepth: cfg.MaxDepth, maxGotos: cfg.MaxGotos,
		gateways: cfg.Gateways, neigh: map[netip.Addr]Neighbour{}, buckets: map[policeKey]*bucket{},
		stats: map[string]*PortStats{}}
	if dp.now == nil {
		dp.now = time.Now
	}
	if dp.maxDepth <= 0 {
		dp.maxDepth = 16
	}
	if dp.maxGotos <= 0 {
		dp.maxGotos = 16
	}
	to := conntrack.DefaultTimeouts()
	if cfg.CTTimeouts != nil {
		to = *cfg.CTTimeouts
	}
	dp.ct = conntrack.New(to)
	if len(cfg.LocalAddrs) > 0 {
		dp.local = map[netip.Addr]bool{}
		for _, a := range cfg.LocalAddrs {
			dp.local[a.Unmap()] = true
		}
	}
	for _, n := range cfg.Neighbours {
		if !n.IP.IsValid() {
			return nil, fmt.Errorf("new datapath: neighbour %x has no IP address", n.MAC)
		}
		n.Learned = false
		dp.neigh[n.IP.Unmap()] = n
	}
	for _, p := range dev.Ports() {
		if p.Kind == nic.PortUplink && (dp.uplink == "" || p.PF == 0) {
			if dp.uplink == "" || p.Name < dp.uplink {
				dp.uplink = p.Name
			}
		}
	}
	if dp.uplink == "" {
		return nil, errors.New("new datapath: the device has no uplink")
	}
	if p := dev.Profile(); p != nil {
		dp.ctHW = p.Actions.Has(flow.ActCT) && p.MatchKeys.Has(flow.KeyCTState)
	}
	return dp, nil
}

// HasPort reports whether the datapath's device has a port of that name.
func (dp *Datapath) HasPort(name string) bool {
	_, ok := dp.dev.Port(name)
	return ok
}

// Conntrack is the connection table, for listing, export and import.
func (dp *Datapath) Conntrack() *conntrack.Table { return dp.ct }

// Now is the datapath's clock.
func (dp *Datapath) Now() time.Time { return dp.now() }

// Inject runs frame through the datapath as if it arrived at port's
// ingress and returns its trace. A frame injected on a VF netdev is one
// the VM sends: it arrives at the VF's representor. A frame injected on a
// tunnel device must be a VXLAN frame; it is decapsulated there.
// The frame is copied; the caller may reuse it.
func (dp *Datapath) Inject(port string, frame []byte) (*Trace, error) {
	return dp.process(port, frame, true)
}

// Send is Inject without recording steps: the trace has the outputs and
// the verdict only. Traffic generators and benchmarks use it.
func (dp *Datapath) Send(port string, frame []byte) (*Trace, error) {
	return dp.process(port, frame, false)
}

// Stats returns every port's counters that saw traffic, by port name.
func (dp *Datapath) Stats() map[string]PortStats {
	dp.mu.Lock()
	defer dp.mu.Unlock()
	out := make(map[string]PortStats, len(dp.stats))
	for n, s := range dp.stats {
		out[n] = *s
	}
	return out
}

// ResetStats zeroes the port counters.
func (dp *Datapath) ResetStats() {
	dp.mu.Lock()
	defer dp.mu.Unlock()
	clear(dp.stats)
}

func (dp *Datapath) portStats(name string) *PortStats {
	s := dp.stats[name]
	if s == nil {
		s = &PortStats{}
		dp.stats[name] = s
	}
	return s
}

// SetNeighbour adds or replaces a static neighbour entry.
// Equivalent to: ip neigh replace IP lladdr MAC dev p0
func (dp *Datapath) SetNeighbour(ip netip.Addr, mac [6]byte) error {
	if !ip.IsValid() {
		return errors.New("set neighbour: no IP address")
	}
	dp.mu.Lock()
	defer dp.mu.Unlock()
	dp.neigh[ip.Unmap()] = Neighbour{IP: ip.Unmap(), MAC: mac}
	return nil
}

// DeleteNeighbour removes an entry and reports whether there was one.
func (dp *Datapath) DeleteNeighbour(ip netip.Addr) bool {
	dp.mu.Lock()
	defer dp.mu.Unlock()
	_, ok := dp.neigh[ip.Unmap()]
	delete(dp.neigh, ip.Unmap())
	return ok
}

// Neighbours lists the neighbour table by IP.
// Equivalent to: ip neigh show
func (dp *Datapath) Neighbours() []Neighbour {
	dp.mu.Lock()
	defer dp.mu.Unlock()
	out := make([]Neighbour, 0, len(dp.neigh))
	for _, n := range dp.neigh {
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b Neighbour) int { return a.IP.Compare(b.IP) })
	return out
}

// nextHop resolves a tunnel destination to a MAC: its own entry, else the
// gateway of its family. Called with dp.mu held.
func (dp *Datapath) nextHop(dst netip.Addr) (netip.Addr, [6]byte, bool) {
	dst = dst.Unmap()
	if n, ok := dp.neigh[dst]; ok {
		return dst, n.MAC, true
	}
	for _, g := range dp.gateways {
		if g.Is4() == dst.Is4() {
			n, ok := dp.neigh[g.Unmap()]
			return g, n.MAC, ok
		}
	}
	return dst, [6]byte{}, false
}

// table returns the compiled flow table of a plane, recompiling it when
// the device's snapshot changed. Called with dp.mu held.
func (dp *Datapath) table(plane flow.Plane) (*table, error) {
	ft, err := dp.dev.FlowTable(plane)
	if err != nil {
		return nil, err
	}
	if t := dp.planes[plane]; t != nil && t.src == ft {
		return t, nil
	}
	t := compileTable(ft)
	dp.planes[plane] = t
	dp.prunePolice(plane, t)
	return t, nil
}
