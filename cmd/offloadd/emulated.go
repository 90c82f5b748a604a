package main

import "github.com/offloadd/offloadd/nic/emulated"

func loadEmulated(path string) (emulated.Config, error) { return emulated.LoadConfig(path) }
