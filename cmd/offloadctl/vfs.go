package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
)

// vfsCmd is "offloadctl vfs": VF pools and their allocations.
func (c *cli) vfsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "vfs",
		Short: "Allocate SR-IOV VFs from pools and release them",
		Long: "Pools come from the daemon's vfPools.config, a file in the SR-IOV network device plugin's format\n" +
			"(resourceList with selectors). An owner holds at most one VF; allocating again for the same owner\n" +
			"returns the same VF, and releasing it restores the VF's original settings and driver.\n\n" +
			"  vfs pools                                      pools with total and free VFs\n" +
			"  vfs allocate --owner X --pool P [--mac ...]    a VF for X, with settings applied\n" +
			"  vfs release --owner X                          give X's VF back\n" +
			"  vfs list [--pool P]                            who holds which VF",
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error {
			return usageErrorf("vfs needs a subcommand: pools, allocate, release or list")
		},
	}
	cmd.AddCommand(c.vfsPoolsCmd(), c.vfsAllocateCmd(), c.vfsReleaseCmd(), c.vfsListCmd())
	return cmd
}

func (c *cli) vfClient() (v1.VfServiceClient, error) {
	conn, err := c.client()
	if err != nil {
		return nil, err
	}
	return v1.NewVfServiceClient(conn), nil
}

func (c *cli) vfsPoolsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "pools",
		Short: "List the VF pools with their selectors and total and free VFs",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			vc, err := c.vfClient()
			if err != nil {
				return err
			}
			ctx, cancel := c.rpcContext(cmd)
			defer cancel()
			resp, err := vc.ListPools(ctx, &v1.ListPoolsRequest{})
			if err != nil {
				return rpcError("list VF pools", err)
			}
			return c.show(resp, func(w io.Writer) { renderPools(w, resp.GetPools()) })
		},
	}
}

// linkStates are the --link-state values.
var linkStates = map[string]v1.VfLinkState{
	"auto":    v1.VfLinkState_VF_LINK_STATE_AUTO,
	"enable":  v1.VfLinkState_VF_LINK_STATE_ENABLE,
	"disable": v1.VfLinkState_VF_LINK_STATE_DISABLE,
}

func (c *cli) vfsAllocateCmd() *cobra.Command {
	var (
		req                 v1.AllocateVfRequest
		mac, linkState, drv string
		vlan, qos, lo, hi   uint32
		trust, spoof        bool
	)
	cmd := &cobra.Command{
		Use:   "allocate --owner OWNER --pool POOL [settings]",
		Short: "Allocate a VF of a pool to an owner and apply settings (unset ones stay as they are)",
		Args:  noArgs,
	}
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if req.Owner == "" || req.Pool == "" {
			return usageErrorf("vfs allocate needs --owner and --pool")
		}
		changed := cmd.Flags().Changed
		s := &v1.VfAllocationSettings{Mac: mac, Driver: drv}
		if changed("vlan") {
			s.Vlan = &vlan
		}
		if changed("qos") {
			s.Qos = &qos
		}
		if changed("trust") {
			s.Trust = &trust
		}
		if changed("spoof-check") {
			s.SpoofCheck = &spoof
		}
		if changed("min-tx-rate") {
			s.MinTxRateMbps = &lo
		}
		if changed("max-tx-rate") {
			s.MaxTxRateMbps = &hi
		}
		if linkState != "" {
			st, ok := linkStates[strings.ToLower(linkState)]
			if !ok {
				return usageErrorf("--link-state %q: want auto, enable or disable", linkState)
			}
			s.LinkState = st
		}
		req.Settings = s
		vc, err := c.vfClient()
		if err != nil {
			return err
		}
		ctx, cancel := c.rpcContext(cmd)
		defer cancel()
		resp, err := vc.AllocateVf(ctx, &req)
		if err != nil {
			return rpcError("allocate VF", err)
		}
		return c.show(resp, func(w io.Writer) { renderAllocations(w, []*v1.VfAllocation{resp.GetAllocation()}) })
	}
	f := cmd.Flags()
	f.StringVar(&req.Owner, "owner", "", "who holds the VF (a VM port ID, namespace/pod/net1)")
	f.StringVar(&req.Pool, "pool", "", "the pool, prefix/resource_name (see 'vfs pools')")
	f.StringVar(&mac, "mac", "", "VF MAC address")
	f.Uint32Var(&vlan, "vlan", 0, "port VLAN ID (0: none)")
	f.Uint32Var(&qos, "qos", 0, "port VLAN priority, with --vlan")
	f.BoolVar(&trust, "trust", false, "trusted VF (--trust=false to clear)")
	f.BoolVar(&spoof, "spoof-check", false, "MAC spoof checking (--spoof-check=false to turn off)")
	f.StringVar(&linkState, "link-state", "", "link state: auto, enable or disable")
	f.Uint32Var(&lo, "min-tx-rate", 0, "minimum transmit rate in Mbit/s")
	f.Uint32Var(&hi, "max-tx-rate", 0, "maximum transmit rate in Mbit/s (0: no limit)")
	f.StringVar(&drv, "driver", "", "bind the VF to this driver (vfio-pci for a VM)")
	return cmd
}

