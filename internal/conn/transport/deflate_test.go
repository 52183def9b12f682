package transport

import (
	"bytes"
	"compress/flate"
	"io"
	"strings"
	"testing"
)

// Each case does a raw opening handshake with one Sec-WebSocket-Extensions
// offer and checks the answer against RFC 7692; an accepted offer must then
// carry a compressed message both ways.
func TestDeflateNegotiation(t *testing.T) {
	on := Compression{Enabled: true}
	ctx := Compression{Enabled: true, ServerContextTakeover: true, ClientContextTakeover: true}
	small := Compression{Enabled: true, ServerMaxWindowBits: 9}
	client10 := Compression{Enabled: true, ClientContextTakeover: true, ClientMaxWindowBits: 10}
	const noCT = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
	cases := []struct {
		name  string
		cfg   Compression
		offer string
		want  string // "" = declined
	}{
		{"plain offer", on, "permessage-deflate", noCT},
		{"server window below ours is declined", on, "permessage-deflate; server_max_window_bits=9", ""},
		{"declined offer, next accepted", on, "permessage-deflate; server_max_window_bits=9, permessage-deflate", noCT},
		{"server window 15 answered", on, "permessage-deflate; server_max_window_bits=15", noCT + "; server_max_window_bits=15"},
		{"configured small window answered within offer", small, "permessage-deflate; server_max_window_bits=10", noCT + "; server_max_window_bits=9"},
		{"configured small window announced", small, "permessage-deflate", noCT + "; server_max_window_bits=9"},
		{"client window not offered: not announced", client10, "permessage-deflate", noCT},
		{"client window offered without value", client10, "permessage-deflate; client_max_window_bits", "permessage-deflate; server_no_context_takeover; client_max_window_bits=10"},
		{"client window offered smaller", client10, "permessage-deflate; client_max_window_bits=9", "permessage-deflate; server_no_context_takeover; client_max_window_bits=9"},
		{"client window quoted", client10, `permessage-deflate; client_max_window_bits="10"`, "permessage-deflate; server_no_context_takeover; client_max_window_bits=10"},
		{"client asks no takeover", client10, "permessage-deflate; client_no_context_takeover; client_max_window_bits", noCT},
		{"takeover both ways", ctx, "permessage-deflate; client_max_window_bits", "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"},
		{"takeover, client cannot limit its window", ctx, "permessage-deflate", "permessage-deflate; client_no_context_takeover; server_max_window_bits=12"},
		{"client asks server no takeover", ctx, "permessage-deflate; server_no_context_takeover; client_max_window_bits=15", "permessage-deflate; server_no_context_takeover; server_max_window_bits=12; client_max_window_bits=12"},
		{"unknown parameter", on, "permessage-deflate; foo=1", ""},
		{"duplicate parameter", on, "permessage-deflate; server_no_context_takeover; server_no_context_takeover", ""},
		{"server window without value", on, "permessage-deflate; server_max_window_bits", ""},
		{"window 16", on, "permessage-deflate; server_max_window_bits=16", ""},
		{"window 7", on, "permessage-deflate; client_max_window_bits=7", ""},
		{"leading zero", on, "permessage-deflate; client_max_window_bits=08", ""},
		{"value on a flag", on, "permessage-deflate; client_no_context_takeover=1", ""},
		{"other extension", on, "x-webkit-deflate-frame", ""},
		{"compression off", Compression{}, "permessage-deflate", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, &Options{Compression: tc.cfg}, true, "")
			rc := dialRaw(t, ts, "Sec-WebSocket-Extensions: "+tc.offer)
			got := rc.resp.Header.Values("Sec-WebSocket-Extensions")
			if tc.want == "" {
				if len(got) != 0 {
					t.Fatalf("offer %q answered %q, want declined", tc.offer, got)
				}
				// Declined: a compressed frame is a protocol error.
				rc.write(frame(0xC1, deflate(t, []byte("hi")), true))
				rc.expectClose(StatusProtocolError)
				return
			}
			if len(got) != 1 || got[0] != tc.want {
				t.Fatalf("offer %q answered %q, want %q", tc.offer, got, tc.want)
			}
			// The negotiated state works: a compressed message is accepted
			// and the echo (compressed or not) reads back.
			msg := strings.Repeat("compress me ", 100)
			rc.write(frame(0xC1, deflate(t, []byte(msg)), true))
			b0, p, err := rc.readFrame()
			if err != nil {
				t.Fatal(err)
			}
			if b0&0x40 != 0 {
				fr := flate.NewReader(io.MultiReader(bytes.NewReader(p), bytes.NewReader([]byte{0, 0, 0xff, 0xff})))
				var out bytes.Buffer
				_, _ = io.CopyN(&out, fr, int64(len(msg)))
				p = out.Bytes()
			}
			if string(p) != msg {
				t.Fatalf("echo %q", p)
			}
		})
	}
}

func FuzzNegotiateDeflate(f *testing.F) {
	for _, s := range []string{"permessage-deflate", "permessage-deflate; client_max_window_bits", "permessage-deflate; server_max_window_bits=9, permessage-deflate",
		`permessage-deflate; client_max_window_bits="10"`, "foo, permessage-deflate; x", "permessage-deflate;;", ""} {
		f.Add(s)
	}
	cfgs := []deflateConfig{
		newDeflateConfig(Compression{Enabled: true}),
		newDeflateConfig(Compression{Enabled: true, ServerContextTakeover: true, ClientContextTakeover: true}),
		newDeflateConfig(Compression{Enabled: true, ClientContextTakeover: true, ClientMaxWindowBits: 9, ServerMaxWindowBits: 10}),
	}
	f.Fuzz(func(t *testing.T, offer string) {
		for _, cfg := range cfgs {
			resp, g := negotiateDeflate([]string{offer}, cfg)
			if (resp == "") != (g == "") {
				t.Fatalf("response %q but gws offer %q", resp, g)
			}
			if resp == "" {
				continue
			}
			if !strings.HasPrefix(resp, extDeflate) {
				t.Fatalf("response %q", resp)
			}
			if strings.Contains(resp, extClientWindow) && !strings.Contains(strings.ToLower(offer), extClientWindow) {
				t.Fatalf("client_max_window_bits announced to offer %q", offer)
			}
			if _, ok := parseDeflateOffer(resp); !ok {
				t.Fatalf("response %q does not parse", resp)
			}
		}
	})
}
