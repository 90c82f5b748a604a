package store

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzDecodeRecord: any bytes under any key decode without panicking, and
// a record that decodes re-encodes to the same bytes: nothing a checksum
// accepted can differ from what was written.
func FuzzDecodeRecord(f *testing.F) {
	for _, sf := range testFlows(8) {
		key := []byte(sf.Flow.ID)
		f.Add(key, appendRecord(nil, key, sf.Generation, sf.Flow), false)
	}
	f.Add([]byte("x"), []byte{0, 3, 0, 0, 0, 0, 1}, true)
	f.Add([]byte("x"), []byte{1, 1, 1, 'x'}, true)
	f.Fuzz(func(t *testing.T, key, v []byte, legacyOK bool) {
		sf, legacy, err := decodeRecord(key, v, legacyOK)
		if err != nil {
			require.ErrorIs(t, err, ErrDamaged)
			return
		}
		require.Equal(t, string(key), sf.Flow.ID)
		if !legacy {
			require.Equal(t, v, appendRecord(nil, key, sf.Generation, sf.Flow))
		}
	})
}
