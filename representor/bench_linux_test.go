//go:build linux

package representor

import (
	"context"
	"fmt"
	"testing"

	"github.com/offloadd/offloadd/representor/sysfstest"
)

// BenchmarkSysfsScan scans one switchdev PF with 127 VFs, each with a VF
// netdev and a representor: the size a watcher rescans on every burst.
func BenchmarkSysfsScan(b *testing.B) {
	tr := sysfstest.New(b)
	tr.AddPF(sysfstest.PF{PCI: pf0PCI, Netdev: "p0", Driver: "mlx5_core", Vendor: "15b3", Device: "101d",
		PortName: "p0", SwitchID: swID, TotalVFs: 127, NumVFs: 127})
	for i := range 127 {
		tr.AddVF(sysfstest.VF{PFPCI: pf0PCI, Index: i, PCI: sysfstest.VFAddress(pf0PCI, i), Vendor: "15b3",
			Device: "101e", Driver: "mlx5_core", Netdev: fmt.Sprintf("vf%d", i)})
		tr.AddNetdev(sysfstest.Netdev{Name: fmt.Sprintf("pf0vf%d", i), PCI: pf0PCI, PortName: fmt.Sprintf("pf0vf%d", i), SwitchID: swID})
	}
	s := NewSysfsScanner(tr.Root, nil)
	for b.Loop() {
		snap, err := s.Scan(context.Background())
		if err != nil || snap.PFs[0].VFs[126].Representor != "pf0vf126" {
			b.Fatalf("scan: %v", err)
		}
	}
}
