package encrypt

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"testing"

	"github.com/wsgate/wsgate/internal/state/broker"
)

func TestEndToEndRoundTripAndCheck(t *testing.T) {
	r := ring(t, key("app1", 7))
	payload, id, err := r.SealEndToEnd("vault:a", []byte(`{"x":1}`))
	if err != nil || id != "app1" {
		t.Fatal(err)
	}
	if err := CheckEndToEnd(payload); err != nil {
		t.Fatalf("own envelope refused: %v", err)
	}
	pt, _, err := r.OpenEndToEnd("vault:a", payload)
	if err != nil || string(pt) != `{"x":1}` {
		t.Fatalf("OpenEndToEnd = %q, %v", pt, err)
	}
	// The same string with a JSON escape is the same envelope.
	escaped := append([]byte(`"\u00`+fmt.Sprintf("%02x", payload[1])), payload[2:]...)
	if pt, _, err := r.OpenEndToEnd("vault:a", escaped); err != nil || string(pt) != `{"x":1}` {
		t.Fatalf("escaped payload %s: %q, %v", escaped, pt, err)
	}
	if _, _, err := r.OpenEndToEnd("vault:b", payload); !errors.Is(err, ErrOpen) {
		t.Fatalf("opened for another channel: %v", err)
	}
	short := `"` + base64.StdEncoding.EncodeToString([]byte{Version, 1, 'k'}) + `"`
	for _, bad := range []string{`{"x":1}`, `"not base64!"`, `""`, short, `"AQ=="`, `123`, ``, `"` + "\\u0001" + `"`} {
		if err := CheckEndToEnd([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("CheckEndToEnd(%s) = %v", bad, err)
		}
	}
}

// Every publish path ends in the decorator: it refuses a payload that is not
// an envelope into an end_to_end namespace, and stores an envelope unchanged.
func TestBrokerEndToEndNamespace(t *testing.T) {
	ctx := context.Background()
	mem := broker.NewMemory(broker.MemoryOptions{})
	b := NewBroker(mem, &Policy{EndToEnd: map[string]bool{"vault": true}})
	opts := broker.PublishOptions{HistorySize: 10, HistoryTTL: 60e9}
	if _, err := b.Publish(ctx, "vault:a", []byte(`{"plain":1}`), "", opts); !errors.Is(err, ErrMalformed) {
		t.Fatalf("plaintext into end_to_end: %v", err)
	}
	payload, _, _ := ring(t, key("app1", 7)).SealEndToEnd("vault:a", []byte(`1`))
	if _, err := b.Publish(ctx, "vault:a", payload, "", opts); err != nil {
		t.Fatal(err)
	}
	got, _, err := b.History(ctx, "vault:a", nil, 0)
	if err != nil || len(got) != 1 || !bytes.Equal(got[0].Data, payload) {
		t.Fatalf("history = %v, %v", got, err)
	}
}

func FuzzCheckEndToEnd(f *testing.F) {
	r, _ := NewKeyring(key("k1", 1))
	p, _, _ := r.SealEndToEnd("c:x", []byte(`{}`))
	f.Add(p)
	f.Add([]byte(`"AQJrMQ=="`))
	f.Add([]byte(`{"a":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		// Never panics; whatever passes the check and opens is what was sealed.
		if CheckEndToEnd(b) != nil {
			return
		}
		if pt, _, err := r.OpenEndToEnd("c:x", b); err == nil && string(pt) != `{}` {
			t.Fatalf("forged envelope opened to %q", pt)
		}
	})
}

func BenchmarkCheckEndToEnd(b *testing.B) {
	r, _ := NewKeyring(key("app1", 7))
	p, _, _ := r.SealEndToEnd("vault:a", []byte(`{"symbol":"EURUSD","price":1.08421,"qty":250000,"side":"buy","trader":"t-1029","ts":1765000000000}`))
	b.ReportAllocs()
	for b.Loop() {
		if err := CheckEndToEnd(p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEndToEndClient: what an SDK client pays per publication in an
// end_to_end channel: the publisher seals once, every subscriber opens.
func BenchmarkEndToEndClient(b *testing.B) {
	r, _ := NewKeyring(key("app1", 7))
	pt := []byte(`{"symbol":"EURUSD","price":1.08421,"qty":250000,"side":"buy","trader":"t-1029","ts":1765000000000}`)
	p, _, _ := r.SealEndToEnd("vault:a", pt)
	b.Run("seal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := r.SealEndToEnd("vault:a", pt); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("open", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := r.OpenEndToEnd("vault:a", p); err != nil {
				b.Fatal(err)
			}
		}
	})
}
