package main

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
)

// traceCmd is "offloadctl trace": inject packets into an emulated NIC's
// datapath and print their path, like ovs-appctl ofproto/trace.
func (c *cli) traceCmd() *cobra.Command {
	var port, pcapFile, frameHex string
	cmd := &cobra.Command{
		Use:   "trace --port PORT [SPEC | --pcap FILE | --frame HEX]",
		Short: "Send a packet through an emulated NIC and show its path: tables, actions, outputs",
		Long: "Inject a packet at PORT of an emulated NIC and print every table consulted (plane, chain, priority,\n" +
			"flow, match or not), every action with the fields it changed, conntrack lookups, the frames that\n" +
			"left and the verdict. The packet really goes through: counters, conntrack and police change.\n" +
			"Only the emulated backend has a datapath; a daemon on real NICs answers Unimplemented.\n\n" +
			"The packet is a spec, a pcap (or pcapng) file whose packets are sent in order, or a frame in hex.\n" +
			"Spec keywords: tcp udp sctp icmp icmp6 arp ip ipv6; keys: eth_src eth_dst vlan cvlan src dst ttl tos\n" +
			"proto frag sport dport flags seq ack type code id op len payload vni tun_src tun_dst tun_sport\n" +
			"tun_dport tun_ttl; unspecified fields take defaults for the port (a representor's VM MAC as source).\n\n" +
			"Examples:\n" +
			"  offloadctl trace --port pf0vf0 'tcp,src=10.0.0.10,dst=10.0.1.5,dport=80'\n" +
			"  offloadctl trace --port p0 'udp,eth_dst=02:42:0f:01:00:00,dst=10.0.0.10,vni=100,tun_dst=192.0.2.1'\n" +
			"  offloadctl trace --port p0 --pcap capture.pcap -o json\n" +
			"  offloadctl trace stats",
		RunE: func(cmd *cobra.Command, args []string) error {
			var pkts [][]byte
			switch n := boolCount(len(args) > 0, pcapFile != "", frameHex != ""); {
			case len(args) > 1:
				return usageErrorf("unexpected argument %q: quote the packet spec", args[1])
			case n == 0:
				return usageErrorf("trace needs a packet: a spec, --pcap FILE or --frame HEX")
			case n > 1:
				return usageErrorf("give one of a spec, --pcap and --frame")
			case port == "":
				return usageErrorf("--port is required")
			case pcapFile != "":
				var err error
				if pkts, err = readPcap(pcapFile); err != nil {
					return usageErrorf("%v", err)
				}
			case frameHex != "":
				b, err := hex.DecodeString(strings.ReplaceAll(strings.TrimPrefix(frameHex, "0x"), ":", ""))
				if err != nil {
					return usageErrorf("--frame: %v", err)
				}
				pkts = [][]byte{b}
			}
			reqs := make([]*v1.InjectPacketRequest, 0, max(len(pkts), 1))
			if len(args) == 1 {
				reqs = append(reqs, &v1.InjectPacketRequest{Port: port, Packet: &v1.InjectPacketRequest_Spec{Spec: args[0]}})
			}
			for _, p := range pkts {
				reqs = append(reqs, &v1.InjectPacketRequest{Port: port, Packet: &v1.InjectPacketRequest_Frame{Frame: p}})
			}
			return c.inject(cmd, reqs, pcapFile != "")
		},
	}
	f := cmd.Flags()
	f.StringVar(&port, "port", "", "port the packet arrives at: a representor, an uplink, a VF netdev (the VM sends) or a tunnel device")
	f.StringVar(&pcapFile, "pcap", "", "send every packet of this pcap or pcapng file, in order")
	f.StringVar(&frameHex, "frame", "", "send this Ethernet frame, in hex")
	cmd.AddCommand(c.traceStatsCmd())
	return cmd
}

