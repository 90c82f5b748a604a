package linux

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offloadd/offloadd/nic"
)

// TestInfoWhileSettingEswitchMode reads Info while SetEswitchMode writes
// the mode; under the race detector (make test-race) an unguarded read
// fails the test.
func TestInfoWhileSettingEswitchMode(t *testing.T) {
	d, err := New(Config{Info: nic.Info{Name: "p0", PCIAddress: "0000:08:00.0"}})
	if err != nil {
		t.Skipf("no netlink socket here: %v", err)
	}
	t.Cleanup(func() { _ = d.Close() })
	d.setMode = func(string, string) error { return nil } // no devlink device in tests
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 200 {
			mode := nic.EswitchLegacy
			if i%2 == 0 {
				mode = nic.EswitchSwitchdev
			}
			assert.NoError(t, d.SetEswitchMode(context.Background(), mode))
		}
	})
	wg.Go(func() {
		for range 200 {
			_ = d.Info().EswitchMode
		}
	})
	wg.Wait()
	require.Equal(t, nic.EswitchLegacy, d.Info().EswitchMode)
}
