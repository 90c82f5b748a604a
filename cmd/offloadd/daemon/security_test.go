package daemon

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// TestPlaintextWarningRepeats: the plaintext warning comes back every
// interval until the daemon stops.
func TestPlaintextWarningRepeats(t *testing.T) {
	buf := &lockedBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		warnPlaintextEvery(ctx, slog.New(slog.NewTextHandler(buf, nil)), "0.0.0.0:50051", 5*time.Millisecond)
		close(done)
	}()
	assert.Eventually(t, func() bool { return strings.Count(buf.String(), "PLAINTEXT") >= 3 }, 5*time.Second, time.Millisecond)
	cancel()
	<-done
	assert.Contains(t, buf.String(), "level=WARN")
	assert.Contains(t, buf.String(), "0.0.0.0:50051")
}
