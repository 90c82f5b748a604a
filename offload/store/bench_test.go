package store

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// BenchmarkBoltSave saves batches of 100 flows into a file of 10000, as
// the persister does under load: the cost of the checksums and the
// summary's look-up of each flow's old record, and the fsync.
func BenchmarkBoltSave(b *testing.B) {
	st, err := Open(filepath.Join(b.TempDir(), "state.db"))
	require.NoError(b, err)
	defer st.Close()
	fl := testFlows(10000)
	require.NoError(b, st.Save(fl))
	b.ResetTimer()
	for i := range b.N {
		at := i * 100 % len(fl)
		batch := fl[at : at+100]
		for k := range batch {
			batch[k].Generation++
		}
		if err := st.Save(batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "flows/s")
}

// BenchmarkBoltLoad loads 10000 flows, checking every record.
func BenchmarkBoltLoad(b *testing.B) {
	st, err := Open(filepath.Join(b.TempDir(), "state.db"))
	require.NoError(b, err)
	defer st.Close()
	require.NoError(b, st.Save(testFlows(10000)))
	b.ResetTimer()
	for range b.N {
		if _, err := st.Load(); err != nil {
			b.Fatal(err)
		}
	}
}
