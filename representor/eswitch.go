package representor

import (
	"fmt"

	"github.com/offloadd/offloadd/nic"
)

// ParseEswitchMode maps devlink's mode name to nic.EswitchMode. An empty
// name means the driver has no eswitch (devlink answered no mode).
func ParseEswitchMode(s string) (nic.EswitchMode, error) {
	switch s {
	case "legacy":
		return nic.EswitchLegacy, nil
	case "switchdev":
		return nic.EswitchSwitchdev, nil
	case "":
		return 0, fmt.Errorf("device reports no eswitch mode")
	}
	return 0, fmt.Errorf("unknown eswitch mode %q", s)
}
