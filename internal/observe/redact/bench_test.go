package redact_test

import (
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/wsgate/wsgate/internal/observe/redact"
)

func benchRedactor() *redact.Redactor {
	r := redact.New(redact.Options{})
	for i := range 10000 {
		r.Add(benchSecret(i))
	}
	return r
}

func BenchmarkStringClean(b *testing.B) {
	r := benchRedactor()
	s := "connection closed by peer after 1234 messages on route chat/general from 203.0.113.7"
	b.ReportAllocs()
	for b.Loop() {
		_ = r.String(s)
	}
}

func BenchmarkStringWithSecret(b *testing.B) {
	r := benchRedactor()
	s := "ticket " + benchSecret(4242) + " redeemed for route chat/general from 203.0.113.7"
	b.ReportAllocs()
	for b.Loop() {
		_ = r.String(s)
	}
}

func BenchmarkHandler(b *testing.B) {
	r := benchRedactor()
	log := slog.New(redact.NewHandler(slog.NewJSONHandler(io.Discard, nil), r))
	b.ReportAllocs()
	for b.Loop() {
		log.Info("message rejected", "conn_id", "c-123", "ip", "203.0.113.7", "reason", "schema", "size", 512)
	}
}

// benchSecret spreads secrets like random tokens would.
func benchSecret(i int) string {
	return fmt.Sprintf("tok-%08x", uint32(i)*2654435761)
}
