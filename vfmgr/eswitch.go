package vfmgr

import "github.com/offloadd/offloadd/nic"

// Step is one action of an eswitch mode change.
type Step string

// Steps of a mode change, run in the order an EswitchOrder lists them.
const (
	// StepCreateVFs sets sriov_numvfs to the target count (0 first, then N).
	StepCreateVFs Step = "create-vfs"
	// StepEnsureVFs turns SR-IOV on for the change: the target count, or
	// one VF when the target is 0 (ConfigurePF removes it afterwards).
	StepEnsureVFs Step = "ensure-vfs"
	// StepRemoveVFs sets sriov_numvfs to 0.
	StepRemoveVFs Step = "remove-vfs"
	// StepUnbindVFs unbinds every VF from its driver, remembering it.
	StepUnbindVFs Step = "unbind-vfs"
	// StepSetMode changes the devlink eswitch mode.
	StepSetMode Step = "set-mode"
	// StepRebindVFs binds the VFs unbound by StepUnbindVFs to their drivers again.
	StepRebindVFs Step = "rebind-vfs"
)

// EswitchOrder is how one driver wants its eswitch mode changed relative
// to its VFs, as data. The same order serves both directions.
type EswitchOrder struct {
	// Driver is the PF's kernel driver.
	Driver string
	Steps  []Step
	// Fixed drivers have one mode only (FixedMode); asking for the other
	// fails with ErrUnsupported instead of running Steps.
	Fixed     bool
	FixedMode nic.EswitchMode
	// Why cites where the order comes from.
	Why string
}

// GenericEswitchOrder serves drivers without an entry: the conservative
// order that works whether or not the driver tolerates VFs during the change.
var GenericEswitchOrder = EswitchOrder{
	Steps: []Step{StepRemoveVFs, StepSetMode, StepCreateVFs},
	Why:   "no driver-specific knowledge: change the mode with no VFs, then create them",
}

// DefaultEswitchOrders are the known drivers' orders.
var DefaultEswitchOrders = []EswitchOrder{
	{
		Driver: "mlx5_core",
		Steps:  []Step{StepEnsureVFs, StepUnbindVFs, StepSetMode, StepRebindVFs},
		Why: "NVIDIA MLNX_OFED/DOCA \"OVS Offload Using ASAP2 Direct\": create VFs, unbind them from " +
			"mlx5_core, set switchdev, bind them back. Older kernels refuse a mode change in either " +
			"direction while SR-IOV is off (eswitch mode NONE), and VF netdevs bound across the change keep stale vport state; " +
			"the mode change also clears VF settings (kernel commit 3b83b6c2e024 \"net/mlx5e: Clear VF " +
			"config when switching modes\"), so apply them afterwards.",
	},
	{
		Driver: "ice",
		Steps:  []Step{StepRemoveVFs, StepSetMode, StepCreateVFs},
		Why: "ice_eswitch_mode_set() refuses with EOPNOTSUPP \"Changing eswitch mode is allowed only if " +
			"there is no VFs created\" (kernel commit 3ea9bd5d0231 \"ice: support basic E-Switch mode " +
			"control\"): set the mode first, then create the VFs.",
	},
	{
		Driver:    "nfp",
		Fixed:     true,
		FixedMode: nic.EswitchSwitchdev,
		Why: "the nfp flower firmware app reports switchdev from eswitch_mode_get and has no " +
			"eswitch_mode_set (drivers/net/ethernet/netronome/nfp/flower/main.c); legacy needs other firmware.",
	},
}

func findOrder(orders []EswitchOrder, driver string) EswitchOrder {
	for _, o := range orders {
		if o.Driver == driver {
			return o
		}
	}
	o := GenericEswitchOrder
	o.Driver = driver
	return o
}
