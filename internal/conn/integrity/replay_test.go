package integrity_test

import (
	"testing"

	"github.com/wsgate/wsgate/internal/conn/integrity"
	"github.com/wsgate/wsgate/internal/conn/integrity/replaytest"
)

// The memory cache reads the real clock: the suite sleeps past its short TTLs.
func TestMemoryReplayCacheConformance(t *testing.T) {
	replaytest.Run(t, nil, func(*testing.T) integrity.ReplayCache { return integrity.NewMemoryReplayCache(0) })
}
