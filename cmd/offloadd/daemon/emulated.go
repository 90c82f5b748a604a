package daemon

import "github.com/offloadd/offloadd/nic/emulated"

// LoadEmulated reads an emulated NIC config file.
func LoadEmulated(path string) (emulated.Config, error) { return emulated.LoadConfig(path) }