func boolCount(bs ...bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

func (c *cli) datapathClient() (v1.DatapathServiceClient, error) {
	conn, err := c.client()
	if err != nil {
		return nil, err
	}
	return v1.NewDatapathServiceClient(conn), nil
}

// inject sends the requests in order and prints each trace; with many
// (a pcap), a summary of the verdicts follows.
func (c *cli) inject(cmd *cobra.Command, reqs []*v1.InjectPacketRequest, many bool) error {
	dc, err := c.datapathClient()
	if err != nil {
		return err
	}
	resps := make([]*v1.InjectPacketResponse, 0, len(reqs))
	for i, req := range reqs {
		ctx, cancel := c.rpcContext(cmd)
		resp, err := dc.InjectPacket(ctx, req)
		cancel()
		if err != nil {
			op := "inject packet"
			if many {
				op = fmt.Sprintf("inject packet %d of %d", i+1, len(reqs))
			}
			return rpcError(op, err)
		}
		resps = append(resps, resp)
		if c.output == "table" {
			if many {
				fmt.Fprintf(c.stdout, "=== packet %d of %d\n", i+1, len(reqs))
			}
			fmt.Fprint(c.stdout, resp.GetText())
			if many && i < len(reqs)-1 {
				fmt.Fprintln(c.stdout)
			}
		}
	}
	if c.output != "table" {
		if !many {
			return printMessage(c.stdout, c.output, resps[0])
		}
		return printMessages(c.stdout, c.output, resps)
	}
	if many {
		fmt.Fprintf(c.stdout, "\n%s\n", verdictSummary(resps))
	}
	return nil
}

// printMessages prints responses as one JSON (or YAML) list.
func printMessages(w io.Writer, format string, resps []*v1.InjectPacketResponse) error {
	var b bytes.Buffer
	b.WriteString("[")
	for i, r := range resps {
		m, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(r)
		if err != nil {
			return fmt.Errorf("encode trace %d: %w", i+1, err)
		}
		if i > 0 {
			b.WriteString(",")
		}
		b.Write(m)
	}
	b.WriteString("]")
	if format == "json" {
		var out bytes.Buffer
		if err := json.Indent(&out, b.Bytes(), "", "  "); err != nil {
			return fmt.Errorf("indent traces: %w", err)
		}
		return printJSON(w, format, out.Bytes())
	}
	return printJSON(w, format, b.Bytes())
}

// verdictSummary counts verdicts: "3 packets: 2 forwarded, 1 dropped".
func verdictSummary(resps []*v1.InjectPacketResponse) string {
	counts := map[string]int{}
	for _, r := range resps {
		counts[enumWord(r.GetTrace().GetVerdict())]++
	}
	words := make([]string, 0, len(counts))
	for w := range counts {
		words = append(words, w)
	}
	sort.Strings(words)
	parts := make([]string, len(words))
	for i, w := range words {
		parts[i] = fmt.Sprintf("%d %s", counts[w], w)
	}
	noun := "packets"
	if len(resps) == 1 {
		noun = "packet"
	}
	return fmt.Sprintf("%d %s: %s", len(resps), noun, strings.Join(parts, ", "))
}

// readPcap reads the Ethernet frames of a pcap or pcapng file.
func readPcap(path string) ([][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read pcap: %w", err)
	}
	defer f.Close()
	br := bufio.NewReader(f)
	magic, err := br.Peek(4)
	if err != nil {
		return nil, fmt.Errorf("read pcap %s: %w", path, err)
	}
	type source interface {
		ReadPacketData() ([]byte, gopacket.CaptureInfo, error)
		LinkType() layers.LinkType
	}
	var src source
	if bytes.Equal(magic, []byte{0x0a, 0x0d, 0x0d, 0x0a}) {
		src, err = pcapgo.NewNgReader(br, pcapgo.DefaultNgReaderOptions)
	} else {
		src, err = pcapgo.NewReader(br)
	}
	if err != nil {
		return nil, fmt.Errorf("read pcap %s: %w", path, err)
	}
	if lt := src.LinkType(); lt != layers.LinkTypeEthernet {
		return nil, fmt.Errorf("read pcap %s: link type %s, want Ethernet", path, lt)
	}
	var out [][]byte
	for {
		data, _, err := src.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read pcap %s: packet %d: %w", path, len(out)+1, err)
		}
		out = append(out, bytes.Clone(data))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("read pcap %s: no packets", path)
	}
	return out, nil
}

func (c *cli) traceStatsCmd() *cobra.Command {
	var port string
	cmd := &cobra.Command{
		Use:   "stats [--port PORT]",
		Short: "Show the emulated datapath's per-port counters: rx, tx, drops, upcalls, delivered",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dc, err := c.datapathClient()
			if err != nil {
				return err
			}
			ctx, cancel := c.rpcContext(cmd)
			defer cancel()
			resp, err := dc.GetDatapathStats(ctx, &v1.GetDatapathStatsRequest{Port: port})
			if err != nil {
				return rpcError("get datapath stats", err)
			}
			if c.output != "table" {
				return printMessage(c.stdout, c.output, resp)
			}
			renderDatapathStats(c.stdout, resp.GetPorts())
			return nil
		},
	}
	cmd.Flags().StringVar(&port, "port", "", "only this port")
	return cmd
}

func renderDatapathStats(w io.Writer, ports []*v1.PortDatapathStats) {
	if len(ports) == 0 {
		fmt.Fprintln(w, "No traffic yet.")
		return
	}
	tw := newTable(w)
	row(tw, "PORT", "DEVICE", "RX PKTS", "RX BYTES", "TX PKTS", "TX BYTES", "DROPS", "UPCALLS", "DELIVERED")
	for _, p := range ports {
		row(tw, p.GetPort(), p.GetDevice(), count(p.GetRxPackets()), count(p.GetRxBytes()), count(p.GetTxPackets()),
			count(p.GetTxBytes()), count(p.GetDrops()), count(p.GetUpcalls()), count(p.GetDelivered()))
	}
	tw.Flush()
}
