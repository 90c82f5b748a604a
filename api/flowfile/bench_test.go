package flowfile

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

// BenchmarkDecoder reads a streamed file of b.N flows of the README's
// shape; memory per op is what one flow costs, not the file.
func BenchmarkDecoder(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("flows:\n")
	for i := range b.N {
		fmt.Fprintf(&sb, "- id: t%07d\n  port: pf0vf0\n  priority: %d\n  match: {eth_type: ipv4, ip_proto: tcp, ipv4_dst: 10.0.%d.%d, dst_port: 443}\n  actions: [{redirect: {port: pf0vf1}}]\n",
			i, 1+i%65000, i>>8&255, i&255)
	}
	in := sb.String()
	b.SetBytes(int64(len(in) / b.N))
	b.ReportAllocs()
	b.ResetTimer()
	d := NewDecoder(strings.NewReader(in))
	n := 0
	for {
		_, err := d.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
		n++
	}
	if n != b.N {
		b.Fatalf("read %d flows of %d", n, b.N)
	}
}
