package emulated_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/nic/emulated"
	"github.com/offloadd/offloadd/offload/flow"
)

// BenchmarkProgram adds and then deletes batches of 1,000 flows, the shape
// of the engine's pushes; ns/op is per flow (one add plus one delete).
func BenchmarkProgram(b *testing.B) {
	for _, plane := range []flow.Plane{flow.Hardware, flow.Software} {
		b.Run(plane.String(), func(b *testing.B) {
			cfg := emulated.DefaultConfig()
			d, err := emulated.New(cfg, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			const batch = 1000
			add, del := make([]nic.Op, batch), make([]nic.Op, batch)
			for i := range batch {
				f := drop(fmt.Sprintf("bench-%d", i), fmt.Sprintf("pf0vf%d", i%8), i)
				add[i] = nic.Op{Kind: nic.OpAdd, Flow: f}
				del[i] = nic.Op{Kind: nic.OpDelete, Flow: f}
			}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for n := 0; n < b.N; n += batch {
				for _, err := range d.Program(ctx, plane, add) {
					if err != nil {
						b.Fatal(err)
					}
				}
				for _, err := range d.Program(ctx, plane, del) {
					if err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
