package tcflower

import (
	"errors"
	"math"

	"github.com/offloadd/offloadd/offload/flow"
)

// tickInUsec is iproute2's tick_in_usec: /proc/net/psched gives
// t2us=1000, us2t=64 and a 1 GHz clock on every kernel since 2.6.32.
const tickInUsec = 1000.0 / 64

// xmittime is iproute2's tc_calc_xmittime since 6.2: the ticks that
// sending size units at rate units per second takes, rounded up. iproute2
// 6.1 and older truncate the time to whole microseconds first and then
// truncate the ticks; for bursts that take a whole number of microseconds
// at their rate (the corpus uses such) both give the same value.
func xmittime(rate, size uint64) uint32 {
	v := math.Ceil(1e6 * (float64(size) / float64(rate)) * tickInUsec)
	if v > math.MaxUint32 {
		return math.MaxUint32
	}
	return uint32(v)
}

// xmitsize inverts xmittime: the largest size whose time is ticks.
func xmitsize(rate uint64, ticks uint64) uint64 {
	if rate == 0 {
		return 0
	}
	guess := uint64(float64(rate) * (float64(ticks) / tickInUsec) / 1e6)
	for s := guess + 2; s+4 > guess && s > 0; s-- {
		if uint64(xmittime(rate, s)) == ticks {
			return s
		}
	}
	return guess
}

func control(v flow.Verdict, dflt int32) int32 {
	switch v {
	case flow.VerdictPipe:
		return actPipe
	case flow.VerdictDrop:
		return actShot
	case flow.VerdictAccept:
		return actOK
	case flow.VerdictContinue:
		return -1 // TC_ACT_UNSPEC, tc's "continue"
	}
	return dflt
}

func verdict(c int32, dflt int32) flow.Verdict {
	if c == dflt {
		return flow.VerdictDefault
	}
	switch c {
	case actPipe:
		return flow.VerdictPipe
	case actShot:
		return flow.VerdictDrop
	case actOK:
		return flow.VerdictAccept
	case -1:
		return flow.VerdictContinue
	}
	return flow.VerdictDefault
}

// police appends a police action the way iproute2's m_police builds it:
// tc_police with the rate spec (cell_log 3 for the default 2047-byte mtu,
// ethernet link layer), burst in ticks, the 256-entry rate table, RATE64
// above 32 bits; for packet rates PKTRATE64 and PKTBURST64 in ticks.
func (e *Encoder) police(p *flow.Police) error {
	if p == nil {
		return errors.New("missing police parameters")
	}
	if (p.RateBytes == 0) == (p.RatePackets == 0) {
		return errors.New("police needs a byte rate or a packet rate")
	}
	o, opts, err := e.beginAct("police")
	if err != nil {
		return err
	}
	w := &e.w
	exceed := control(p.Exceed, actShot)
	conform := control(p.Conform, actPipe)
	w.hdr(policeTBF, tcPoliceLen)
	w.b = native.AppendUint32(w.b, 0) // index
	w.b = native.AppendUint32(w.b, uint32(exceed))
	w.b = native.AppendUint32(w.b, 0) // limit
	const cellLog = 3                 // smallest with 2047>>cell_log <= 255
	if p.RateBytes != 0 {
		w.b = native.AppendUint32(w.b, xmittime(p.RateBytes, uint64(p.Burst)))
		w.b = native.AppendUint32(w.b, 0) // mtu
		w.b = append(w.b, cellLog, 1)     // cell_log, linklayer ethernet
		w.b = native.AppendUint16(w.b, 0) // overhead
		w.b = native.AppendUint16(w.b, 0xffff)
		w.b = native.AppendUint16(w.b, 0) // mpu
		w.b = native.AppendUint32(w.b, uint32(min(p.RateBytes, math.MaxUint32)))
	} else {
		w.b = native.AppendUint32(w.b, 0) // burst
		w.b = native.AppendUint32(w.b, 0) // mtu
		w.b = append(w.b, make([]byte, 12)...)
	}
	w.b = append(w.b, make([]byte, 12+12)...) // peakrate, refcnt, bindcnt, capab
	if p.RateBytes != 0 {
		w.hdr(policeRate, 1024)
		for i := range uint64(256) {
			w.b = native.AppendUint32(w.b, xmittime(p.RateBytes, (i+1)<<cellLog))
		}
		if p.RateBytes >= 1<<32 {
			w.u64(policeRate64, p.RateBytes)
		}
	}
	if conform != 0 {
		w.u32(policeResult, uint32(conform))
	}
	if p.RatePackets != 0 {
		w.u64(policePktRate64, p.RatePackets)
		w.u64(policePktBurst64, uint64(xmittime(p.RatePackets, uint64(p.Burst))))
	}
	e.endAct(o, opts)
	return nil
}

func decodePolice(opts []byte) (*flow.Police, error) {
	var tb [policePktBurst64 + 1][]byte
	if err := parseTable(opts, tb[:]); err != nil {
		return nil, err
	}
	t := tb[policeTBF]
	if len(t) < tcPoliceLen {
		return nil, errors.New("police without tc_police")
	}
	p := &flow.Police{}
	exceed := int32(native.Uint32(t[4:]))
	burst := native.Uint32(t[12:])
	rate32 := native.Uint32(t[28:])
	var conform int32
	if v, ok := getU32(tb[policeResult]); ok {
		conform = int32(v)
	}
	p.Exceed = verdict(exceed, actShot)
	p.Conform = verdict(conform, actPipe)
	if rate32 != 0 {
		p.RateBytes = uint64(rate32)
		if v, ok := getU64(tb[policeRate64]); ok {
			p.RateBytes = v
		}
		p.Burst = uint32(xmitsize(p.RateBytes, uint64(burst)))
	}
	if v, ok := getU64(tb[policePktRate64]); ok && v != 0 {
		p.RatePackets = v
		b, _ := getU64(tb[policePktBurst64])
		p.Burst = uint32(xmitsize(v, b))
	}
	return p, nil
}
