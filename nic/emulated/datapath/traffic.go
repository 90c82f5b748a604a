package datapath

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"
)

// ManualClock is a clock tests move by hand; pass its Now as Config.Now.
// It is safe for concurrent use.
type ManualClock struct {
	mu sync.Mutex
	t  time.Time
}

// NewManualClock returns a clock standing at start.
func NewManualClock(start time.Time) *ManualClock { return &ManualClock{t: start} }

// Now returns the clock's time.
func (c *ManualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d and returns the new time.
func (c *ManualClock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// Set moves the clock to t.
func (c *ManualClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// Traffic describes generated traffic: Flows distinct flows built from a
// packet spec, Count packets round-robin over them, at Rate on a clock.
type Traffic struct {
	// Port is where the packets enter.
	Port string
	// Spec is the packet template (see BuildFrame). Flow i adds i to the
	// source port (TCP, UDP, SCTP) or ICMP id, and moves to the next
	// source address every 50,000 flows; other packets vary their source
	// address.
	Spec string
	// Flows is the number of distinct flows (default 1).
	Flows int
	// Count is the number of packets (default Flows).
	Count int
	// Rate is packets per second. With Clock set, the clock advances by
	// 1/Rate before every packet after the first (0: all at one instant).
	Rate  float64
	Clock *ManualClock
}

// TrafficReport counts what generated traffic did.
type TrafficReport struct {
	Sent int
	// Verdicts counts packets by verdict.
	Verdicts map[Verdict]int
	// Received counts output frames per "port kind" ("p0 wire",
	// "enp8s0f0v1 vm", "pf0vf2 upcall"), mirror copies included.
	Received      map[string]int
	ReceivedBytes map[string]uint64
	// Offloaded counts packets that never reached the software plane.
	Offloaded int
	// Elapsed is the clock time the traffic took.
	Elapsed time.Duration
}

const flowsPerAddr = 50000

// Generate sends t's traffic through the datapath.
func (dp *Datapath) Generate(t Traffic) (TrafficReport, error) {
	rep := TrafficReport{Verdicts: map[Verdict]int{}, Received: map[string]int{}, ReceivedBytes: map[string]uint64{}}
	if t.Flows <= 0 {
		t.Flows = 1
	}
	if t.Count <= 0 {
		t.Count = t.Flows
	}
	if t.Rate < 0 {
		return rep, errors.New("generate traffic: negative rate")
	}
	d, err := dp.SpecDefaults(t.Port)
	if err != nil {
		return rep, fmt.Errorf("generate traffic: %w", err)
	}
	base, err := parseSpec(t.Spec, d)
	if err != nil {
		return rep, fmt.Errorf("generate traffic: packet spec %q: %w", t.Spec, err)
	}
	frames := make([][]byte, t.Flows)
	for i := range frames {
		s := *base
		s.vary(i)
		if frames[i], err = s.build(); err != nil {
			return rep, fmt.Errorf("generate traffic: flow %d: %w", i, err)
		}
	}
	var start time.Time
	if t.Clock != nil {
		start = t.Clock.Now()
	}
	var step time.Duration
	if t.Rate > 0 {
		step = time.Duration(float64(time.Second) / t.Rate)
	}
	for i := range t.Count {
		if i > 0 && t.Clock != nil && step > 0 {
			t.Clock.Advance(step)
		}
		tr, err := dp.Send(t.Port, frames[i%t.Flows])
		if err != nil {
			return rep, fmt.Errorf("generate traffic: packet %d: %w", i, err)
		}
		rep.Sent++
		rep.Verdicts[tr.Verdict]++
		if !tr.SoftwarePath {
			rep.Offloaded++
		}
		for _, o := range tr.Outputs {
			k := o.Port + " " + o.Kind.String()
			rep.Received[k]++
			rep.ReceivedBytes[k] += uint64(len(o.Frame))
		}
	}
	if t.Clock != nil {
		rep.Elapsed = t.Clock.Now().Sub(start)
	}
	return rep, nil
}

// vary makes flow i of a spec.
func (s *spec) vary(i int) {
	addrStep := i / flowsPerAddr
	switch s.l4 {
	case "tcp", "udp", "sctp":
		s.sport = uint16((int(s.sport)+i%flowsPerAddr-1)%65535 + 1)
	case "icmp", "icmp6":
		s.icmpID += uint16(i % flowsPerAddr)
	default:
		addrStep = i
	}
	if addrStep > 0 && s.src.IsValid() {
		s.src = addAddr(s.src, addrStep)
	}
}

func addAddr(a netip.Addr, n int) netip.Addr {
	b := a.As16()
	carry := uint64(n)
	for i := 15; i >= 0 && carry > 0; i-- {
		v := uint64(b[i]) + carry
		b[i], carry = byte(v), v>>8
	}
	out := netip.AddrFrom16(b)
	if a.Is4() {
		return out.Unmap()
	}
	return out
}
