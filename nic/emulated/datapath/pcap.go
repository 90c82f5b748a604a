package datapath

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// snapLen is the capture length written in pcap headers.
const snapLen = 262144

// Capture writes frames to a pcap stream with the datapath clock's
// timestamps. It is safe for concurrent use.
type Capture struct {
	mu sync.Mutex
	w  *pcapgo.Writer
}

// NewCapture writes a pcap file header (Ethernet, nanosecond timestamps)
// to w and returns a Capture writing to it.
func NewCapture(w io.Writer) (*Capture, error) {
	pw := pcapgo.NewWriterNanos(w)
	if err := pw.WriteFileHeader(snapLen, layers.LinkTypeEthernet); err != nil {
		return nil, fmt.Errorf("write pcap header: %w", err)
	}
	return &Capture{w: pw}, nil
}

func (c *Capture) write(at time.Time, frame []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	ci := gopacket.CaptureInfo{Timestamp: at, CaptureLength: len(frame), Length: len(frame)}
	return c.w.WritePacket(ci, frame)
}

// Write writes one frame captured at at.
func (c *Capture) Write(at time.Time, frame []byte) error {
	if err := c.write(at, frame); err != nil {
		return fmt.Errorf("write pcap packet: %w", err)
	}
	return nil
}

// SetCapture makes the datapath write every output frame (wire, VM, host
// and upcall) to c; nil stops capturing.
func (dp *Datapath) SetCapture(c *Capture) {
	dp.mu.Lock()
	defer dp.mu.Unlock()
	dp.capture = c
}

// Packet is one frame read from a capture.
type Packet struct {
	Time  time.Time
	Frame []byte
}

// ReadPcap reads every Ethernet frame of a pcap or pcapng stream.
func ReadPcap(r io.Reader) ([]Packet, error) {
	br := bufio.NewReader(r)
	magic, err := br.Peek(4)
	if err != nil {
		return nil, fmt.Errorf("read pcap: %w", err)
	}
	type source interface {
		ReadPacketData() ([]byte, gopacket.CaptureInfo, error)
	}
	var src source
	if bytes.Equal(magic, []byte{0x0a, 0x0d, 0x0d, 0x0a}) {
		ng, err := pcapgo.NewNgReader(br, pcapgo.DefaultNgReaderOptions)
		if err != nil {
			return nil, fmt.Errorf("read pcapng: %w", err)
		}
		if lt := ng.LinkType(); lt != layers.LinkTypeEthernet {
			return nil, fmt.Errorf("read pcapng: link type %s, want Ethernet", lt)
		}
		src = ng
	} else {
		pr, err := pcapgo.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("read pcap: %w", err)
		}
		if lt := pr.LinkType(); lt != layers.LinkTypeEthernet {
			return nil, fmt.Errorf("read pcap: link type %s, want Ethernet", lt)
		}
		src = pr
	}
	var out []Packet
	for {
		data, ci, err := src.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("read pcap packet %d: %w", len(out)+1, err)
		}
		out = append(out, Packet{Time: ci.Timestamp, Frame: bytes.Clone(data)})
	}
}

// InjectPcap injects every frame of a pcap or pcapng stream at port, in
// order, and returns their traces.
func (dp *Datapath) InjectPcap(port string, r io.Reader) ([]*Trace, error) {
	pkts, err := ReadPcap(r)
	if err != nil {
		return nil, fmt.Errorf("inject pcap on %s: %w", port, err)
	}
	out := make([]*Trace, 0, len(pkts))
	for i, p := range pkts {
		tr, err := dp.Inject(port, p.Frame)
		if err != nil {
			return out, fmt.Errorf("inject pcap packet %d on %s: %w", i+1, port, err)
		}
		out = append(out, tr)
	}
	return out, nil
}
