package ticket_test

import (
	"testing"

	"github.com/wsgate/wsgate/internal/state/statetest"
	"github.com/wsgate/wsgate/internal/state/ticket"
	"github.com/wsgate/wsgate/internal/state/ticket/tickettest"
)

func TestMemoryStoreConformance(t *testing.T) {
	clk := statetest.New()
	tickettest.Run(t, clk, func(t *testing.T) ticket.Store {
		s := ticket.NewMemoryStore(ticket.MemoryOptions{SweepInterval: -1, Now: clk.Now})
		t.Cleanup(s.Close)
		return s
	})
}
