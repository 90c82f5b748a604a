package nsthread

import (
	"errors"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netns"
)

func TestInRunsThereAndLeavesTheCallerAlone(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	before, err := netns.Get()
	require.NoError(t, err)
	defer before.Close()
	var ns netns.NsHandle
	require.NoError(t, Do(func() error {
		var err error
		ns, err = netns.New() // moves Do's thread, not ours
		return err
	}))
	defer ns.Close()

	var inside netns.NsHandle
	require.NoError(t, In(ns, func() error {
		var err error
		inside, err = netns.Get()
		return err
	}))
	defer inside.Close()
	assert.True(t, inside.Equal(ns), "fn ran in ns")

	after, err := netns.Get()
	require.NoError(t, err)
	defer after.Close()
	assert.True(t, after.Equal(before), "the caller's namespace is unchanged")

	boom := errors.New("boom")
	assert.ErrorIs(t, In(ns, func() error { return boom }), boom)
	assert.ErrorContains(t, In(netns.None(), func() error { return nil }), "enter netns")
}