func (c *cli) vfsReleaseCmd() *cobra.Command {
	var owner string
	cmd := &cobra.Command{
		Use:   "release --owner OWNER",
		Short: "Release an owner's VF, restoring its original settings and driver",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if owner == "" {
				return usageErrorf("vfs release needs --owner")
			}
			vc, err := c.vfClient()
			if err != nil {
				return err
			}
			ctx, cancel := c.rpcContext(cmd)
			defer cancel()
			resp, err := vc.ReleaseVf(ctx, &v1.ReleaseVfRequest{Owner: owner})
			if err != nil {
				return rpcError("release VF", err)
			}
			return c.show(resp, func(w io.Writer) { fmt.Fprintln(w, releaseLine(resp.GetReleased())) })
		},
	}
	cmd.Flags().StringVar(&owner, "owner", "", "the owner whose VF is released")
	return cmd
}

func (c *cli) vfsListCmd() *cobra.Command {
	var pool string
	cmd := &cobra.Command{
		Use:   "list [--pool POOL]",
		Short: "List the allocated VFs and their owners",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			vc, err := c.vfClient()
			if err != nil {
				return err
			}
			ctx, cancel := c.rpcContext(cmd)
			defer cancel()
			resp, err := vc.ListAllocations(ctx, &v1.ListAllocationsRequest{Pool: pool})
			if err != nil {
				return rpcError("list VF allocations", err)
			}
			return c.show(resp, func(w io.Writer) { renderAllocations(w, resp.GetAllocations()) })
		},
	}
	cmd.Flags().StringVar(&pool, "pool", "", "only the VFs of this pool")
	return cmd
}

// renderPools prints one row per pool.
func renderPools(w io.Writer, pools []*v1.VfPool) {
	if len(pools) == 0 {
		fmt.Fprintln(w, "no VF pools (the daemon has no vfPools.config)")
		return
	}
	tw := newTable(w)
	row(tw, "POOL", "TOTAL", "FREE", "SELECTORS")
	for _, p := range pools {
		sel := strings.Join(p.GetSelectors(), " | ")
		if p.GetNeedVhostNet() {
			sel += " (vhost-net)"
		}
		row(tw, p.GetName(), count(uint64(p.GetVfsTotal())), count(uint64(p.GetVfsFree())), sel)
	}
	tw.Flush()
}

// renderAllocations prints one row per held VF.
func renderAllocations(w io.Writer, allocs []*v1.VfAllocation) {
	if len(allocs) == 0 {
		fmt.Fprintln(w, "no VFs allocated")
		return
	}
	tw := newTable(w)
	row(tw, "OWNER", "POOL", "PF", "VF", "PCI", "NETDEV", "REPRESENTOR", "SETTINGS")
	for _, a := range allocs {
		row(tw, a.GetOwner(), a.GetPool(), a.GetPf(), count(uint64(a.GetVfIndex())), a.GetVfPciAddress(),
			a.GetVfNetdev(), a.GetRepresentor(), settingsLine(a.GetSettings()))
	}
	tw.Flush()
}

// settingsLine lists the set settings in ip-link words:
// "mac 02:00:00:00:00:01 vlan 100 qos 3 trust on driver vfio-pci".
func settingsLine(s *v1.VfAllocationSettings) string {
	var parts []string
	onOff := func(b bool) string {
		if b {
			return "on"
		}
		return "off"
	}
	if s.GetMac() != "" {
		parts = append(parts, "mac "+s.GetMac())
	}
	if s.Vlan != nil {
		parts = append(parts, "vlan "+strconv.FormatUint(uint64(s.GetVlan()), 10))
	}
	if s.Qos != nil && s.GetQos() != 0 {
		parts = append(parts, "qos "+strconv.FormatUint(uint64(s.GetQos()), 10))
	}
	if s.Trust != nil {
		parts = append(parts, "trust "+onOff(s.GetTrust()))
	}
	if s.SpoofCheck != nil {
		parts = append(parts, "spoofchk "+onOff(s.GetSpoofCheck()))
	}
	if s.GetLinkState() != v1.VfLinkState_VF_LINK_STATE_UNSPECIFIED {
		parts = append(parts, "state "+enumWord(s.GetLinkState()))
	}
	if s.MinTxRateMbps != nil || s.MaxTxRateMbps != nil {
		parts = append(parts, fmt.Sprintf("min_tx_rate %d max_tx_rate %d", s.GetMinTxRateMbps(), s.GetMaxTxRateMbps()))
	}
	if s.GetDriver() != "" {
		parts = append(parts, "driver "+s.GetDriver())
	}
	return strings.Join(parts, " ")
}

// releaseLine is "released 0000:08:00.1 (p0 vf 0) of vm1 to pool P; restored mac M vlan 0, driver D".
func releaseLine(a *v1.VfAllocation) string {
	o := a.GetOriginal()
	restored := fmt.Sprintf("mac %s vlan %d", o.GetMac(), o.GetVlan())
	if d := a.GetOriginalDriver(); d != "" {
		restored += ", driver " + d
	}
	return fmt.Sprintf("released %s (%s vf %d) of %s to pool %s; restored %s",
		a.GetVfPciAddress(), a.GetPf(), a.GetVfIndex(), a.GetOwner(), a.GetPool(), restored)
}
