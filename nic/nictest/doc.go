// Package nictest is the conformance suite every nic.Device backend must
// pass, the emulated NIC and the Linux backend alike. Run it from a
// backend's tests with a constructor for fresh devices:
//
//	func TestConformance(t *testing.T) {
//		nictest.Run(t, func(t *testing.T) nic.Device { ... })
//	}
//
// The suite derives what it programs from the device: its ports, and its
// capability profile to find flows the hardware should take and one it
// should refuse. Hardware subtests skip, saying why, when the device's
// hardware plane refuses even a basic flow (a veth "representor" in the
// kernel VM tier); everything else must hold for every backend.
package nictest
