package datapath

import (
	"fmt"
	"time"

	"github.com/offloadd/offloadd/offload/flow"
)

// policeKey names one police action instance: each plane's copy of a
// flow has its own meter, as a hardware meter and tc's police do.
type policeKey struct {
	plane  flow.Plane
	id     string
	action int
}

// bucket is a token bucket. Tokens are bytes (packets in packet mode).
type bucket struct {
	cfg    flow.Police
	tokens float64
	last   time.Time
}

// police meters p on its flow's bucket at now and returns the verdict to
// apply and a trace text. The bucket starts full at Burst and refills at
// the rate; a packet conforms when the bucket holds its size, which it
// then takes. Sizes are what tc police measures at ingress: the frame
// without its 14-byte Ethernet header (one packet in packet mode).
// Equivalent to: tc ... action police rate RATE burst BURST conform-exceed EXCEED/CONFORM
func (dp *Datapath) police(plane flow.Plane, f *flow.Flow, i int, pl *flow.Police, p *pkt, now time.Time) (flow.Verdict, string) {
	k := policeKey{plane: plane, id: f.ID, action: i}
	b := dp.buckets[k]
	if b == nil || b.cfg != *pl {
		b = &bucket{cfg: *pl, tokens: float64(pl.Burst), last: now}
		dp.buckets[k] = b
	}
	rate, size, unit := float64(pl.RateBytes), float64(len(p.buf)-14), "bytes"
	if pl.RateBytes == 0 {
		rate, size, unit = float64(pl.RatePackets), 1, "packets"
	}
	if el := now.Sub(b.last); el > 0 {
		b.tokens += rate * el.Seconds()
		if b.tokens > float64(pl.Burst) {
			b.tokens = float64(pl.Burst)
		}
	}
	b.last = now
	v, what := pl.Exceed, "exceed"
	if b.tokens >= size {
		b.tokens -= size
		v, what = pl.Conform, "conform"
		if v == flow.VerdictDefault {
			v = flow.VerdictPipe
		}
	} else if v == flow.VerdictDefault {
		v = flow.VerdictDrop
	}
	return v, fmt.Sprintf("police: %s (%.0f %s left), %s", what, b.tokens, unit, v)
}

// prunePolice forgets the buckets of flows a plane no longer holds.
func (dp *Datapath) prunePolice(plane flow.Plane, t *table) {
	if len(dp.buckets) == 0 {
		return
	}
	ids := map[string]bool{}
	for _, rs := range t.chains {
		for _, r := range rs {
			ids[r.f.ID] = true
		}
	}
	for k := range dp.buckets {
		if k.plane == plane && !ids[k.id] {
			delete(dp.buckets, k)
		}
	}
}
