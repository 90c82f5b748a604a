package nic

// ReasonCode classifies why a flow is not (or would not be) in hardware.
type ReasonCode string

// Reason codes. They are part of the API: controllers switch on them.
const (
	ReasonUnsupportedKey         ReasonCode = "unsupported-match-key"
	ReasonUnsupportedAction      ReasonCode = "unsupported-action"
	ReasonUnsupportedCombination ReasonCode = "unsupported-combination"
	ReasonUnsupportedValue       ReasonCode = "unsupported-value"
	ReasonChainLimit             ReasonCode = "chain-limit"
	ReasonPriorityLimit          ReasonCode = "priority-limit"
	ReasonTunnel                 ReasonCode = "tunnel-constraint"
	ReasonCTState                ReasonCode = "ct-state"
	ReasonPort                   ReasonCode = "port-not-offloadable"
	ReasonEswitchMode            ReasonCode = "eswitch-not-switchdev"
	ReasonCapacity               ReasonCode = "hardware-table-full"
	ReasonRefused                ReasonCode = "hardware-refused"
	ReasonDeviceError            ReasonCode = "device-error"
	ReasonPolicy                 ReasonCode = "policy-software-only"
	ReasonDraining               ReasonCode = "port-draining"
)

// Reason is one structured explanation. Field is the flow field it is about
// ("match.ct_state", "actions[2]"), empty when it concerns the whole flow.
type Reason struct {
	Code    ReasonCode
	Field   string
	Message string
}

func (r Reason) String() string {
	if r.Field == "" {
		return string(r.Code) + ": " + r.Message
	}
	return string(r.Code) + ": " + r.Field + ": " + r.Message
}
