// Package offload is offloadd's engine: the desired state of every flow,
// validation against the node's ports, placement in the hardware or the
// software plane with a reason for every flow not in hardware,
// make-before-break moves between planes, promotion of spilled flows,
// port draining for live migration, counters and a watch stream.
//
// The engine speaks to NICs only through nic.Device; the flow model is in
// package offload/flow.
package offload
