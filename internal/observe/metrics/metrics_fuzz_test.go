package metrics_test

import (
	"testing"

	"github.com/wsgate/wsgate/internal/observe/metrics"
)

// FuzzLabels feeds client-chosen strings (message types, reasons) into
// labelled metrics: nothing may panic and the registry must stay gatherable.
func FuzzLabels(f *testing.F) {
	f.Add("chat", "ok")
	f.Add("", "\xff\xfe")
	f.Add("a\"b\nc{d}", "x=y,z")
	f.Fuzz(func(t *testing.T, typ, reason string) {
		m := metrics.New()
		m.Message(typ, reason)
		m.Handshake(false, reason)
		m.Strike(reason)
		m.ConnOpened(typ)
		m.Series().Handshake(false, reason)
		if _, err := m.Registry().Gather(); err != nil {
			t.Fatal(err)
		}
	})
}
